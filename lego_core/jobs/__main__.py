"""`python -m lego_core.jobs worker RUN_DIR -- CMD...`: a job's supervisor (`supervisor.supervise`),
started by the launcher (the jobs commands themselves are `python -m lego_core jobs ...`)."""
import sys

from lego_core.jobs.supervisor import supervise


def main(argv: list[str]) -> int:
    if argv[:1] != ["worker"] or len(argv) < 4 or argv[2] != "--":
        print("usage: python -m lego_core.jobs worker RUN_DIR -- COMMAND...  (started by the job launcher; "
              "use `python -m lego_core jobs ...`)", file=sys.stderr)
        return 2
    return supervise(argv[1], argv[3:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

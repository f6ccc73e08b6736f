"""`python -m lego_core.jobs worker RUN_DIR -- CMD...` (a run's supervisor) or the jobs CLI."""
from lego_core.jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Starting a queued job: its command, its environment and its detached supervisor process.

`start` launches `python -m lego_core.jobs worker RUN_DIR -- <training argv>` (see `supervisor`) in
its own process session (`start_new_session`, so it outlives the Streamlit server). The training
argv is the trainer (`python -m lego_core train --run-dir RUN_DIR`, through torchrun for several
processes), or the job's own `launch.command` template: `launch(command=...)`, or a generation job's
`python -m lego_core augment ...`.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time

from lego_core import runs
from lego_core.core import process
from lego_core.core.process import TOKEN_ENV
from lego_core.core.paths import PROJECT_ROOT


def fill_command(template: list[str], run: runs.Run, resume: bool) -> list[str]:
    """A `launch(command=...)` template: "{run_dir}" is the run folder, "{resume}" is "--resume" or dropped."""
    command = []
    for part in template:
        if part == "{resume}":
            command += ["--resume"] if resume else []
        else:
            command.append(str(part).replace("{run_dir}", str(run.path)))
    return command


def trainer_argv(run: runs.Run, launch: dict, resume: bool) -> list[str]:
    """The default command: the trainer, through torchrun for several processes."""
    device = str(launch.get("device") or "cpu")
    # --quiet: no progress bars in log.txt (the app follows progress through status.json)
    train = ["-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet"]
    if resume:
        train.append("--resume")
    # CUDA runs see only their assigned GPUs (CUDA_VISIBLE_DEVICES), so "cuda" + LOCAL_RANK.
    train += ["--set", f"training.device={'cuda' if device.startswith('cuda') else device}"]
    nproc, nnodes = int(launch.get("nproc") or 1), int(launch.get("nnodes") or 1)
    if nproc == 1 and nnodes == 1:
        return [sys.executable, *train]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes == 1:
        torchrun.append("--standalone")
    else:  # static rendezvous: node_rank 0 holds global rank 0, so node 0's run folder gets the results
        host, _, port = str(launch["rdzv_endpoint"]).rpartition(":")
        torchrun += ["--nnodes", str(nnodes), "--node_rank", str(launch.get("node_rank") or 0),
                     "--master_addr", host.strip("[]"), "--master_port", port]
    return [*torchrun, *train]


def job_argv(run: runs.Run, launch: dict, resume: bool) -> list[str]:
    """The command the supervisor runs: the job's `launch.command` template if it has one, else the trainer."""
    if launch.get("command"):
        return fill_command(launch["command"], run, resume)
    return trainer_argv(run, launch, resume)


def start(run: runs.Run, gpus: list[int] | None, slots: int) -> dict:
    """Start a queued job's supervisor in its own session; returns the new status.

    `gpus`: the GPUs it gets (None off CUDA); `slots`: jobs allowed at once on its device (CPU jobs
    share the cores among them)."""
    status = run.status()
    launch = dict(status.get("launch") or {})
    resume = bool(launch.get("resume")) and run.checkpoint_path("last").exists()
    token = f"{run.id}:{secrets.token_hex(4)}"
    argv = job_argv(run, launch, resume)
    env = dict(os.environ)
    env.update({TOKEN_ENV: token, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)})
    device = str(status.get("device") or "cpu")
    if device == "cpu" and "OMP_NUM_THREADS" not in env:  # concurrent CPU runs share the cores
        per_run = max(1, (os.cpu_count() or 1) // slots)
        env["OMP_NUM_THREADS"] = str(per_run)
    if gpus is not None:
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[g] if g < len(visible) else str(g) for g in gpus)
    run.set_job_status(state="running", token=token, supervisor_pid=None, started=runs.now(), ended=None,
                       error=None, exit_code=None, gpus=gpus, host=socket.gethostname(), boot_id=process.boot_id(),
                       resumed_from_checkpoint=resume, cancel_requested=False)
    command = [sys.executable, "-m", "lego_core.jobs", "worker", str(run.path), "--", *argv]
    try:
        with open(run.log_path, "ab") as log:
            log.write(f"[jobs] {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, cwd=str(PROJECT_ROOT))
    except OSError as exc:
        return run.set_job_status(state="failed", ended=runs.now(),
                                  error=f"could not start the job's supervisor: {exc}")
    process.CHILDREN.append(proc)
    ticks = process.start_ticks(proc.pid)

    return run.set_job_status(supervisor_pid=proc.pid, supervisor_start_ticks=ticks)

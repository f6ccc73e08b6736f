"""The command line's last line of defence: whatever fails, the user sees one line and exit 2 —
argparse's own mistakes, an output that cannot be written (/proc, /dev/full) and a disk that
fills up mid-command. Nothing half-written stays behind."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lego_core.data import store
from lego_core.data import datasets
from tests.bad_inputs import cli

ROOT = Path(__file__).resolve().parent.parent


def ml1m_folder(tmp_path: Path) -> Path:
    """A tiny MovieLens-1M folder: 12 movies, 6 users with 6 ratings each."""
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_text("".join(f"{i}::Movie {i} (1995)::Drama|Comedy\n" for i in range(1, 13)),
                                       encoding="latin-1")
    (folder / "ratings.dat").write_text("".join(f"{u}::{(u + k) % 12 + 1}::4::{978300000 + 60 * k}\n"
                                                for u in range(1, 7) for k in range(6)))
    return folder


def one_line(text: str) -> str:
    """The one error line of stderr (progress lines such as "reading X as F ..." may precede it)."""
    assert "Traceback" not in text, text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"expected one error line, last:\n{text}"
    return errors[0]


@pytest.mark.parametrize("argv,named", [(["train", "--no-such-flag"], "--no-such-flag"),
                                        (["no-such-command"], "no-such-command"),
                                        (["datasets", "--format"], "--format"),
                                        (["train", "--set"], "--set")])
def test_argparse_mistakes_are_one_line(argv, named):
    """Regression: argparse printed its usage and the error on three lines."""
    result = cli(*argv)
    line = one_line(result.stderr)
    assert result.code == 2 and line.startswith("error: ") and named in line and "--help" in line


def test_an_output_under_proc_is_one_line(tmp_path):
    from lego_core import sweeps

    sweep_id = sweeps.create({"name": "t", "base": "nrms", "slots": {"content": ["attention"]}, "seeds": 1,
                              "budget": {"trials": 1}, "sampler": "grid"})
    result = cli("sweep", "export", sweep_id, "-o", "/proc/lego-export.csv")
    assert result.code == 2 and "/proc/lego-export.csv" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_stdout_on_a_full_device_is_one_line():
    """Regression: `datasets > /dev/full` ended in a traceback at exit."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "lego_core", "datasets", "synthetic"], cwd=ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=300)
    line = one_line(done.stderr)
    assert done.returncode == 2 and "No space left on device" in line and "Traceback" not in done.stderr


def test_a_disk_that_fills_up_during_datasets_add_loses_nothing(tmp_path, monkeypatch):
    """ENOSPC while the registration writes its files: one line, exit 2, no registration, no
    temporary file left; the next add (with space) works."""
    real, real_link = store.write_dataset, store.link_processed

    def full(dataset, folder):  # half the arrays written, then the disk is full
        (Path(folder) / "arrays").mkdir(exist_ok=True)
        (Path(folder) / "arrays" / "users.npy").write_bytes(b"\0" * 1024)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(folder) / "arrays" / "users.npy"))

    monkeypatch.setattr(store, "link_processed", lambda source, folder: False)  # as across file systems
    monkeypatch.setattr(store, "write_dataset", full)
    folder = ml1m_folder(tmp_path)
    result = cli("datasets", "add", folder, "--name", "shop")
    line = one_line(result.stderr)
    assert result.code == 2 and "No space left on device" in line and "Traceback" not in result.stderr
    assert "shop" not in [d["name"] for d in datasets.available()]
    leftovers = [p for p in Path(os.environ["LEGO_CACHE_DIR"]).rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []
    monkeypatch.setattr(store, "write_dataset", real)
    monkeypatch.setattr(store, "link_processed", real_link)
    assert cli("datasets", "add", folder, "--name", "shop").code == 0


@pytest.mark.parametrize("argv,named", [(["augment", "ml-100k", "--field", "d", "--limit", "-1"], "--limit"),
                                        (["augment", "ml-100k", "--field", "d", "--batch-size", "0"], "--batch-size"),
                                        (["jobs", "launch", "nrms", "--nproc", "0"], "--nproc"),
                                        (["jobs", "logs", "x", "--tail", "-5"], "--tail"),
                                        (["augment", "ml-100k", "--field", "d", "--limit", "ten"], "--limit")])
def test_counts_below_their_floor_are_refused_before_any_work(argv, named):
    """Regression: `augment --limit -1` was accepted."""
    result = cli(*argv)
    assert result.code == 2 and named in one_line(result.stderr)

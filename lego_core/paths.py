"""Where runtime data lives: `$LEGO_CACHE_DIR`, else `cache/` at the project root (git-ignored)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lego_core.errors import LegoError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (created on demand)."""
    root = Path(os.environ.get("LEGO_CACHE_DIR") or PROJECT_ROOT / "cache")
    what = "the cache folder ($LEGO_CACHE_DIR)" if os.environ.get("LEGO_CACHE_DIR") else "the cache folder"
    return make_folder(root.joinpath(*parts), what)


def make_folder(path: Path, what: str) -> Path:
    """`path` created if absent; a path that cannot be a folder (a file, /proc, no permission) is a
    one-line LegoError naming it and `what` it is for."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise LegoError(f"{what} {path} cannot be used ({exc.strerror or exc}); point it at a writable "
                        "folder") from None
    return path


def use_numba_cache() -> str:
    """Keep numba's compiled code under `cache_dir("numba")` across processes: sets $NUMBA_CACHE_DIR
    (inherited by child processes) unless it is set already, and returns it. Call it before numba
    is imported (app.py does, first thing); if numba is loaded already, its config follows too, so
    functions decorated afterwards (umap's, pynndescent's) still cache there."""
    folder = os.environ.get(NUMBA_CACHE_ENV) or str(cache_dir("numba"))
    os.environ[NUMBA_CACHE_ENV] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", None):
        config.CACHE_DIR = folder
    return folder

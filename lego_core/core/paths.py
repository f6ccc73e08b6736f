"""Where runtime data lives: `$LEGO_CACHE_DIR`, else `cache/` at the project root (git-ignored), or
in the working folder when lego_core is pip-installed without its checkout."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from lego_core.core.errors import LegoError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (created on demand)."""
    checkout = (PROJECT_ROOT / "pyproject.toml").is_file()  # else pip-installed: ./cache where it runs
    root = Path(os.environ.get("LEGO_CACHE_DIR") or (PROJECT_ROOT if checkout else Path.cwd()) / "cache")
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


# ---- the folders a shared app may read -------------------------------------------------------
DATA_ROOTS_ENV = "LEGO_DATA_ROOTS"
CONFINE_MAX_ENTRIES = 200_000  # a dataset folder holds a few hundred files; past this, refuse


def data_roots() -> list[Path] | None:
    """The folders LEGO_DATA_ROOTS (os.pathsep-separated) allows, resolved; None when it is unset
    (any folder this machine can read)."""
    raw = os.environ.get(DATA_ROOTS_ENV, "")
    parts = [part.strip() for part in raw.split(os.pathsep) if part.strip()]
    return [Path(part).expanduser().resolve() for part in parts] if parts else None


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def shorten(text: str, limit: int = 80) -> str:
    """A path for a message: control characters as '?', the middle cut when longer than `limit`, so
    that its end (the file or folder name) stays."""
    text = re.sub(r"[\x00-\x1f\x7f]", "?", text)
    return text if len(text) <= limit else text[:limit // 3] + "…" + text[-(limit - limit // 3 - 1):]


def confine(text: str | os.PathLike, roots: list[Path] | None, what: str = "path", show=None) -> Path:
    """A file or folder path typed by a visitor, resolved (links followed) and confined to `roots`
    (None: anywhere). Every file a reader may open is confined by its resolved path, not only the
    folder named: each link inside the folder is followed and checked, so a link in an allowed root
    that points outside it is refused. LegoError naming the path (never its content) and the fix;
    `show` formats a path for it (default: quoted, its middle cut)."""
    raw = str(text).strip()
    show = show or (lambda value: repr(shorten(str(value))))
    if re.search(r"[\x00-\x1f\x7f]", raw):
        raise LegoError(f"{what} {show(raw)} contains control characters; type the dataset's path")
    try:
        path = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        raise LegoError(f"{what} {show(raw)} is not a usable path on this machine") from None
    if roots is None:
        if not path.exists():
            raise LegoError(f"{what} {show(raw)} does not exist on this machine")
        return path
    listed = os.pathsep.join(str(r) for r in roots)
    if not _inside(path, roots):
        raise LegoError(f"{what} {show(raw)} is outside the folders this app may read ({DATA_ROOTS_ENV}={listed}); "
                        "put the dataset under one of them")
    if not path.exists():
        raise LegoError(f"{what} {show(raw)} does not exist on this machine")
    escape = _first_escape(path, roots)
    if escape is not None:
        inner = escape.relative_to(path) if escape.is_relative_to(path) else escape
        raise LegoError(f"{show(str(inner))} in {what} {show(raw)} links outside the folders this app may read "
                        f"({DATA_ROOTS_ENV}={listed}); copy it in instead of linking it")
    return path


def _first_escape(folder: Path, roots: list[Path]) -> Path | None:
    """The first entry under `folder` (itself resolved inside `roots`) whose resolved path lies
    outside `roots`, following links into folders once each; None when there is none."""
    if not folder.is_dir():
        return None
    seen: set[Path] = set()
    pending, count = [folder], 0
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue  # an unreadable folder: the reader will name it
        for entry in entries:
            count += 1
            if count > CONFINE_MAX_ENTRIES:
                raise LegoError(f"{folder} holds over {CONFINE_MAX_ENTRIES:,} files; give the dataset's own folder")
            shown = Path(current) / entry.name
            try:
                target = Path(entry.path).resolve() if entry.is_symlink() else Path(entry.path)
            except (OSError, RuntimeError):
                return shown  # a link loop or an unreadable link: never followed
            if not _inside(target, roots):
                return shown
            try:
                if target.is_dir():
                    pending.append(target)
            except OSError:
                continue
    return None

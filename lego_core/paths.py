"""Where runtime data lives: `$LEGO_CACHE_DIR`, else `cache/` at the project root (git-ignored)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (created on demand)."""
    root = Path(os.environ.get("LEGO_CACHE_DIR") or PROJECT_ROOT / "cache")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

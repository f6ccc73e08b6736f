"""A run folder's embedding tables (`embeddings/items.npy`, `users.npy` with their id lists): the
part of `Run` that stores and reads them, kept apart so the run store stays one concern a module."""
from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from lego_core.core.errors import RunError
from lego_core.core.fileio import atomic_save_npy, atomic_write_json


class EmbeddingTables:
    """Mixed into `lego_core.runs.store.Run` (which provides `id`, `path` and the `_cache` dict)."""

    @property
    def embeddings_dir(self) -> Path:
        return self.path / "embeddings"

    def save_embeddings(self, item_ids: Iterable, item_vectors: np.ndarray,
                        user_ids: Iterable | None = None, user_vectors: np.ndarray | None = None) -> None:
        """Store item vectors [N, D] and user vectors [U, D] or [U, K, D] with their id lists."""
        folder = self.embeddings_dir
        folder.mkdir(exist_ok=True)
        for name, ids, vectors in (("item", item_ids, item_vectors), ("user", user_ids, user_vectors)):
            if vectors is None:
                continue
            ids = np.asarray(ids).tolist() if ids is not None else None
            vectors = np.asarray(vectors, dtype=np.float32)
            if ids is None or len(ids) != len(vectors):
                raise ValueError(f"{name} ids ({None if ids is None else len(ids)}) and vectors "
                                 f"({len(vectors)}) differ in length")
            atomic_save_npy(folder / f"{name}s.npy", vectors)
            atomic_write_json(folder / f"{name}_ids.json", ids, indent=None)

    def _damaged(self, path: Path, reason: str) -> RunError:
        return RunError(f"run {self.id}: {path} is unreadable ({reason}); write it again with "
                        f"`python -m lego_core train --run-dir {self.path} --resume` or retrain")

    def _read_array(self, path: Path) -> np.ndarray:
        """A stored .npy table (never unpickled); a damaged file is a RunError naming it."""
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise self._damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def _load_table(self, name: str) -> tuple[list, np.ndarray]:
        array_path = self.embeddings_dir / f"{name}s.npy"
        ids_path = self.embeddings_dir / f"{name}_ids.json"
        try:
            key = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (array_path, ids_path))
        except FileNotFoundError:
            raise RunError(f"run {self.id} has no {name} embeddings yet ({array_path} missing); "
                           "they are written when training finishes") from None
        cached = self._cache.get(name)
        if cached and cached[0] == key:
            return cached[1]
        try:
            ids = json.loads(ids_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise self._damaged(ids_path, str(exc).splitlines()[0]) from None
        if not isinstance(ids, builtins.list):
            raise self._damaged(ids_path, "it does not hold a JSON list of ids")
        array = self._read_array(array_path)
        if array.ndim not in (2, 3) or not np.issubdtype(array.dtype, np.floating):
            raise self._damaged(array_path, f"expected a float table [N, D], got {array.dtype} {array.shape}")
        if len(ids) != len(array):
            raise RunError(f"run {self.id}: {ids_path} lists {len(ids)} ids but {array_path} has {len(array)} rows")
        self._cache[name] = (key, (ids, array))
        return ids, array

    def item_embeddings(self) -> tuple[list, np.ndarray]:
        """(item ids, vectors [N, D])."""
        return self._load_table("item")

    def user_embeddings(self) -> tuple[list, np.ndarray]:
        """(user ids, vectors [U, D] or [U, K, D] for multi-interest behaviour bricks)."""
        return self._load_table("user")

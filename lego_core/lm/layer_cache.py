"""Layer cache: the input of the first trainable layer, computed once per item and stored.

When the lower layers of a pretrained model are frozen their output never changes, so it is
computed once for every item under `torch.inference_mode`, stored as float16 in a memory-mapped
`.npy` under `cache_dir("lm_layers", key)` (with the token mask alongside), and training and
evaluation run only the layers at and above the boundary. The key hashes the model files, the
tokenizer, the exact token ids (so item texts, fields, template and max length) and the boundary
index. The folder is written under a temporary name and renamed when complete, so a crash never
leaves a half-filled cache behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lego_core.data.cache import CorruptFile, discard, expect, read_file
from lego_core.data.io import warn
from lego_core.core.errors import RecipeError
from lego_core.core.fileio import atomic_write_folder
from lego_core.core.progress import redraw_seconds
from lego_core.lm.stack import LayerStack
from lego_core.core.paths import cache_dir

FORMAT_VERSION = 1


def cache_key(model_id: str, tokenizer, input_ids: np.ndarray, mask: np.ndarray, boundary: int,
              extra: dict | None = None) -> str:
    """Hex key of (model files, tokenizer, token ids + mask, boundary layer, format)."""
    h = hashlib.sha256()
    head = {"v": FORMAT_VERSION, "model": model_id, "tokenizer": type(tokenizer).__name__,
            "vocab": len(tokenizer), "name": str(getattr(tokenizer, "name_or_path", "")),
            "boundary": int(boundary), "shape": list(input_ids.shape), "extra": extra or {}}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(input_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(mask, dtype=np.bool_).tobytes())
    return h.hexdigest()[:32]


@dataclass
class LayerCache:
    """Stored hidden states [N, L, H] (float16, memory-mapped) and token mask [N, L]."""

    folder: Path
    hidden: np.ndarray
    mask: np.ndarray
    boundary: int

    def gather(self, item_ids: torch.Tensor, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden float32 [n, l, H], mask bool [n, l]) of `item_ids`, trimmed to the longest text."""
        idx = item_ids.detach().to("cpu").numpy().astype(np.int64)
        mask = self.mask[idx]
        length = max(int(mask.sum(axis=1).max()), 1) if len(idx) else 1
        order = np.argsort(idx, kind="stable")  # sorted reads are kinder to the page cache
        rows = np.empty((len(idx), length, self.hidden.shape[2]), dtype=np.float16)
        rows[order] = self.hidden[idx[order], :length]
        hidden = torch.from_numpy(rows).to(device, non_blocking=True).float()
        return hidden, torch.from_numpy(np.ascontiguousarray(mask[:, :length])).to(device)


def _open(folder: Path, shape: tuple[int, int, int] | None = None, boundary: int | None = None) -> LayerCache | None:
    """The cache in `folder`, None when absent. CorruptFile (naming the file) when a file is
    missing, truncated or garbage, or the stored shapes disagree with the meta or with `shape`
    [items, length, hidden] / `boundary` when given."""
    if not os.path.lexists(folder):
        return None
    meta_path, hidden_path, mask_path = folder / "meta.json", folder / "hidden.npy", folder / "mask.npy"
    meta = read_file(meta_path, lambda path: json.loads(path.read_text()))
    expect(isinstance(meta, dict) and all(isinstance(meta.get(k), int) for k in ("boundary", "items", "length", "hidden")),
           meta_path, "not a layer-cache meta object")
    stored = (meta["items"], meta["length"], meta["hidden"])
    expect(shape is None or stored == tuple(shape), meta_path, f"describes states {stored}, expected {tuple(shape or ())}")
    expect(boundary is None or meta["boundary"] == boundary, meta_path, f"boundary {meta['boundary']}, expected {boundary}")
    hidden = read_file(hidden_path, lambda path: np.load(path, mmap_mode="r", allow_pickle=False))
    expect(hidden.shape == stored and hidden.dtype == np.float16, hidden_path,
           f"holds {hidden.dtype} {hidden.shape}, expected float16 {stored}")
    mask = read_file(mask_path, lambda path: np.load(path, allow_pickle=False))
    expect(mask.shape == stored[:2] and mask.dtype == np.bool_, mask_path,
           f"holds {mask.dtype} {mask.shape}, expected bool {stored[:2]}")
    return LayerCache(folder, hidden, mask, int(meta["boundary"]))


@torch.inference_mode()
def _fill(stack: LayerStack, input_ids: np.ndarray, mask: np.ndarray, boundary: int, out: np.ndarray,
          device: torch.device, batch_size: int, desc: str) -> None:
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding per batch
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", mininterval=redraw_seconds()):
        idx = np.sort(order[start:start + batch_size])
        length = max(int(lengths[idx].max()), 1)
        ids = torch.from_numpy(input_ids[idx, :length]).to(device)
        m = torch.from_numpy(mask[idx, :length]).to(device)
        hidden = stack.run(stack.embed_tokens(ids), m, 0, boundary).to(torch.float16)
        if not torch.isfinite(hidden).all():
            raise RecipeError(f"layer {boundary - 1} outputs exceed the float16 range, so they cannot be cached; "
                              "set the content brick's layer_cache to false")
        out[idx, :length] = hidden.cpu().numpy()


def build_or_load(stack: LayerStack, input_ids: np.ndarray, mask: np.ndarray, boundary: int, key: str,
                  device: torch.device | str = "cpu", batch_size: int = 32) -> LayerCache:
    """The cache for `key`, computing it first if absent: the output of layers [0, boundary) of
    `stack` (after the final norm when boundary is the last layer) for every row of `input_ids`."""
    root = cache_dir("lm_layers")
    folder = root / key
    shape = (int(input_ids.shape[0]), int(input_ids.shape[1]), int(stack.hidden_size))
    try:
        found = _open(folder, shape, boundary)
    except CorruptFile as exc:
        warn(f"layer cache: {exc}; recomputing it")
        discard(folder)
        found = None
    if found is not None:
        return found
    def fill(tmp: Path) -> None:
        n, length = input_ids.shape
        hidden = np.lib.format.open_memmap(tmp / "hidden.npy", mode="w+", dtype=np.float16,
                                           shape=(n, length, stack.hidden_size))
        was_training = stack.training
        stack.eval()
        try:
            _fill(stack, input_ids, mask, boundary, hidden, torch.device(device), batch_size,
                  f"layer cache: layers 0-{boundary - 1} of {stack.num_layers}")
        finally:
            stack.train(was_training)
        hidden.flush()
        del hidden
        np.save(tmp / "mask.npy", np.ascontiguousarray(mask, dtype=np.bool_), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({"key": key, "boundary": int(boundary), "items": n, "length": length,
                                                   "hidden": int(stack.hidden_size), "dtype": "float16"}))

    atomic_write_folder(folder, fill)  # another process (e.g. a DDP rank) may have finished first
    return _open(folder, shape, boundary)

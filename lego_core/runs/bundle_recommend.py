"""Top-k items for a history of item ids, from a serving bundle written by `lego export` (copied
into it as recommend.py). Needs only numpy, pyarrow and onnxruntime: no lego_core, no torch.

    python recommend.py BUNDLE_DIR ITEM_ID [ITEM_ID ...] [-k 10] [--include-seen]

prints JSON lines {"rank", "item_id", "score"}. As a library: `Bundle(folder).recommend(ids, k)`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pyarrow.parquet as pq


class Bundle:
    """The item table, the user encoder and the predictor of one exported run."""

    def __init__(self, folder):
        folder = Path(folder)
        self.info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        table = pq.read_table(folder / self.info["files"]["items"])
        self.item_ids = [str(i) for i in table.column("item_id").to_pylist()]
        self.items = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
        self.position = {item: i for i, item in enumerate(self.item_ids)}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.user_encoder = onnxruntime.InferenceSession(str(folder / self.info["files"]["user_encoder"]), options)
        self.predictor = onnxruntime.InferenceSession(str(folder / self.info["files"]["predictor"]), options)

    def history(self, item_ids) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(history vectors [1, H, D], mask [1, H], item rows): the last H known ids, oldest first,
        left-aligned as in training; unknown ids are skipped."""
        rows = [self.position[str(i)] for i in item_ids if str(i) in self.position]
        h = self.info["max_history"]
        kept = rows[-h:]
        vectors = np.zeros((1, h, self.items.shape[1]), dtype=np.float32)
        mask = np.zeros((1, h), dtype=bool)
        vectors[0, :len(kept)] = self.items[kept]
        mask[0, :len(kept)] = True
        return vectors, mask, rows

    def scores(self, item_ids) -> tuple[np.ndarray, list[int]]:
        """[N] the model's score of every item after this history; the history's item rows."""
        vectors, mask, rows = self.history(item_ids)
        user = self.user_encoder.run(None, {"history": vectors, "mask": mask})[0]
        feeds = {"user": user, "history": vectors, "mask": mask}
        wanted = [i.name for i in self.predictor.get_inputs()]
        out = []
        for start in range(0, len(self.items), 65536):
            feeds["candidates"] = self.items[None, start:start + 65536]
            out.append(self.predictor.run(None, {k: feeds[k] for k in wanted})[0][0])
        return np.concatenate(out).astype(np.float64), rows

    def recommend(self, item_ids, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        scores, rows = self.scores(item_ids)
        keep = np.ones(len(scores), dtype=bool)
        if exclude_seen:
            keep[rows] = False
        candidates = np.flatnonzero(keep)
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
        return [{"rank": r + 1, "item_id": self.item_ids[i], "score": float(scores[i])} for r, i in enumerate(order)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Top-k items for a history of item ids.")
    parser.add_argument("bundle")
    parser.add_argument("items", nargs="*", help="the history: item ids, oldest first")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--include-seen", action="store_true")
    args = parser.parse_args(argv)
    for row in Bundle(args.bundle).recommend(args.items, args.k, not args.include_seen):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

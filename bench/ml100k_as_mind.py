"""MovieLens-100k written as a MIND folder (train/ and dev/, news.tsv + behaviors.tsv), so the
history-cache quality check runs on real titles under MIND's protocol, not only leave-last-out.

Each user's clicks, oldest first: the last 2 become dev impressions (the clicked movie and 19
movies the user never rated), the 8 before them train impressions (the click and 9 unrated
movies), the rest the history every impression of that user shows (MIND histories predate the
impression logs). Movies are "news": category = first genre, subcategory = all genres, title =
the title; no abstract. Negatives come from `numpy.random.default_rng(seed)`.

    .venv/bin/python bench/ml100k_as_mind.py /tmp/ml100k-mind     # then datasets.load(folder)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

DEV_CLICKS, TRAIN_CLICKS = 2, 8
DEV_NEGATIVES, TRAIN_NEGATIVES = 19, 9
START = pd.Timestamp("2019-11-09")


def _cell(items: list[str], labels: list[int]) -> str:
    return " ".join(f"{i}-{label}" for i, label in zip(items, labels))


def write(folder: str | Path, seed: int = 0) -> Path:
    """Write the MIND folder from the packaged MovieLens-100k; returns `folder`."""
    from lego_core.data import datasets

    movies = datasets.load("ml-100k")
    rng = np.random.default_rng(seed)
    ids = np.array(["M" + str(i) for i in movies.items["item_id"]], dtype=object)
    news = pd.DataFrame({"id": ids, "category": movies.items["category"], "sub": movies.items["genres"],
                         "title": movies.items["title"], "abstract": "", "url": "", "te": "[]", "ae": "[]"})
    rows = {"train": [], "dev": []}
    clock = 0
    n_items = len(ids)
    for user in range(movies.num_users):
        clicks = movies.history(user)
        if len(clicks) < DEV_CLICKS + 2:
            continue
        train_n = min(TRAIN_CLICKS, len(clicks) - DEV_CLICKS - 1)
        history = clicks[:len(clicks) - DEV_CLICKS - train_n]
        unrated = np.setdiff1d(np.arange(n_items), clicks)
        for part, targets, k in (("train", clicks[len(history):len(clicks) - DEV_CLICKS], TRAIN_NEGATIVES),
                                 ("dev", clicks[len(clicks) - DEV_CLICKS:], DEV_NEGATIVES)):
            for target in targets:
                cands = np.concatenate([[target], rng.choice(unrated, size=k, replace=False)])
                order = rng.permutation(len(cands))
                clock += 60
                rows[part].append([len(rows["train"]) + len(rows["dev"]) + 1, f"U{movies.users[user]}",
                                   (START + pd.Timedelta(seconds=clock)).strftime("%m/%d/%Y %I:%M:%S %p"),
                                   " ".join(ids[history]),
                                   _cell(list(ids[cands[order]]), [int(o == 0) for o in order])])
    folder = Path(folder)
    for part, behaviors in rows.items():
        (folder / part).mkdir(parents=True, exist_ok=True)
        news.to_csv(folder / part / "news.tsv", sep="\t", header=False, index=False)
        pd.DataFrame(behaviors).to_csv(folder / part / "behaviors.tsv", sep="\t", header=False, index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(args.folder, args.seed))


if __name__ == "__main__":
    main()

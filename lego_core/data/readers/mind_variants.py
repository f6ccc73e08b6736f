"""xMIND reader: MIND with its news translated into another language.

xMIND (Iana, Glavaš, Paulheim: "MIND Your Language: A Multilingual Dataset for Cross-lingual News
Recommendation", SIGIR 2024; https://github.com/andreeaiana/xMIND) machine-translates MIND's news
into 14 languages and keeps MIND's users and impressions. Its release holds, per language,
`xMINDsmall_train/news.tsv`, `xMINDsmall_dev/news.tsv` (and large) with three tab-separated
columns and no header: news id, translated title, translated abstract. A folder laid out exactly
like MIND (eight columns, translated titles) is read too.

Behaviours: each folder's own `behaviors.tsv` when present, else the matching folder of the MIND
root given as option `mind` (the xMIND release ships no behaviours). Category, subcategory and url
come from the MIND news.tsv of that root when a news.tsv has three columns ("" without one).
Feedback and splits are MIND's (see `mind`): labels from `N1-1`/`N1-0`, train folder -> train,
dev split 50/50 into valid/test by a seeded permutation. Text is read as UTF-8 and kept verbatim;
word tokens (`tokenize.split_words`, `\\w+`) are Unicode-aware.

Detection ("xmind"): a MIND layout whose folders are named xMIND*, whose train news.tsv has three
columns, or whose first 100 titles are mostly non-ASCII. A translation into a language written in
plain ASCII (Swahili, say) laid out with MIND's eight columns reads as "mind"; pass --format xmind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.readers import mind
from lego_core.data.processed import cached_build
from lego_core.data.formats import Format
from lego_core.data.io import (check_unique, first_short_line, int_option, line_of, read_delimited, require_file)
from lego_core.data.schema import IMPRESSIONS, Dataset
from lego_core.core.errors import DataError

LAYOUT = ("an xMIND folder holds xMINDsmall_train/ and xMINDsmall_dev/ (or train/ and dev/), each with a "
          "news.tsv of translated news (id, title, abstract) and a behaviors.tsv, or pass mind=<MIND root> "
          "for the behaviours")


def read_translated_news(path: Path, mind_news: pd.DataFrame | None) -> pd.DataFrame:
    """An xMIND news.tsv (3 columns: id, title, abstract; or MIND's 8) -> MIND's news columns."""
    require_file(path, LAYOUT)
    fields, _ = mind._non_ascii_share(path, 1)
    if fields >= 5:
        return mind.read_news(path)
    frame = read_delimited(path, "\t", header=False)
    if frame.shape[1] < 2:
        raise DataError(f"{path} has {frame.shape[1]} tab-separated column; xMIND news.tsv rows are: "
                        "news id, title, abstract")
    line = first_short_line(path, "\t", 2)
    if line:
        raise DataError(f"{path} line {line} has fewer than 2 tab-separated fields; xMIND news.tsv rows are: "
                        "news id, title, abstract")
    frame = frame.iloc[:, :3]
    frame.columns = ["item_id", "title", "abstract"][:frame.shape[1]]
    if "abstract" not in frame.columns:
        frame["abstract"] = ""
    frame["item_id"] = frame["item_id"].str.strip()
    empty = (frame["item_id"] == "").to_numpy()
    if empty.any():
        raise DataError(f"{path} line {line_of(int(np.flatnonzero(empty)[0]), False)} has an empty news id")
    check_unique(frame["item_id"], path, "news id (column 1)", header=False)
    extra = ["category", "subcategory", "url"]
    if mind_news is not None:
        frame = frame.merge(mind_news[["item_id"] + extra], on="item_id", how="left")
    for col in extra:
        frame[col] = frame[col].fillna("") if col in frame.columns else ""
    return frame[mind.KEPT_NEWS].fillna("")


def _sources(root: Path, mind_root: str | Path | None) -> tuple[tuple[Path, Path], tuple | None, list[Path]]:
    """(xMIND folders, MIND folders or None, behaviors.tsv paths), or DataError naming what is missing."""
    folders = mind.find_folders(root)
    if folders is None:
        raise DataError(f"{root} is not an xMIND folder: {LAYOUT}")
    mind_folders = None
    if mind_root:
        mind_folders = mind.find_folders(Path(mind_root))
        if mind_folders is None:
            raise DataError(f"option mind={mind_root!s} is not a MIND folder: {mind.LAYOUT}")
    behaviors = []
    for i, folder in enumerate(folders):
        own = folder / "behaviors.tsv"
        if own.is_file() or mind_folders is None:
            behaviors.append(require_file(own, "xMIND ships translated news only: copy MIND's behaviors.tsv "
                                               "here or pass the MIND root as option mind"))
        else:
            behaviors.append(require_file(mind_folders[i] / "behaviors.tsv", mind.LAYOUT))
    return folders, mind_folders, behaviors


def build_xmind(root: Path, seed: int = 0, name: str = "xmind", mind_root: str | Path | None = None) -> Dataset:
    """Read an xMIND root (uncached; see module doc)."""
    root = Path(root)
    folders, mind_folders, behaviors = _sources(root, mind_root)
    news = []
    for i, folder in enumerate(folders):
        source = mind.read_news(mind_folders[i] / "news.tsv") if mind_folders else None
        news.append(read_translated_news(folder / "news.tsv", source))
    dataset = mind.build_mind(root, seed, name, news=news, behaviors=behaviors, reader="xmind")
    dataset.info["mind_root"] = str(mind_root or "")
    return dataset


def load_xmind(root: Path, seed: int = 0, name: str = "xmind", mind_root: str | Path | None = None) -> Dataset:
    """An xMIND root as a Dataset, cached by its files (and the MIND files it borrows) + options."""
    root = Path(root)
    seed = int_option(seed, "seed", 0, 2**63 - 1, "xMIND")
    folders, mind_folders, behaviors = _sources(root, mind_root)
    files = [require_file(f / "news.tsv", LAYOUT) for f in folders] + behaviors
    files += [f / "news.tsv" for f in mind_folders] if mind_folders else []
    test = mind.find_test_folder(root, folders[0])
    files += [test / "behaviors.tsv"] if test is not None else []
    return cached_build("xmind", files, {"seed": seed, "name": name, "mind": str(mind_root or "")},
                        lambda: build_xmind(root, seed, name, mind_root))


FORMATS = (Format(
    name="xmind", title="xMIND (MIND with news translated into another language)", layout=LAYOUT,
    protocol="MIND's click labels and splits: train folder -> train, dev impressions split 50/50 into "
             "valid/test by a seeded permutation; translated title/abstract are the item text",
    detect=mind.is_xmind_folder,
    read=lambda path, name="xmind", seed=0, mind="": load_xmind(Path(path), seed=seed, name=name, mind_root=mind),
    defaults=(("seed", 0), ("mind", "")), scheme=IMPRESSIONS),)

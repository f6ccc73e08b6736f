"""Generic items + interactions tables (CSV and Parquet) and the leave-last-out protocol."""
import numpy as np
import pandas as pd
import pytest

from lego_core.data.readers import tables
from lego_core.data.cache import check_dataset
from lego_core.data.io import DataWarning
from lego_core.data.leave_last_out import sample_unseen, split_log
from lego_core.core.errors import DataError

ITEMS = pd.DataFrame({"sku": [f"P{i}" for i in range(12)],
                      "name": [f"product {i}" for i in range(12)],
                      "about": [f"about thing {i % 3}" for i in range(12)],
                      "kind": ["toys", "books", "food"] * 4})
CLICKS = pd.DataFrame({"who": ["a"] * 5 + ["b"] * 4 + ["c"] * 3,
                       "what": ["P0", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11"],
                       "when": [10, 20, 30, 40, 50, 5, 6, 7, 8, 100, 100, 90],
                       "clicked": [1] * 12})
MAPPING = {"item_id": "sku", "text": ["name", "about"], "category": "kind", "user": "who", "item": "what",
           "timestamp": "when", "label": "clicked"}


def write(tmp_path, items=ITEMS, clicks=CLICKS, fmt="csv"):
    paths = tmp_path / f"items.{fmt}", tmp_path / f"clicks.{fmt}"
    for frame, path in ((items, paths[0]), (clicks, paths[1])):
        frame.to_parquet(path, index=False) if fmt == "parquet" else frame.to_csv(path, index=False)
    return paths


def history_ids(d, user, end):
    return d.items["item_id"].to_numpy()[d.history(user, end)].tolist()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_leave_last_out(tmp_path, fmt):
    d = tables.load_tables(*write(tmp_path, fmt=fmt), MAPPING, name="shop", negatives=3, seed=0)
    check_dataset(d)
    assert d.name == "shop" and d.num_items == 12 and d.users.tolist() == ["a", "b", "c"]
    assert list(d.items.columns) == ["item_id", "name", "about", "kind"]
    assert d.text_fields == ["name", "about"] and d.category_field == "kind"
    # c clicked P11 at 90 and P9, P10 at 100: ties broken by item order -> P11, P9, P10
    assert history_ids(d, 2, None) == ["P11", "P9", "P10"]
    train = d.splits["train"].to_frame(d)
    assert train["candidates"].tolist() == [["P1"], ["P2"], ["P6"]]  # t>=1 and before valid
    assert train["history_length"].tolist() == [1, 2, 1]
    test = d.splits["test"]
    assert test.history_end.tolist() == [4, 3, 2] and d.splits["valid"].history_end.tolist() == [3, 2, 1]
    assert np.all(test.sizes == 4)
    assert d.items["item_id"].to_numpy()[test.items[test.labels == 1]].tolist() == ["P4", "P8", "P10"]
    for u in range(3):
        row = test.items[test.offsets[u]:test.offsets[u + 1]]
        negatives = set(row[test.labels[test.offsets[u]:test.offsets[u + 1]] == 0].tolist())
        assert not negatives & set(d.history(u).tolist())


def test_label_zero_rows_are_dropped_and_defaults(tmp_path):
    clicks = CLICKS.copy()
    clicks.loc[[0, 5], "clicked"] = 0
    d = tables.load_tables(*write(tmp_path, clicks=clicks), MAPPING, negatives=2)
    assert d.info["non_clicks_dropped"] == 2
    assert "P0" not in history_ids(d, 0, None) and len(d.history(0)) == 4
    plain = ITEMS.rename(columns={"sku": "item_id"})
    clicks = CLICKS.rename(columns={"who": "user_id", "what": "item_id", "when": "timestamp"}).drop(columns="clicked")
    d = tables.load_tables(*write(tmp_path, items=plain, clicks=clicks), None, negatives=2)
    assert d.text_fields == ["name", "about", "kind"] and d.category_field is None
    assert len(d.seq_items) == 12


def test_parquet_datetime_timestamps(tmp_path):
    clicks = CLICKS.assign(when=pd.to_datetime(CLICKS["when"], unit="s"))
    d = tables.load_tables(*write(tmp_path, clicks=clicks, fmt="parquet"), MAPPING, negatives=2)
    assert d.splits["test"].times.tolist() == [50, 8, 100]


def test_unknown_items_and_short_users_are_dropped_with_warnings(tmp_path):
    clicks = pd.concat([CLICKS, pd.DataFrame({"who": ["a", "z"], "what": ["P99", "P1"], "when": [60, 1],
                                              "clicked": [1, 1]})])
    with pytest.warns(DataWarning) as record:
        d = tables.load_tables(*write(tmp_path, clicks=clicks), MAPPING, negatives=2)
    assert d.info["unknown_items_dropped"] == 1 and d.info["short_users_dropped"] == 1
    assert "z" not in d.users.tolist()
    assert any("unknown items" in str(w.message) for w in record)


@pytest.mark.parametrize("case, match", [
    ("missing_column", r"clicks.csv lacks column\(s\) \['when'\]; it has"),
    ("items_missing_text", r"items.csv lacks column\(s\) \['nope'\]"),
    ("duplicate", r"items.csv: duplicate id 'P3' in column 'sku' \(lines \[5, 7\]\)"),
    ("timestamp", r"clicks.csv: column 'when' line 4 has non-numeric timestamp 'soon'"),
    ("label", r"column 'clicked' line 3 is 'yes'; labels must be 0"),
    ("empty", r"clicks.csv is empty"),
    ("header_only", r"clicks.csv has no data rows"),
    ("encoding", r"items.csv is not valid UTF-8 \(line 3\): re-save"),
    ("unknown_all", r"none of the 12 interactions names an item"),
    ("too_short", r"no user has 3 or more clicks"),
    ("all_zero", r"every row has 'clicked' = 0"),
    ("mapping_key", r"unknown table mapping key\(s\) \['colour'\]"),
    ("extension", r"unsupported file type '.xlsx'"),
    ("empty_user", r"column 'who' line 2 is empty"),
])
def test_bad_tables(tmp_path, case, match):
    items, clicks, mapping = ITEMS.copy(), CLICKS.copy(), dict(MAPPING)
    if case == "missing_column":
        clicks = clicks.drop(columns="when")
    elif case == "items_missing_text":
        mapping["text"] = ["name", "nope"]
    elif case == "duplicate":
        items.loc[5, "sku"] = "P3"
    elif case == "timestamp":
        clicks["when"] = clicks["when"].astype(str)
        clicks.loc[2, "when"] = "soon"
    elif case == "label":
        clicks["clicked"] = clicks["clicked"].astype(str)
        clicks.loc[1, "clicked"] = "yes"
    elif case == "unknown_all":
        clicks["what"] = "X" + clicks["what"]
    elif case == "too_short":
        clicks["who"] = [f"u{i}" for i in range(12)]
    elif case == "all_zero":
        clicks["clicked"] = 0
    elif case == "mapping_key":
        mapping["colour"] = "x"
    elif case == "empty_user":
        clicks.loc[0, "who"] = ""
    items_path, clicks_path = write(tmp_path, items, clicks)
    if case == "empty":
        clicks_path.write_text("")
    elif case == "header_only":
        clicks_path.write_text("who,what,when\n")
    elif case == "encoding":
        items_path.write_bytes(items_path.read_bytes().replace(b"product 1\n", "produit é\n".encode("latin-1"), 1)
                               .replace(b"product 1,", "produit é,".encode("latin-1"), 1))
    elif case == "extension":
        clicks_path = clicks_path.rename(tmp_path / "clicks.xlsx")
    with pytest.raises(DataError, match=match):
        tables.load_tables(items_path, clicks_path, mapping)
    assert not list((tmp_path / "lego-cache").glob("datasets/.processed/tables-*"))


def test_split_log_drops_repeated_clicks_keeping_the_earliest():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e", "f"]})
    with pytest.warns(DataWarning, match="repeated"):
        d = split_log("t", items, np.array(["u"] * 5, dtype=object), np.array(["a", "b", "a", "c", "d"], dtype=object),
                      np.array([1, 2, 3, 4, 5]), negatives=2)
    assert d.items["item_id"].to_numpy()[d.seq_items].tolist() == ["a", "b", "c", "d"]
    assert d.info["duplicates_dropped"] == 1
    test = d.splits["test"]
    assert sorted(test.items[test.labels == 0].tolist()) == [4, 5]  # the only unseen items


def test_sample_unseen_is_exact_uniform_and_handles_crowded_users():
    rng = np.random.default_rng(0)
    n_items = 50
    # user 0 saw items 0..9, user 1 saw 0..44 (5 left), user 2 saw nothing
    seen = np.sort(np.concatenate([np.arange(10), 50 + np.arange(45)]))
    out = sample_unseen(np.array([0, 1, 2] * 200), seen, n_items, 8, rng)
    assert out.shape == (600, 8)
    u0, u1, u2 = out[0::3], out[1::3], out[2::3]
    assert np.all(u0 >= 10) and np.all(u2 >= 0)
    assert all(len(set(r)) == 8 for r in np.concatenate([u0, u2]))
    assert np.all(np.sort(u1[:, :5], axis=1) == np.arange(45, 50)) and np.all(u1[:, 5:] == -1)
    counts = np.bincount(u0.ravel(), minlength=n_items)[10:]  # uniform over the 40 unseen items
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.5 * counts.mean()
    # a user who saw all but 2 of 5000 items goes through the exact fallback
    big_seen = np.arange(4998)
    out = sample_unseen(np.array([0]), big_seen, 5000, 3, rng)
    assert sorted(out[0].tolist()) == [-1, 4998, 4999]

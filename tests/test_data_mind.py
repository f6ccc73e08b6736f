"""MIND reader on small MIND-format folders written here."""
from pathlib import Path

import numpy as np
import pytest

from lego_core.data import datasets
from lego_core.data.readers import mind
from lego_core.data.cache import check_dataset
from lego_core.data.io import DataWarning
from lego_core.core.errors import DataError, LegoError

NEWS_TRAIN = [
    ["N1", "sports", "football", 'Team "Blue" wins', "A long match.", "https://x/1", "[]", "[]"],
    ["N2", "music", "pop", "New album out", "", "https://x/2", "[]", "[]"],
    ["N3", "sports", "tennis", "Final tonight", "Who wins?", "https://x/3", "[]", "[]"],
    ["N4", "finance", "markets", "Stocks fall", "Markets down.", "https://x/4", "[]", "[]"],
    ["N5", "travel", "europe", "Paris in spring", "Flowers.", "https://x/5", "[]", "[]"],
]
NEWS_DEV = [
    ["N5", "travel", "europe", "Paris in spring", "Flowers.", "https://x/5", "[]", "[]"],
    ["N6", "music", "rock", "Band reunites", "Tour dates.", "https://x/6", "[]", "[]"],
    ["N7", "health", "fitness", "Run more", "Science says.", "https://x/7", "[]", "[]"],
]
BEHAVIORS_TRAIN = [
    ["1", "U1", "11/15/2019 8:55:16 AM", "N1 N2", "N3-1 N4-0"],
    ["2", "U2", "11/15/2019 9:00:00 PM", "", "N1-0 N3-1 N5-0"],
    ["3", "U1", "11/15/2019 10:00:00 AM", "N1 N2", "N5-0 N4-1"],
]
BEHAVIORS_DEV = [
    ["1", "U3", "11/16/2019 8:00:00 AM", "N7 N1", "N6-1 N2-0"],
    ["2", "U1", "11/16/2019 9:00:00 AM", "N1 N2 N3", "N7-1 N5-0 N6-0"],
    ["3", "U2", "11/16/2019 9:30:00 AM", "", "N6-0 N7-1"],
    ["4", "U3", "11/16/2019 9:45:00 AM", "N7 N1", "N1-1 N4-0"],
    ["5", "U4", "11/16/2019 10:00:00 AM", "N6", "N2-1 N3-0"],
]


def write_tsv(path: Path, rows, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join("\t".join(r) + "\n" for r in rows).encode(encoding))
    return path


def write_mind(root: Path, train_name="train", dev_name="dev", news_train=NEWS_TRAIN, news_dev=NEWS_DEV,
               beh_train=BEHAVIORS_TRAIN, beh_dev=BEHAVIORS_DEV) -> Path:
    write_tsv(root / train_name / "news.tsv", news_train)
    write_tsv(root / train_name / "behaviors.tsv", beh_train)
    write_tsv(root / dev_name / "news.tsv", news_dev)
    write_tsv(root / dev_name / "behaviors.tsv", beh_dev)
    return root


def ids_of(dataset, indices):
    return dataset.items["item_id"].to_numpy()[indices].tolist()


def test_reads_items_users_histories_and_impressions(tmp_path):
    d = mind.build_mind(write_mind(tmp_path / "m"))
    check_dataset(d)
    assert d.items["item_id"].tolist() == ["N1", "N2", "N3", "N4", "N5", "N6", "N7"]
    assert d.items.loc[0, "title"] == 'Team "Blue" wins'  # quotes kept verbatim
    assert d.items.loc[1, "abstract"] == ""
    assert list(d.items.columns) == ["item_id", "category", "subcategory", "title", "abstract", "url"]
    assert d.text_fields == ["title", "abstract"] and d.category_field == "category"
    assert d.users.tolist() == ["U1", "U2", "U3", "U4"]
    # sequence = the user's first behaviors row (train first), oldest first
    assert ids_of(d, d.history(0)) == ["N1", "N2"]
    assert len(d.history(1)) == 0
    assert ids_of(d, d.history(2)) == ["N7", "N1"]
    assert ids_of(d, d.history(3)) == ["N6"]
    train = d.splits["train"]
    assert train.ids.tolist() == [1, 2, 3]
    assert train.to_frame(d)["candidates"].tolist() == [["N3", "N4"], ["N1", "N3", "N5"], ["N5", "N4"]]
    assert train.labels.tolist() == [1, 0, 0, 1, 0, 0, 1]
    assert train.times[0] == 1573808116  # 11/15/2019 8:55:16 AM (UTC)
    assert train.times[1] - train.times[0] == 12 * 3600 + 4 * 60 + 44  # PM handled
    lengths = np.diff(d.seq_offsets)
    for imps in d.splits.values():
        assert np.array_equal(imps.history_end, lengths[imps.users])


def test_dev_split_into_valid_and_test_by_seeded_permutation(tmp_path):
    root = write_mind(tmp_path / "m")
    d = mind.build_mind(root, seed=5)
    valid, test = d.splits["valid"], d.splits["test"]
    assert len(valid) == 2 and len(test) == 3  # floor(5/2) to valid
    assert d.info["dev_id_offset"] == 3  # dev ids 1..5 become 4..8, past the train ids
    assert sorted(valid.ids.tolist() + test.ids.tolist()) == [4, 5, 6, 7, 8]
    expected = np.zeros(5, dtype=bool)
    expected[np.random.default_rng(5).permutation(5)[:2]] = True
    assert valid.ids.tolist() == (np.flatnonzero(expected) + 4).tolist()  # documented protocol, file order
    assert test.ids.tolist() == (np.flatnonzero(~expected) + 4).tolist()
    by_id = {int(i): c for i, c in zip(np.concatenate([valid.ids, test.ids]),
                                       valid.to_frame(d)["candidates"].tolist() + test.to_frame(d)["candidates"].tolist())}
    assert by_id[5] == ["N7", "N5", "N6"]  # dev row 2 keeps all its candidates
    assert mind.build_mind(root, seed=5).splits["valid"].ids.tolist() == valid.ids.tolist()
    splits_by_seed = {tuple(mind.build_mind(root, seed=s).splits["valid"].ids) for s in range(8)}
    assert len(splits_by_seed) > 1


def test_mindsmall_folder_names_and_load_by_path_with_cache(tmp_path):
    root = write_mind(tmp_path / "small", "MINDsmall_train", "MINDsmall_dev")
    first = datasets.load(root)
    assert first.info["cache"] == "miss" and first.num_items == 7
    second = datasets.load(str(root))
    assert second.info["cache"] == "hit"
    assert second.info["fingerprint"] == first.info["fingerprint"]
    assert second.users.tolist() == first.users.tolist()
    for split in ("train", "valid", "test"):
        assert np.array_equal(second.splits[split].items, first.splits[split].items)
        assert np.array_equal(second.splits[split].labels, first.splits[split].labels)
    assert second.items.equals(first.items)
    with pytest.raises(DataError, match="options"):
        datasets.load(root, negatives=4)


def test_unknown_items_are_dropped_with_counts_and_a_warning(tmp_path):
    beh = BEHAVIORS_TRAIN + [["9", "U5", "11/15/2019 11:00:00 AM", "N1 N99", "N98-1 N97-0"]]
    dev = BEHAVIORS_DEV[:-1] + [["5", "U4", "11/16/2019 10:00:00 AM", "N6", "N2-1 N96-0"]]
    with pytest.warns(DataWarning, match="unknown"):
        d = mind.build_mind(write_mind(tmp_path / "m", beh_train=beh, beh_dev=dev))
    assert d.info["unknown_history_items_dropped"] == 1
    assert d.info["train_unknown_candidates_dropped"] == 2
    assert d.info["train_impressions_dropped"] == 1
    assert d.info["dev_unknown_candidates_dropped"] == 1
    assert 9 not in d.splits["train"].ids
    assert ids_of(d, d.history(list(d.users).index("U5"))) == ["N1"]


def test_nothing_known_is_an_error(tmp_path):
    beh = [["1", "U1", "11/15/2019 8:55:16 AM", "N1", "N90-1 N91-0"]]
    with pytest.raises(DataError, match="no impression names a known news item"):
        mind.build_mind(write_mind(tmp_path / "m", beh_train=beh))


@pytest.mark.parametrize("case, match", [
    ("news_columns", r"news.tsv has 3 tab-separated columns"),
    ("news_short_row", r"news.tsv line 2 has fewer than 5"),
    ("news_empty", r"news.tsv is empty"),
    ("news_duplicate", r"duplicate id 'N3'.*lines \[3, 4\]"),
    ("behaviors_columns", r"behaviors.tsv has 4 tab-separated columns"),
    ("impression_duplicate", r"duplicate id 2 .*impression id"),
    ("impression_id", r"line 2: impression id \(column 1\) 'x2' is not an integer"),
    ("time", r"line 3: time \(column 3\) '2019-11-15' is not a MIND time"),
    ("label", r"line 1: impression candidate 'N3' lacks a '-1'/'-0' click label"),
    ("encoding", r"news.tsv is not valid UTF-8 \(line 2\).*UTF-8"),
    ("missing", r"neither a MIND folder \(train/ and dev/"),
])
def test_bad_input_names_file_line_and_fix(tmp_path, case, match):
    news, beh = [list(r) for r in NEWS_TRAIN], [list(r) for r in BEHAVIORS_TRAIN]
    encoding = "utf-8"
    if case == "news_columns":
        news = [r[:3] for r in news]
    elif case == "news_short_row":
        news[1] = news[1][:3]
    elif case == "news_empty":
        news = []
    elif case == "news_duplicate":
        news[3][0] = "N3"
    elif case == "behaviors_columns":
        beh = [r[:4] for r in beh]
    elif case == "impression_duplicate":
        beh[2][0] = "2"
    elif case == "impression_id":
        beh[1][0] = "x2"
    elif case == "time":
        beh[2][2] = "2019-11-15"
    elif case == "label":
        beh[0][4] = "N3 N4"
    elif case == "encoding":
        news[1][3] = "Café olé"
        encoding = "latin-1"
    root = tmp_path / "m"
    write_mind(root, beh_train=beh, news_train=[])
    write_tsv(root / "train" / "news.tsv", news, encoding)
    if case == "missing":
        root = tmp_path / "m" / "train"
    with pytest.raises(DataError, match=match) as info:
        datasets.load(root)
    assert isinstance(info.value, LegoError)
    assert not list((tmp_path / "lego-cache").glob("datasets/.processed/mind-*"))  # nothing cached


def test_missing_behaviors_file_is_named(tmp_path):
    root = write_mind(tmp_path / "m")
    (root / "dev" / "behaviors.tsv").unlink()
    with pytest.raises(DataError, match=r"dev/behaviors.tsv not found"):
        datasets.load(root)

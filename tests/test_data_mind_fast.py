"""The MIND reader's fast path (pyarrow's CSV reader, `pyarrow.compute` dates, id lists split on
their bytes) reads exactly what the pandas path reads, hands every fault to it so errors still
name the line, and the processed store opens memory-mapped arrays with the cold mask stored."""
import numpy as np
import pytest

from lego_core.data import arrays, datasets, fast_tsv
from lego_core.data.cold import natural_cold
from lego_core.data.io import DataWarning
from lego_core.data.readers import mind
from lego_core.core.errors import DataError
from test_data_mind import BEHAVIORS_DEV, BEHAVIORS_TRAIN, write_mind

FIELDS = ("ids", "users", "times", "history_end", "offsets", "items", "labels")


def assert_same(a, b):
    assert a.items.equals(b.items) and a.users.tolist() == b.users.tolist() and a.info == b.info
    assert np.array_equal(a.seq_offsets, b.seq_offsets) and np.array_equal(a.seq_items, b.seq_items)
    for split in a.splits:
        for field in FIELDS:
            x, y = getattr(a.splits[split], field), getattr(b.splits[split], field)
            assert x.dtype == y.dtype and np.array_equal(x, y), (split, field)


@pytest.mark.parametrize("odd", ["plain", "unknown ids", "extra column", "spaces", "crlf and bom"])
def test_fast_path_reads_what_the_pandas_path_reads(tmp_path, monkeypatch, odd):
    beh, dev = [list(r) for r in BEHAVIORS_TRAIN], [list(r) for r in BEHAVIORS_DEV]
    if odd == "unknown ids":
        beh.append(["9", "U5", "11/15/2019 11:00:00 AM", "N1 N99", "N98-1 N97-0 N3-1"])
    elif odd == "extra column":  # pandas pads the rows short of the first one; pyarrow hands over
        beh[0].append("extra")
    elif odd == "spaces":  # double, leading and trailing spaces in the id lists: the Arrow split
        beh[0][3], dev[1][4] = " N1  N2", "N7-1  N5-0 N6-0 "
    root = write_mind(tmp_path / "m", beh_train=beh, beh_dev=dev)
    if odd == "crlf and bom":
        path = root / "train" / "behaviors.tsv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    if odd == "plain":  # the fast path is the one taken
        table = fast_tsv.read_tsv(root / "train" / "behaviors.tsv")
        assert table.num_columns == 5 and fast_tsv.parse_times(table["f2"], mind.TIME_FORMAT) is not None
        assert arrays.ascii_tokens(table["f4"]) is not None
    with pytest.warns(DataWarning) if odd == "unknown ids" else _nothing():
        fast = mind.build_mind(root, seed=2)
    monkeypatch.setattr(fast_tsv, "read_tsv", lambda path, desc=None: None)  # always pandas' reader
    monkeypatch.setattr(fast_tsv, "parse_times", lambda column, fmt: None)  # always pandas' dates
    monkeypatch.setattr(mind, "ascii_tokens", lambda column: None)  # always the Arrow split
    with pytest.warns(DataWarning) if odd == "unknown ids" else _nothing():
        slow = mind.build_mind(root, seed=2)
    assert_same(fast, slow)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("time, match", [
    ("11/31/2019 8:00:00 AM", r"line 2: time \(column 3\) '11/31/2019 8:00:00 AM' is not a MIND time"),
    ("2/29/2019 1:00:00 PM", r"line 2: time \(column 3\) '2/29/2019 1:00:00 PM' is not a MIND time"),
    ("11/15/9999 1:00:00 PM", r"line 2 has time '11/15/9999 1:00:00 PM', outside years 1678-2262"),
])
def test_impossible_dates_are_refused_as_pandas_refuses_them(tmp_path, time, match):
    """pyarrow's strptime reads 11/31 as December 1st; the reader checks the day and refuses it."""
    beh = [list(r) for r in BEHAVIORS_TRAIN]
    beh[1][2] = time
    with pytest.raises(DataError, match=match):
        mind.build_mind(write_mind(tmp_path / "m", beh_train=beh))


def test_empty_impressions_cell_names_its_line(tmp_path):
    beh = [list(r) for r in BEHAVIORS_TRAIN]
    beh[2][4] = ""
    with pytest.raises(DataError, match=r"behaviors.tsv line 3: impressions \(column 5\) is empty"):
        mind.build_mind(write_mind(tmp_path / "m", beh_train=beh))


def test_byte_split_matches_the_arrow_split():
    import pyarrow as pa

    cells = ["N1 N22 N3", "", "N4", "", "N5 N6"]
    column = pa.chunked_array([pa.array(cells[:2], pa.large_string()), pa.array(cells[2:], pa.large_string())])
    sizes, starts, ends, data = arrays.ascii_tokens(column)
    want_sizes, want = arrays.split_lists(column)
    assert sizes.tolist() == want_sizes.tolist() == [3, 0, 1, 0, 2]
    assert arrays.token_strings(data, starts, ends).to_pylist() == want.to_pylist()
    labelled = arrays.ascii_tokens(pa.array(["N1-1 N22-0", "N3-1"]))
    assert arrays.token_strings(labelled[3], *labelled[1:3], drop=2).to_pylist() == ["N1", "N22", "N3"]
    for odd in (" N1", "N1 ", "N1  N2", "N1\tN2", "Né"):
        assert arrays.ascii_tokens(pa.array([odd])) is None, odd


def test_cached_read_maps_arrays_read_only_with_the_cold_mask_stored(tmp_path):
    root = write_mind(tmp_path / "m")
    first = datasets.load(root)
    again = datasets.load(root)
    assert first.info["cache"] == "miss" and again.info["cache"] == "hit"
    assert not again.seq_items.flags.writeable and not again.splits["train"].items.flags.writeable
    assert isinstance(again.seq_items.base, np.memmap) or isinstance(again.seq_items.base.base, np.memmap)
    assert np.array_equal(again.cold, first.cold) and np.array_equal(again.cold, natural_cold(again))
    assert again.info["cold_count"] == int(first.cold.sum())


@pytest.mark.parametrize("cells, labelled, candidates", [
    (["N1 N2", "N3"], False, 3),  # MIND-large's test log: no labels
    (["N1-1 N2-0", "N3-0"], True, 3),
    (["N1-1  N2-0", " N3-0"], True, 3),  # odd spacing: the Arrow split, same answer
    (["N1-1 N2", "N3-0"], False, 3),
])
def test_test_folder_is_counted_in_slices_with_or_without_labels(tmp_path, cells, labelled, candidates):
    from test_data_mind import write_tsv

    root = write_mind(tmp_path / "m")
    write_tsv(root / "test" / "behaviors.tsv", [[str(i + 1), "U9", "11/17/2019 8:00:00 AM", "N1", cell]
                                                for i, cell in enumerate(cells)])
    with pytest.warns(DataWarning, match="2 test impressions"):
        info = mind.build_mind(root).info
    key = "labelled_test_impressions_unused" if labelled else "unlabelled_test_impressions"
    assert info[key] == 2 and info["test_candidates"] == candidates

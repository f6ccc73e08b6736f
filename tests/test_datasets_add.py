"""Registering a dataset in any format (datasets.add / `datasets add|remove|show|formats`), counts
listed without loading, re-deriving with other options, and safe unpacking of uploads."""
import dataclasses
import json
import io
import stat
import threading
import zipfile
from pathlib import Path

import pytest

import lego_core.cli.main as cli_main

from lego_core.cli import main as cli
from lego_core.data import archives, registration
from lego_core.data import datasets
from lego_core.data import formats, store
from lego_core.data.readers import mind
from lego_core.data.readers import tables
from lego_core.core.errors import DataError
from test_data_mind import BEHAVIORS_TRAIN, write_mind
from test_data_tables import MAPPING, write


def _read_shop(path, name="shop", negatives=99, seed=0):
    return tables.load_tables(path / "items.csv", path / "clicks.csv", MAPPING, name=name, negatives=negatives,
                              seed=seed, cache=False)


SHOP = formats.Format(name="shop-test", title="Shop tables (test)", layout="a folder with items.csv and clicks.csv",
                      protocol="every row a click; leave-last-out per user",
                      detect=lambda p: (p / "items.csv").is_file() and (p / "clicks.csv").is_file(),
                      read=_read_shop, defaults=(("negatives", 99), ("seed", 0)), scheme="leave-last-out")
MIND_TEST = formats.Format(name="mind-test", title="MIND (test)", layout=mind.LAYOUT, protocol="dev split in two",
                           detect=mind.is_mind_folder,
                           read=lambda p, name="mind", seed=0: mind.build_mind(p, seed=seed, name=name),
                           scheme="impressions")


@pytest.fixture(autouse=True)
def known_formats(monkeypatch):
    """The real formats, plus MIND (when its reader declares none yet) and a constructed table format."""
    real = formats.all_formats()
    extra = ([] if any(f.name == "mind" for f in real) else [MIND_TEST]) + [SHOP]
    monkeypatch.setattr(formats, "all_formats", lambda: extra + real)
    return extra + real


def _mind_name(known):
    return next(f.name for f in known if f.name in ("mind", "mind-test"))


def shop_folder(tmp_path, **kw):
    folder = tmp_path / "my shop!"
    folder.mkdir()
    write(folder, **kw)
    return folder


def test_add_detects_the_format_and_registers_with_counts(tmp_path, known_formats):
    d = datasets.add(write_mind(tmp_path / "MINDtiny"))
    assert d.name == "MINDtiny" and d.num_items == 7
    doc = store.manifest("MINDtiny")
    assert doc["kind"] == "format" and doc["source"] == {"format": _mind_name(known_formats),
                                                          "path": str((tmp_path / "MINDtiny").resolve())}
    assert doc["options"] == {"seed": 0} and doc["summary"]["items"] == 7
    entry = next(e for e in datasets.available() if e["name"] == "MINDtiny")
    assert entry["summary"]["users"] == 4 and entry["format"] == _mind_name(known_formats)
    shop = datasets.add(shop_folder(tmp_path), negatives=3)
    assert shop.name == "my-shop" and store.manifest("my-shop")["options"] == {"negatives": 3, "seed": 0}
    assert (datasets.load("my-shop").splits["test"].sizes == 4).all()


def test_registrations_share_one_processed_copy(tmp_path):
    """Regression: every registration kept its own processed copy (1.17 GiB for MIND-large). Two
    registrations of one folder under other names share the processed cache's files (hard links:
    one inode each), deleting one leaves the other whole, and both still load (also with other
    options, re-read from the source)."""
    from lego_core.data.processed import ARRAYS, PROCESSED
    from lego_core.core.paths import cache_dir

    root = write_mind(tmp_path / "MINDtiny")
    datasets.add(root, name="one")
    datasets.add(root, name="two")
    (processed,) = cache_dir("datasets", PROCESSED).iterdir()
    stored = sorted(p.relative_to(processed) for p in processed.rglob("*.npy")) + [Path("items.parquet")]
    assert Path(ARRAYS) / "seq_items.npy" in stored and Path("cold.npy") in stored
    for name in stored:
        inodes = {(folder / name).stat().st_ino for folder in (processed, store.folder_of("one"),
                                                                 store.folder_of("two"))}
        assert len(inodes) == 1, name
    assert json.loads((store.folder_of("two") / "meta.json").read_text())["name"] == "two"
    datasets.remove("one")
    again = datasets.load("two")
    assert again.name == "two" and again.num_items == 7 and again.info["cache"] == "hit"
    assert datasets.load("two", seed=1).num_items == 7


def test_a_copied_registration_leaves_no_processed_entry(tmp_path):
    """Uploads are read from a temporary folder nobody reads again: the registration's links are
    the one copy, and the processed cache keeps nothing for that folder."""
    from lego_core.data.processed import PROCESSED
    from lego_core.core.paths import cache_dir

    datasets.add(write_mind(tmp_path / "MINDtiny"), name="up", copy=True)
    assert not list(cache_dir("datasets", PROCESSED).iterdir())
    assert datasets.load("up").num_items == 7


def test_format_given_names_and_unknown_options(tmp_path):
    folder = shop_folder(tmp_path)
    with pytest.raises(DataError, match="unknown format 'nope'"):
        datasets.add(folder, format="nope")
    with pytest.raises(DataError, match=r"format 'shop-test' takes options \['negatives', 'seed'\], not \['x'\]"):
        datasets.add(folder, x=1)
    with pytest.raises(DataError, match="not allowed"):
        datasets.add(folder, name="../up")
    datasets.add(folder, name="s1", format="shop-test")
    with pytest.raises(DataError, match="already registered"):
        datasets.add(folder, name="s1")
    with pytest.raises(DataError, match="in no known dataset format"):
        datasets.add(tmp_path / "my shop!" / "items.csv")


def test_bad_input_registers_nothing(tmp_path):
    bad = [row[:] for row in BEHAVIORS_TRAIN]
    bad[1][2] = "yesterday"
    root = write_mind(tmp_path / "m", beh_train=bad)
    with pytest.raises(DataError, match=r"behaviors.tsv line 2: time \(column 3\)"):
        datasets.add(root, name="broken")
    assert store.manifest("broken") is None
    assert not [p for p in store.folder_of("x").parent.iterdir() if not p.name.startswith(".processed")]


def test_rederive_with_other_options_and_source_gone(tmp_path):
    folder = shop_folder(tmp_path)
    datasets.add(folder, name="shop", negatives=3)
    other = datasets.load("shop", negatives=5)
    assert (other.splits["test"].sizes == 6).all() and other.info.get("cache") != "hit"
    datasets.check("shop", {"negatives": 5, "cold_items": 0.2})
    assert datasets.load("shop", cold_items=0.25).cold.sum() >= 3  # leave-last-out: cold items allowed
    datasets.add(write_mind(tmp_path / "m"), name="mind-a")
    with pytest.raises(DataError, match="cold_items applies to leave-last-out"):
        datasets.check("mind-a", {"cold_items": 0.1})
    assert datasets.load("mind-a", seed=4).info["seed"] == 4
    (folder / "items.csv").unlink()
    with pytest.raises(DataError, match=r"its source .* is gone"):
        datasets.load("shop", negatives=4)
    assert (datasets.load("shop").splits["test"].sizes == 4).all()  # the stored options still load


def test_copied_sources_outlive_the_original(tmp_path):
    folder = shop_folder(tmp_path)
    datasets.add(folder, name="up", copy=True, negatives=3)
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    assert sorted(p.name for p in (store.folder_of("up") / "sources" / "data").iterdir()) == ["clicks.csv",
                                                                                                  "items.csv"]
    assert (datasets.load("up", negatives=2).splits["test"].sizes == 3).all()


def test_show_and_remove(tmp_path):
    datasets.add(write_mind(tmp_path / "m"), name="mind-b")
    info = datasets.show("mind-b")
    assert info["counts"]["items"] == 7 and info["item_columns"][0] == "item_id"
    assert info["protocol"] and len(info["items"]) == 5 and info["text_fields"] == ["title", "abstract"]
    datasets.remove("mind-b")
    assert store.manifest("mind-b") is None and (tmp_path / "m" / "train" / "news.tsv").is_file()
    with pytest.raises(DataError, match="no dataset named 'mind-b'"):
        datasets.show("mind-b")


def test_listing_uses_stored_counts_without_loading(tmp_path, monkeypatch, capsys):
    datasets.add(shop_folder(tmp_path), name="shop", negatives=3)

    def fail(*a, **k):
        raise AssertionError("a registered dataset was loaded")

    monkeypatch.setattr(store, "load", fail)
    monkeypatch.setattr(store, "read_dataset", fail)
    monkeypatch.setattr(formats, "all_formats", lambda: [SHOP.__class__(**{**SHOP.__dict__, "read": fail})])
    assert cli.main(["datasets"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("shop"))
    assert line.split()[1:7] == ["12", "3", "12", "3", "3", "3"]


def test_cli_add_show_remove_formats(tmp_path, capsys, known_formats):
    root = write_mind(tmp_path / "m")
    assert cli.main(["datasets", "add", str(root), "--name", "cli-mind", "--set", "seed=3"]) == 0
    out, err = capsys.readouterr()
    assert "registered 'cli-mind': 7 items, 4 users" in out
    assert err.strip() == f"reading {root.resolve()} as {_mind_name(known_formats)} ..."
    assert store.manifest("cli-mind")["options"] == {"seed": 3}
    assert cli.main(["datasets", "add", str(shop_folder(tmp_path)), "--format", "shop-test"]) == 0
    assert cli.main(["datasets", "show", "cli-mind"]) == 0
    out = capsys.readouterr().out
    assert "counts:   7 items, 4 users" in out and "columns ['item_id'" in out
    assert cli.main(["datasets", "formats"]) == 0
    out = capsys.readouterr().out
    assert "shop-test: Shop tables (test)" in out and "layout:   a folder with items.csv" in out
    assert cli.main(["datasets", "remove", "cli-mind"]) == 0
    assert store.manifest("cli-mind") is None
    assert cli.main(["datasets", "cli-mind"]) == 2  # listing by name still works (and says it is unknown)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = [row[:] for row in BEHAVIORS_TRAIN]
    bad[2][4] = "N1-1 N2"
    root = write_mind(tmp_path / "m", beh_train=bad)
    assert cli.main(["datasets", "add", str(root), "--name", "bad"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("reading ") and len(err) == 2
    assert err[1].startswith("error: ") and "behaviors.tsv line 3" in err[1] and "'-1'/'-0'" in err[1]
    assert store.manifest("bad") is None
    for argv, message in ((["datasets", "add", str(tmp_path / "none")], "does not exist"),
                          (["datasets", "add", str(root), "--set", "seed"], "must look like key=value"),
                          (["datasets", "show", "nope"], "no dataset named 'nope'"),
                          (["datasets", "remove"], "takes one NAME"),
                          (["datasets", "--format", "x"], "go with `datasets add")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


def test_load_by_path_uses_any_format(tmp_path):
    folder = shop_folder(tmp_path)
    assert datasets.load(folder, negatives=2).num_items == 12
    datasets.check(str(folder), {"negatives": 2})
    with pytest.raises(DataError, match="takes options"):
        datasets.check(str(folder), {"n": 2})


# ---- uploads ------------------------------------------------------------------------------
def _zip(entries: dict[str, bytes], links=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _folder_zip(root):
    return _zip({f"MINDtiny/{p.relative_to(root).as_posix()}": p.read_bytes()
                 for p in sorted(root.rglob("*")) if p.is_file()})


def test_zip_of_a_folder_registers_with_copies(tmp_path):
    data = _folder_zip(write_mind(tmp_path / "src"))
    dest = tmp_path / "upload"
    dest.mkdir()
    path = registration.unpack_uploads([("MINDtiny.zip", data)], dest)
    assert path == dest / "MINDtiny" and (path / "train" / "news.tsv").is_file()
    datasets.add(path, copy=True)
    for p in sorted(dest.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    assert datasets.load("MINDtiny", seed=5).info["seed"] == 5


@pytest.mark.parametrize("entries,links,message", [
    ({"../x": b"1"}, (), r"outside its folder \('\.\.'\)"),
    ({"a/../../x": b"1"}, (), r"outside its folder"),
    ({"/etc/x": b"1"}, (), "absolute"),
    ({"C:/x": b"1"}, (), "absolute"),
    ({"ok.txt": b"1"}, ("link",), "is a link"),
    ({"a\x01b": b"1"}, (), "name part"),
])
def test_unsafe_zips_are_refused_before_writing(tmp_path, entries, links, message):
    dest = tmp_path / "upload"
    dest.mkdir()
    with pytest.raises(DataError, match=message):
        registration.unpack_uploads([("d.zip", _zip({"fine.txt": b"x", **entries}, links))], dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "x").exists()


def test_uploaded_files_are_written_under_checked_base_names(tmp_path):
    dest = tmp_path / "upload"
    dest.mkdir()
    path = registration.unpack_uploads([("C:\\Users\\me\\items.csv", b"a"), ("../clicks.csv", b"b")], dest)
    assert path == dest and sorted(p.name for p in dest.iterdir()) == ["clicks.csv", "items.csv"]
    with pytest.raises(DataError, match="appears twice"):
        registration.unpack_uploads([("x/items.csv", b"a")], dest)
    with pytest.raises(DataError, match="not a readable zip"):
        registration.unpack_uploads([("d.zip", b"nope")], tmp_path)
    with pytest.raises(DataError, match="name part"):
        registration.unpack_uploads([(".hidden", b"a")], tmp_path)


def test_mind_registrations_made_before_formats_still_load(tmp_path):
    root = write_mind(tmp_path / "m").resolve()
    store.register("old-mind", "mind", mind.build_mind(root, seed=1, name="old-mind"), {"seed": 1},
                      {"folder": str(root)}, "MIND folder m")  # what register_mind wrote before formats
    assert datasets.load("old-mind").info["seed"] == 1 and datasets.load("old-mind", seed=2).info["seed"] == 2
    with pytest.raises(DataError, match="cold_items applies to leave-last-out"):
        datasets.check("old-mind", {"cold_items": 0.1})
    assert datasets.register_mind("new-mind", root).name == "new-mind"
    assert store.manifest("new-mind")["kind"] == "format"


def test_zip_bombs_and_unreadable_sources_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 10)
    dest = tmp_path / "upload"
    dest.mkdir()
    with pytest.raises(DataError, match="unpacks to"):
        registration.unpack_uploads([("big.zip", _zip({"a.txt": b"x" * 100}))], dest)
    assert list(dest.iterdir()) == []

    def denied(path, **options):
        raise PermissionError(13, "Permission denied", str(path / "items.csv"))

    monkeypatch.setattr(formats, "all_formats", lambda: [SHOP.__class__(**{**SHOP.__dict__, "read": denied})])
    with pytest.raises(DataError, match=r"items.csv could not be read \(Permission denied\)"):
        datasets.add(shop_folder(tmp_path), name="denied")
    assert store.manifest("denied") is None


# ---- issue 19: lenient content, BOMs, time ranges, encodings, archives, stale folders -------------
def _latest_small(folder, empty_titles=(3, 5), bom=False):
    """MovieLens latest-small's layout (ratings.csv + movies.csv, its own CSV quoting) with a few
    movies whose title is empty."""
    folder.mkdir(parents=True, exist_ok=True)
    movies = ["movieId,title,genres"] + [
        f'{m},{"" if m in empty_titles else chr(34) + f"Movie {m}, The ({1990 + m})" + chr(34)},Comedy|Drama'
        for m in range(1, 9)]
    ratings = ["userId,movieId,rating,timestamp"] + [f"{u},{m},4.0,{964982000 + 100 * u + m}"
                                                     for u in range(1, 5) for m in range(1, 9)]
    prefix = "\ufeff" if bom else ""
    (folder / "movies.csv").write_text(prefix + "\n".join(movies) + "\n", encoding="utf-8")
    (folder / "ratings.csv").write_text(prefix + "\n".join(ratings) + "\n", encoding="utf-8")
    return folder


def test_movielens_latest_small_with_empty_titles_registers_and_notes_the_gap(tmp_path, capsys):
    folder = _latest_small(tmp_path / "ml-latest-small")
    assert cli_main.main(["datasets", "add", str(folder), "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: 2 items have no title; first at movies.csv line 4") and "--strict" in err
    assert store.manifest("ml-latest-small") is None
    with pytest.raises(DataError, match="first at movies.csv line 4"):
        datasets.add(folder, strict=True)

    assert cli_main.main(["datasets", "add", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "warning: 2 items have no title; first at movies.csv line 4" in err.splitlines()
    assert store.manifest("ml-latest-small")["content_gaps"] == ["2 items have no title; first at movies.csv line 4"]
    assert cli_main.main(["datasets", "show", "ml-latest-small"]) == 0
    assert "gaps:     2 items have no title; first at movies.csv line 4" in capsys.readouterr().out
    items = datasets.load("ml-latest-small").items
    assert len(items) == 8 and items.set_index("item_id").loc["3", "title"] == ""


def test_movielens_dat_empty_title_is_kept_but_a_short_line_is_refused(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n2::::Drama\n3::Heat (1995)::Crime\n",
                                       encoding="latin-1")
    (folder / "users.dat").write_text("1::F::1::10::48067\n")
    (folder / "ratings.dat").write_text("".join(f"1::{m}::5::97830{m}\n2::{m}::3::97831{m}\n" for m in (1, 2, 3)))
    with pytest.warns(UserWarning, match="1 item has no title; first at movies.dat line 2"):
        d = datasets.add(folder, name="ml1m-gap")
    assert d.info["content_gaps"] == ["1 item has no title; first at movies.dat line 2"]
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n2::Heat (1995)\n3::Up (2009)::Drama\n",
                                       encoding="latin-1")
    with pytest.raises(DataError, match=r"movies.dat line 2 has no Genres"):
        datasets.add(folder, name="ml1m-short")


def test_bom_prefixed_files_are_detected_and_read(tmp_path):
    d = datasets.add(_latest_small(tmp_path / "bom", empty_titles=(), bom=True), name="ml-bom")
    assert d.info["content_gaps"] == [] and d.num_items == 8
    assert formats.detect(tmp_path / "bom").name == "ml-csv"


@pytest.mark.parametrize("stamp, line", [("1e13", 3), ("-1e11", 3)])
def test_timestamps_outside_a_datetime_are_one_line_errors(tmp_path, stamp, line):
    folder = _latest_small(tmp_path / "ml", empty_titles=())
    rows = (folder / "ratings.csv").read_text().splitlines()
    rows[line - 1] = ",".join(rows[line - 1].split(",")[:3] + [stamp])
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        datasets.add(folder, name="ml-far")
    message = str(caught.value)
    assert "\n" not in message and "ratings.csv" in message and f"'timestamp' line {line}" in message
    assert "outside years 1678-2262" in message


@pytest.mark.parametrize("year", ["1019", "2300"])
def test_mind_times_out_of_range_name_file_line_and_column(tmp_path, year):
    root = write_mind(tmp_path / "m")
    path = root / "train" / "behaviors.tsv"
    rows = path.read_text().splitlines()
    fields = rows[1].split("\t")
    fields[2] = fields[2].replace("2019", year)
    rows[1] = "\t".join(fields)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"behaviors.tsv: column 'time \(column 3\)' line 2 has time .*{year}"):
        mind.build_mind(root, name="far")


def test_goodreads_date_errors_cite_the_file_line_of_the_read_interaction(tmp_path):
    from lego_core.data.io import parse_times
    import numpy as np
    import pandas as pd
    dates = pd.Series(["Tue Oct 17 04:38:53 -0700 2300"])
    with pytest.raises(DataError, match="line 6 has time"):
        parse_times(dates, ["%a %b %d %H:%M:%S %z %Y"], tmp_path / "g.json", "date_added", False, "x",
                    utc=True, rows=np.array([5]))


def test_non_utf8_adressa_and_nan_ebnerd_ids_are_one_line_errors(tmp_path):
    import numpy as np
    import pyarrow as pa
    from lego_core.data.readers import adressa, ebnerd
    day = tmp_path / "20170101"
    day.write_bytes(b'{"userId": "u1", "time": 1, "id": "a1", "title": "ok"}\n'
                    b'{"userId": "u2", "time": 2, "id": "a2", "title": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"20170101 line 2 is not valid UTF-8") as caught:
        adressa.read_events(day)
    assert "\n" not in str(caught.value)
    table = pa.table({"article_id": pa.array([1.0, np.nan, 3.0])})
    with pytest.raises(DataError, match=r"articles.parquet: column 'article_id' row 2 holds nan"):
        ebnerd._ints(table, "article_id", tmp_path / "articles.parquet")


def _member_flags(data: bytes, *, flag: int | None = None, method: int | None = None) -> bytes:
    """A zip with its (only) member's general-purpose flag or compression method patched, in both
    the local header (offset 6/8) and the central directory entry (offset 8/10)."""
    data = bytearray(data)
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    if flag is not None:
        data[local + 6:local + 8] = flag.to_bytes(2, "little")
        data[central + 8:central + 10] = flag.to_bytes(2, "little")
    if method is not None:
        data[local + 8:local + 10] = method.to_bytes(2, "little")
        data[central + 10:central + 12] = method.to_bytes(2, "little")
    return bytes(data)


def _deflated(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("case, match", [
    ("corrupt", r"x.zip: entry 'd/news.tsv' is corrupt"),
    ("encrypted", r"x.zip: entry 'd/news.tsv' is encrypted"),
    ("deflate64", r"x.zip: entry 'd/news.tsv' uses Deflate64 compression"),
    ("ratio", r"x.zip: entry 'd/news.tsv' expands over 200x"),
    ("line", r"x.zip: entry 'd/news.tsv' has a line over 4,096 bytes"),
])
def test_bad_zips_are_one_line_errors_naming_the_member(tmp_path, monkeypatch, case, match):
    monkeypatch.setattr(archives, "RATIO_FLOOR", 1000)
    monkeypatch.setattr(archives, "MAX_LINE_BYTES", 4096)
    text = b"".join(b"N%d\tnews\ttitle %d\n" % (i, i * 7919 % 1000) for i in range(300))
    data = _deflated({"d/news.tsv": text})
    if case == "corrupt":
        start = data.find(b"PK\x03\x04") + 30 + len("d/news.tsv")
        data = data[:start + 20] + bytes(b ^ 0xFF for b in data[start + 20:start + 60]) + data[start + 60:]
    elif case == "encrypted":
        data = _member_flags(data, flag=1)
    elif case == "deflate64":
        data = _member_flags(data, method=9)
    elif case == "ratio":
        data = _deflated({"d/news.tsv": b"N1\tnews\t" + b"a" * 300_000 + b"\n"})
    elif case == "line":
        data = _deflated({"d/news.tsv": bytes(b for b in range(256) if b != 10) * 20})
    dest = tmp_path / "up"
    dest.mkdir()
    with pytest.raises(DataError, match=match) as caught:
        registration.unpack_uploads([("x.zip", data)], dest)
    assert "\n" not in str(caught.value)


def test_a_zip_path_is_registered_through_the_same_archive_reader(tmp_path):
    folder = _latest_small(tmp_path / "src" / "ml-small", empty_titles=())
    path = tmp_path / "ml-small.zip"
    path.write_bytes(_zip({f"ml-small/{p.name}": p.read_bytes() for p in folder.iterdir()}))
    d = datasets.add(path)
    assert d.name == "ml-small" and d.num_items == 8
    assert (store.folder_of("ml-small") / "sources" / "data" / "ratings.csv").is_file()


def test_stale_tmp_registration_folders_are_cleaned_and_fresh_ones_kept(tmp_path):
    import os
    import time as clock
    root = store.folder_of("x").parent
    stale, fresh = root / ".tmp-old-1234abcd", root / ".tmp-new-5678ef90"
    for folder in (stale, fresh):
        (folder / "part").mkdir(parents=True)
        (folder / "part" / "arrays.npz").write_bytes(b"x")
    old = clock.time() - registration.STALE_TMP_SECONDS - 60
    for path in (stale, stale / "part", stale / "part" / "arrays.npz"):
        os.utime(path, (old, old))
    datasets.add(_latest_small(tmp_path / "ml", empty_titles=()), name="after-a-crash")
    assert not stale.exists() and (fresh / "part" / "arrays.npz").is_file()


def test_two_adds_of_one_name_at_once_one_wins_the_other_is_refused(tmp_path, monkeypatch):
    folder = shop_folder(tmp_path)
    both_read = threading.Barrier(2, timeout=30)

    def read_then_wait(path, **options):  # both have read and checked the name before either commits
        dataset = _read_shop(path, **options)
        both_read.wait()
        return dataset

    monkeypatch.setattr(formats, "all_formats", lambda: [dataclasses.replace(SHOP, read=read_then_wait)])
    outcomes = []

    def add(negatives):
        try:
            outcomes.append(("ok", datasets.add(folder, name="same", negatives=negatives).info["negatives"]))
        except DataError as exc:
            outcomes.append(("refused", str(exc)))

    threads = [threading.Thread(target=add, args=(n,)) for n in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    winner = next(value for kind, value in outcomes if kind == "ok")
    refusal = next(value for kind, value in outcomes if kind == "refused")
    assert "'same' is already registered" in refusal and "--overwrite" in refusal and "\n" not in refusal
    assert store.manifest("same")["options"]["negatives"] == winner


def test_cli_add_refuses_a_taken_name_unless_overwrite(tmp_path, capsys):
    folder = shop_folder(tmp_path)
    assert cli.main(["datasets", "add", str(folder), "--name", "shop", "--format", "shop-test"]) == 0
    capsys.readouterr()
    assert cli.main(["datasets", "add", str(folder), "--name", "shop", "--format", "shop-test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'shop' is already registered" in err[0] and "--overwrite" in err[0]
    assert cli.main(["datasets", "add", str(folder), "--name", "shop", "--format", "shop-test", "--overwrite",
                     "--set", "negatives=2"]) == 0
    assert store.manifest("shop")["options"]["negatives"] == 2
    assert cli.main(["datasets", "show", "shop", "--overwrite"]) == 2


@pytest.mark.parametrize("layout", ["npy", "npz"])
def test_a_registration_whose_arrays_disagree_with_its_counts_is_listed_unloadable(tmp_path, layout):
    """The listing reads only array headers (once per file, a legacy arrays.npz opened once) and
    names the array that no longer matches the counts recorded at registration."""
    import numpy as np
    from lego_core.data.processed import ARRAYS

    datasets.add(write_mind(tmp_path / "MINDtiny"), name="tiny", copy=True)
    folder = store.folder_of("tiny")
    users = np.load(folder / ARRAYS / "users.npy")
    if layout == "npy":
        (folder / ARRAYS / "users.npy").unlink()  # a hard link shared with the processed copy: replace it
        np.save(folder / ARRAYS / "users.npy", users[:-1])
        where = folder / ARRAYS / "users.npy"
    else:  # a format-1 registration: one zipped arrays.npz, no arrays/ folder
        import shutil

        arrays = {p.stem: np.load(p) for p in (folder / ARRAYS).glob("*.npy")}
        arrays["users"] = users[:-1]
        np.savez_compressed(folder / "arrays.npz", **arrays)
        shutil.rmtree(folder / ARRAYS)
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(meta | {"format": 1}))
        where = folder / "arrays.npz"
    entry = next(e for e in datasets.available() if e["name"] == "tiny")
    assert entry["loadable"] is False
    assert entry["reason"] == (f"{where} does not match the counts recorded at registration "
                               f"(users has {len(users) - 1:,} entries, expected {len(users):,}); register it again")

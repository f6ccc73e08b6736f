"""Registering a dataset in any format (datasets.add / `datasets add|remove|show|formats`), counts
listed without loading, re-deriving with other options, and safe unpacking of uploads."""
import io
import stat
import zipfile

import pytest

from lego_core.cli.main import main as cli
from lego_core.data import registration
from lego_core.data import datasets
from lego_core.data import formats, registry
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
                      read=_read_shop, defaults=(("negatives", 99), ("seed", 0)))
MIND_TEST = formats.Format(name="mind-test", title="MIND (test)", layout=mind.LAYOUT, protocol="dev split in two",
                           detect=mind.is_mind_folder,
                           read=lambda p, name="mind", seed=0: mind.build_mind(p, seed=seed, name=name))


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
    doc = registry.manifest("MINDtiny")
    assert doc["kind"] == "format" and doc["source"] == {"format": _mind_name(known_formats),
                                                          "path": str((tmp_path / "MINDtiny").resolve())}
    assert doc["options"] == {"seed": 0} and doc["summary"]["items"] == 7
    entry = next(e for e in datasets.available() if e["name"] == "MINDtiny")
    assert entry["summary"]["users"] == 4 and entry["format"] == _mind_name(known_formats)
    shop = datasets.add(shop_folder(tmp_path), negatives=3)
    assert shop.name == "my-shop" and registry.manifest("my-shop")["options"] == {"negatives": 3, "seed": 0}
    assert (datasets.load("my-shop").splits["test"].sizes == 4).all()


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
    assert registry.manifest("broken") is None
    assert not [p for p in registry.folder_of("x").parent.iterdir() if not p.name.startswith(".processed")]


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
    assert sorted(p.name for p in (registry.folder_of("up") / "sources" / "data").iterdir()) == ["clicks.csv",
                                                                                                  "items.csv"]
    assert (datasets.load("up", negatives=2).splits["test"].sizes == 3).all()


def test_show_and_remove(tmp_path):
    datasets.add(write_mind(tmp_path / "m"), name="mind-b")
    info = datasets.show("mind-b")
    assert info["counts"]["items"] == 7 and info["item_columns"][0] == "item_id"
    assert info["protocol"] and len(info["items"]) == 5 and info["text_fields"] == ["title", "abstract"]
    datasets.remove("mind-b")
    assert registry.manifest("mind-b") is None and (tmp_path / "m" / "train" / "news.tsv").is_file()
    with pytest.raises(DataError, match="no dataset named 'mind-b'"):
        datasets.show("mind-b")


def test_listing_uses_stored_counts_without_loading(tmp_path, monkeypatch, capsys):
    datasets.add(shop_folder(tmp_path), name="shop", negatives=3)

    def fail(*a, **k):
        raise AssertionError("a registered dataset was loaded")

    monkeypatch.setattr(registry, "load", fail)
    monkeypatch.setattr(registry, "read_dataset", fail)
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
    assert registry.manifest("cli-mind")["options"] == {"seed": 3}
    assert cli.main(["datasets", "add", str(shop_folder(tmp_path)), "--format", "shop-test"]) == 0
    assert cli.main(["datasets", "show", "cli-mind"]) == 0
    out = capsys.readouterr().out
    assert "counts:   7 items, 4 users" in out and "columns ['item_id'" in out
    assert cli.main(["datasets", "formats"]) == 0
    out = capsys.readouterr().out
    assert "shop-test: Shop tables (test)" in out and "layout:   a folder with items.csv" in out
    assert cli.main(["datasets", "remove", "cli-mind"]) == 0
    assert registry.manifest("cli-mind") is None
    assert cli.main(["datasets", "cli-mind"]) == 2  # listing by name still works (and says it is unknown)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = [row[:] for row in BEHAVIORS_TRAIN]
    bad[2][4] = "N1-1 N2"
    root = write_mind(tmp_path / "m", beh_train=bad)
    assert cli.main(["datasets", "add", str(root), "--name", "bad"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("reading ") and len(err) == 2
    assert err[1].startswith("error: ") and "behaviors.tsv line 3" in err[1] and "'-1'/'-0'" in err[1]
    assert registry.manifest("bad") is None
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
    registry.register("old-mind", "mind", mind.build_mind(root, seed=1, name="old-mind"), {"seed": 1},
                      {"folder": str(root)}, "MIND folder m")  # what register_mind wrote before formats
    assert datasets.load("old-mind").info["seed"] == 1 and datasets.load("old-mind", seed=2).info["seed"] == 2
    with pytest.raises(DataError, match="cold_items applies to leave-last-out"):
        datasets.check("old-mind", {"cold_items": 0.1})
    assert datasets.register_mind("new-mind", root).name == "new-mind"
    assert registry.manifest("new-mind")["kind"] == "format"


def test_zip_bombs_and_unreadable_sources_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(registration, "MAX_UNPACKED_BYTES", 10)
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
    assert registry.manifest("denied") is None

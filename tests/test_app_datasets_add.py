"""The Datasets page's "Any format" tab (AppTest): register from a path or an upload (files or a
zip of the folder), one-line errors that save nothing, LEGO_DATA_ROOTS and LEGO_READ_ONLY."""
from __future__ import annotations

import os

import pytest

from lego_core.data import datasets
from lego_core.data import formats, store
from test_app_pages import _navigation_mode, button, start  # noqa: F401  (_navigation_mode: autouse fixture)
from test_data_mind import BEHAVIORS_TRAIN, write_mind
from test_data_review_formats import review, write_amazon_2018, write_ml1m, write_mlcsv
from test_datasets_add import SHOP, _folder_zip, _zip, known_formats, shop_folder  # noqa: F401 (autouse fixture)


def uploader(at):
    at.radio(key="add-source").set_value("Upload files").run()
    return next(u for u in at.get("file_uploader") if u.label.startswith("Dataset files"))


def registered() -> list[str]:
    return [d["name"] for d in datasets.available() if d["kind"] == "format"]


def test_format_choice_lists_every_format_with_its_layout(known_formats):
    at = start()
    box = at.selectbox(key="add-format")
    assert box.options[0] == "detect automatically" and len(box.options) == len(known_formats) + 1
    assert "items.csv and clicks.csv" in box.help
    box.set_value("shop-test").run()
    assert any("every row a click" in c.value for c in at.caption)


def test_register_a_folder_on_this_machine(tmp_path):
    at = start()
    at.text_input(key="add-name").set_value("tiny")
    at.text_input(key="add-path").set_value(str(write_mind(tmp_path / "m")))
    button(at, "Register").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["dataset"] == "tiny" and any("Registered 'tiny'" in s.value for s in at.success)
    assert {m.label: m.value for m in at.metric}["Items"] == "7"
    listed = at.dataframe[0].value
    assert listed.set_index("name").loc["tiny", "items"] == 7  # counts recorded at registration


def test_register_a_zip_upload_and_several_files(tmp_path):
    at = start()
    uploader(at).upload("MINDtiny.zip", _folder_zip(write_mind(tmp_path / "src")), "application/zip")
    at.run()
    button(at, "Register upload").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["dataset"] == "MINDtiny"
    assert (store.folder_of("MINDtiny") / "sources" / "data" / "train" / "news.tsv").is_file()
    assert datasets.load("MINDtiny", seed=2).info["seed"] == 2  # re-derived from the copies
    folder = shop_folder(tmp_path)
    at = start()
    at.text_input(key="add-name").set_value("shop")
    at.selectbox(key="add-format").set_value("shop-test")
    uploader(at).set_value([(p.name, p.read_bytes(), "text/csv") for p in sorted(folder.iterdir())])
    at.run()
    button(at, "Register upload").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["dataset"] == "shop" and "shop" in registered()


@pytest.mark.parametrize("entries,message", [({"../x": b"1"}, "outside its folder"), ({"/abs/x": b"1"}, "absolute")])
def test_unsafe_zip_is_refused_in_one_line(tmp_path, entries, message):
    at = start()
    uploader(at).upload("evil.zip", _zip(entries), "application/zip")
    at.run()
    button(at, "Register upload").click().run()
    assert not at.exception and len(at.error) == 1 and message in at.error[0].value
    assert "\n" not in at.error[0].value and registered() == [] and not (tmp_path / "x").exists()


def test_bad_upload_names_the_uploaded_file_and_saves_nothing(tmp_path):
    bad = [row[:] for row in BEHAVIORS_TRAIN]
    bad[1][2] = "yesterday"
    at = start()
    uploader(at).upload("MINDtiny.zip", _folder_zip(write_mind(tmp_path / "src", beh_train=bad)), "application/zip")
    at.run()
    button(at, "Register upload").click().run()
    assert not at.exception and len(at.error) == 1
    error = at.error[0].value
    assert "MINDtiny/train/behaviors.tsv line 2" in error and "lego-upload-" not in error
    assert registered() == [] and at.session_state["dataset"] == "ml-100k"


def test_path_outside_the_data_roots_is_refused(tmp_path, monkeypatch):
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "escape").symlink_to(write_mind(tmp_path / "elsewhere"))
    monkeypatch.setenv("LEGO_DATA_ROOTS", str(roots))
    at = start()
    for path in (tmp_path / "elsewhere", roots / "escape", f"{roots}/../elsewhere"):
        at.text_input(key="add-path").set_value(str(path))
        button(at, "Register").click().run()
        assert not at.exception and len(at.error) == 1, path
        assert "LEGO\\_DATA\\_ROOTS" in at.error[0].value
    at.text_input(key="add-path").set_value(str(roots))
    button(at, "Register").click().run()  # the root itself holds the link out: refused too
    assert len(at.error) == 1 and "'escape' in path" in at.error[0].value and registered() == []
    (roots / "escape").unlink()
    button(at, "Register").click().run()
    assert len(at.error) == 1 and "no known dataset format" in at.error[0].value and registered() == []


def test_a_link_inside_the_data_roots_to_a_file_outside_is_refused(tmp_path, monkeypatch):
    """Regression: the folder named was confined, the files in it were not: a MIND folder under an
    allowed root whose news.tsv links to a file outside was read. Every file is confined by its
    resolved path."""
    roots, outside = tmp_path / "roots", write_mind(tmp_path / "elsewhere")
    folder = write_mind(roots / "mind")
    (folder / "train" / "news.tsv").unlink()
    (folder / "train" / "news.tsv").symlink_to(outside / "train" / "news.tsv")
    monkeypatch.setenv("LEGO_DATA_ROOTS", str(roots))
    at = start()
    at.text_input(key="add-path").set_value(str(folder))
    button(at, "Register").click().run()
    assert not at.exception and len(at.error) == 1
    assert "train/news.tsv" in at.error[0].value and "LEGO\\_DATA\\_ROOTS" in at.error[0].value
    assert registered() == []
    (folder / "train" / "news.tsv").unlink()  # a link that stays inside the roots is fine
    (folder / "train" / "news.tsv").symlink_to(write_mind(roots / "copy") / "train" / "news.tsv")
    button(at, "Register").click().run()
    assert not at.error and registered() == ["mind"]


def test_read_only_hides_the_tab(monkeypatch):
    monkeypatch.setenv("LEGO_READ_ONLY", "1")
    at = start()
    assert not at.exception and not [t for t in at.text_input if t.key == "add-path"]
    assert not at.get("file_uploader")
    assert os.environ["LEGO_READ_ONLY"] == "1"


def test_every_dataset_is_listed_with_counts_at_start_up(tmp_path, monkeypatch):
    datasets.add(shop_folder(tmp_path), name="shop", negatives=3)
    monkeypatch.setattr(formats, "all_formats", lambda: [])  # a registered dataset is listed, not read
    at = start()
    listed = at.dataframe[0].value.set_index("name")
    assert listed.loc["shop", "items"] == 12 and listed.loc["shop", "kind"] == "shop-test"
    assert listed.loc["synthetic", "items"] == 2000 and listed.loc["ml-100k", "items"] == 1682


def _log(n_items: int = 40, n_users: int = 12, per_user: int = 10) -> list[tuple[int, int, int]]:
    """(user, item, time) clicks: every user clicks `per_user` items, a few positions apart."""
    return [(u + 1, (3 * u + k) % n_items + 1, 1_000_000 + 100 * u + k) for u in range(n_users) for k in range(per_user)]


def _ml1m(folder):
    return write_ml1m(folder, [f"{i}::Movie {i} (1995)::Drama" for i in range(1, 41)],
                      [f"{u}::{i}::4::{t}" for u, i, t in _log()])


def _mlcsv(folder):
    return write_mlcsv(folder, "movieId,title,genres\n" + "".join(f"{i},Movie {i} (1995),Drama\n" for i in range(1, 41)),
                       "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},4.0,{t}\n" for u, i, t in _log()))


def _amazon(folder):
    return write_amazon_2018(folder, [review(f"U{u}", f"B{i:02d}", t) for u, i, t in _log()],
                             [{"asin": f"B{i:02d}", "title": f"Product {i}", "category": ["Luxury Beauty"]}
                              for i in range(1, 41)])


@pytest.mark.parametrize("make,fmt", [(_ml1m, "ml-1m"), (_mlcsv, "ml-csv"), (_amazon, "amazon")])
def test_sidebar_offers_cold_items_for_every_leave_last_out_registration(tmp_path, make, fmt):
    name = f"reg-{fmt}"
    datasets.add(make(tmp_path / fmt), name=name, format=fmt)
    at = start(dataset=name)
    assert not at.exception and not at.error, [e.value for e in at.error]
    slider = at.slider(key=f"cold-{name}")  # offered by its declaration, not by a list of kinds
    train = {m.label: m.value for m in at.metric}["Train impressions"]
    slider.set_value(10).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["cold_items"][name] == 0.1
    cold = datasets.load(name, cold_items=0.1)
    assert cold.info["cold_items"] == 0.1 and cold.cold.sum() >= round(0.1 * cold.num_items)
    shown = {m.label: m.value for m in at.metric}["Train impressions"]  # the page loaded it with 10% cold
    assert shown == f"{cold.summary()['train_impressions']:,}" and shown != train


def test_sidebar_offers_no_cold_items_where_the_declaration_says_it_does_not_apply(tmp_path):
    datasets.add(write_mind(tmp_path / "m"), name="news")
    at = start(dataset="news", cold_items={"news": 0.2})  # a stale choice from an earlier registration
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not [s for s in at.slider if s.key == "cold-news"]
    assert {m.label: m.value for m in at.metric}["Items"] == "7"  # loaded without cold_items

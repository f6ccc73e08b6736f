"""Every page of the Streamlit app through streamlit.testing's AppTest: it renders without exceptions
with and without runs, and the main interactions work (pick a dataset, choose bricks with the select
boxes, launch a tiny run, see it finish, see its metrics, embeddings and recommendations)."""
from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest, app_test

from lego_core import jobs, runs

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = ["pages/datasets.py", "pages/builder.py", "pages/training.py", "pages/embeddings.py", "pages/users.py",
         "pages/experiments.py"]
TINY = {"n_items": 120, "n_users": 60, "n_topics": 4, "n_impressions": 60, "seed": 3}
TIMEOUT = 120


class _NavigationPages(PagesManager):
    """AppTest re-detects the legacy pages/ folder mode before every run (a running server does it
    once, and app.py's st.navigation turns it off); pages then rerun once per run
    (pages/_common.require_navigation), which drops button clicks. Start each run in
    st.navigation mode, as a running server is after its first request."""

    def __init__(self, *args, **kwargs):
        PagesManager.uses_pages_directory = False
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _navigation_mode(monkeypatch):
    monkeypatch.setattr(app_test, "PagesManager", _NavigationPages)


def start(**state) -> AppTest:
    """The app after its first run, with session state preset (e.g. dataset='synthetic')."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def show(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, f"{page}: {[e.value for e in at.exception]}"
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def texts(at: AppTest) -> str:
    """All visible message text on the page (info, warning, error, success, markdown, captions)."""
    parts = [e.value for kind in ("info", "warning", "error", "success", "markdown", "caption", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def wait_finished(run_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = jobs.status(run_id)
        if status["state"] in runs.FINAL_STATES and not jobs.run_pids(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {status['state']}; log:\n{jobs.logs(run_id)}")
        time.sleep(0.5)


def _length(values) -> int:
    """Number of values in a plotly JSON array (plain list or base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return len(values)


# ---- without runs ---------------------------------------------------------------------------------
def test_every_page_renders_on_the_default_dataset_without_runs():
    at = start()
    assert not at.exception
    assert at.session_state["dataset"] == "ml-100k"
    assert at.sidebar.selectbox(key="dataset").value == "ml-100k"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items"] == "1,682" and metrics["Users"] == "943"
    for page in PAGES[1:]:
        show(at, page)
        if page != "pages/builder.py":  # every empty page says what to do next
            assert any("Builder" in i.value for i in at.info), page
    show(at, "pages/builder.py")
    assert at.selectbox(key="slot-content").value and at.selectbox(key="slot-predictor").value


def test_a_page_url_opened_first_still_runs_inside_the_navigation(monkeypatch):
    monkeypatch.setattr(app_test, "PagesManager", PagesManager)  # legacy pages/ detection on every run
    at = start()
    for page in ("pages/training.py", "pages/datasets.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert at.sidebar.selectbox(key="dataset").value == "ml-100k"  # app.py ran: sidebar present
    assert at.title[0].value == "Datasets"


def test_pick_a_dataset_on_the_datasets_page_changes_the_current_dataset():
    at = start(synthetic_options=TINY)
    at.selectbox(key="datasets-pick").set_value("synthetic").run()
    assert not at.exception
    assert at.session_state["dataset"] == "synthetic"
    assert at.sidebar.selectbox(key="dataset").value == "synthetic"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items"] == "120" and metrics["Users"] == "60"
    assert len(at.get("plotly_chart")) >= 2  # history length, impression size (+ categories)
    at.sidebar.selectbox(key="dataset").set_value("ml-100k").run()
    assert at.selectbox(key="datasets-pick").value == "ml-100k"
    assert {m.label: m.value for m in at.metric}["Items"] == "1,682"


def test_registering_a_bad_mind_folder_shows_one_line_and_saves_nothing(tmp_path):
    at = start()
    at.text_input(key="mind-name").set_value("broken")
    at.text_input(key="mind-folder").set_value(str(tmp_path / "nowhere"))
    [b for b in at.button if b.label == "Load MIND folder"][0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    from lego_core.data import datasets

    assert "broken" not in [d["name"] for d in datasets.available()]


def _tables(bad_time: bool = False) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(0)
    items = "id,name,genre\n" + "".join(f"i{i},<b>Item</b> {i},{'abc'[i % 3]}\n" for i in range(30))
    rows = [(f"u{u}", f"i{rng.integers(30)}", "soon" if bad_time and u == 3 and k == 2 else 1000 + 10 * k + u)
            for u in range(10) for k in range(6)]
    inter = "uid,iid,ts\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    return items.encode(), inter.encode()


def test_upload_tables_with_a_column_mapping_registers_a_dataset():
    items, inter = _tables()
    at = start()
    at.text_input(key="tables-name").set_value("shop")
    at.get("file_uploader")[0].upload("items.csv", items, "text/csv")
    at.get("file_uploader")[1].upload("interactions.csv", inter, "text/csv")
    at.run()
    assert not at.exception
    assert at.selectbox(key="map-item-id").value == "id" and at.selectbox(key="map-category").value == "genre"
    assert at.multiselect(key="map-text").value == ["name"]
    assert at.selectbox(key="map-user").value == "uid" and at.selectbox(key="map-time").value == "ts"
    at.selectbox(key="map-item").set_value("iid").run()
    button(at, "Register tables").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["dataset"] == "shop"
    assert any("Registered 'shop'" in s.value for s in at.success)
    assert any("repeated" in w.value for w in at.warning)  # the reader's note on dropped rows
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items"] == "30" and metrics["Users"] == "10"
    assert at.dataframe[1].value["name"].iloc[0] == "<b>Item</b> 0"  # shown as text, not HTML


def test_upload_with_a_bad_timestamp_shows_one_line_and_saves_nothing():
    items, inter = _tables(bad_time=True)
    at = start()
    at.text_input(key="tables-name").set_value("broken-shop")
    at.get("file_uploader")[0].upload("items.csv", items, "text/csv")
    at.get("file_uploader")[1].upload("interactions.csv", inter, "text/csv")
    at.run()
    at.selectbox(key="map-item").set_value("iid").run()
    button(at, "Register tables").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "ts" in at.error[0].value and "\n" not in at.error[0].value
    from lego_core.data import datasets

    assert "broken-shop" not in [d["name"] for d in datasets.available()]
    assert at.session_state["dataset"] == "ml-100k"


# ---- hostile or careless input (sharing the app on a network) ----------------------------------------
def _upload_pair(at: AppTest, items: tuple[str, bytes], inter: tuple[str, bytes], name: str) -> AppTest:
    at.text_input(key="tables-name").set_value(name)
    at.file_uploader(key="tables-items").set_value((items[0], items[1], "text/csv"))
    at.file_uploader(key="tables-inter").set_value((inter[0], inter[1], "text/csv"))
    return at.run()


def test_upload_names_are_never_used_as_paths(tmp_path, monkeypatch):
    """Regression: `Path(tmp) / upload.name` wrote '../../x.csv' outside the temporary folder and let
    two uploads of the same name overwrite each other."""
    scratch = tmp_path / "outside" / "scratch"
    scratch.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # a traversal from here lands in outside/
    items, inter = _tables()
    at = _upload_pair(start(), ("../../x.csv", items), ("../../x.csv", inter), "traversal-shop")
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key="map-item").set_value("iid").run()
    button(at, "Register tables").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["dataset"] == "traversal-shop"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items"] == "30" and metrics["Users"] == "10"  # the items table was not overwritten
    assert [p.name for p in (tmp_path / "outside").rglob("*")] == ["scratch"]  # nothing written, nothing left


@pytest.mark.parametrize("name, expected", [("items.exe", ".csv, .tsv or .parquet"), ("x\x00.csv", "control"),
                                            ("", "empty"), ("items", ".csv, .tsv or .parquet")])
def test_an_upload_with_an_unusable_name_gets_one_line(name, expected):
    """Regression: a name outside the allow-list (sent by a client that skips the browser's filter)
    raised inside Streamlit, a traceback instead of a message."""
    at = start()
    at.file_uploader(key="tables-items").set_value((name, b"id,name\n1,a\n", "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and "\n" not in at.error[0].value and expected in at.error[0].value
    assert "Items table" in at.error[0].value


def test_upload_limit_is_sane_and_stated_in_the_help():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert 0 < config["server"]["maxUploadSize"] <= 200  # MB, each upload is held whole in memory
    at = start()
    for key in ("tables-items", "tables-inter"):
        assert f"{config['server']['maxUploadSize']:,} MB" in at.file_uploader(key=key).help


def test_an_oversize_upload_is_refused_in_one_line(monkeypatch):
    from pages import _common

    monkeypatch.setattr(_common, "max_upload_mb", lambda: 1)
    at = start()
    at.file_uploader(key="tables-items").set_value(("big.csv", b"id,name\n" + b"1,a\n" * 300_000, "text/csv"))
    at.run()
    assert not at.exception and len(at.error) == 1
    assert "big.csv" in at.error[0].value and "1 MB upload limit" in at.error[0].value


def test_errors_show_file_content_as_short_escaped_text():
    """Regression: st.error rendered Markdown from file content (links, emphasis) and echoed it whole."""
    items, inter = _tables()
    inter = inter.replace(b"\nu3,", b"\nu3,i1,**[go](http://evil.example)**" + b"x" * 200 + b"\nu3,", 1)
    at = _upload_pair(start(), ("items.csv", items), ("clicks.csv", inter), "escaped-shop")
    at.selectbox(key="map-item").set_value("iid").run()
    button(at, "Register tables").click().run()
    assert not at.exception and len(at.error) == 1
    error = at.error[0].value
    assert r"\*\*\[go\](http:\/\/evil.example)" in error and "[go](" not in error
    assert "“clicks.csv”" in error and "lego-upload" not in error  # named as uploaded, not by its temporary copy
    assert "x" * 60 not in error and "…" in error


def test_safe_text_helper():
    from pages import _common as ui

    assert ui.safe("**a** _b_ `c` [d](http://e.example) <b>f</b> & $g$ ~h~ i|j") == (
        r"\*\*a\*\* \_b\_ \`c\` \[d\](http:\/\/e.example) &lt;b&gt;f&lt;/b&gt; &amp; \$g\$ \~h\~ i\|j")
    assert ui.safe("- x") == r"\- x" and ui.safe("# x") == r"\# x" and ui.safe("1. x") == r"1\. x"
    assert ui.safe("www.e.example me@e.example") == r"www\.e.example me\@e.example"
    assert ui.message("first line\nsecond") == "first line"
    assert ui.message(f"bad value '{'v' * 100}' here") == f"bad value '{'v' * 40}…' here"
    assert ui.message("users' files aren't cut") == "users' files aren't cut"
    assert len(ui.message("y" * 1000)) == ui.MESSAGE_CHARS
    assert ui.one_line(ValueError("")) == "ValueError"


def test_mind_folder_is_confined_to_the_data_roots(tmp_path, monkeypatch):
    roots, elsewhere = tmp_path / "roots", tmp_path / "elsewhere"
    roots.mkdir()
    elsewhere.mkdir()
    (roots / "escape").symlink_to(elsewhere)
    monkeypatch.setenv("LEGO_DATA_ROOTS", f"{tmp_path / 'other'}{os.pathsep}{roots}")
    at = start()
    assert any("LEGO_DATA_ROOTS" in c.value.replace("\\", "") for c in at.caption)
    at.text_input(key="mind-name").set_value("mind-x")
    for folder in (elsewhere, f"{roots}/../elsewhere", roots / "escape", "/etc"):
        at.text_input(key="mind-folder").set_value(str(folder))
        button(at, "Load MIND folder").click().run()
        assert not at.exception and len(at.error) == 1, folder
        assert "LEGO\\_DATA\\_ROOTS" in at.error[0].value and "\n" not in at.error[0].value
    at.text_input(key="mind-folder").set_value(str(roots))  # holds the link out: refused too
    button(at, "Load MIND folder").click().run()
    assert len(at.error) == 1 and "escape” in folder" in at.error[0].value
    (roots / "escape").unlink()  # allowed: lego_core says what is wrong
    button(at, "Load MIND folder").click().run()
    assert len(at.error) == 1 and "not a MIND folder" in at.error[0].value


def test_mind_folder_with_a_link_out_of_the_data_roots_is_refused(tmp_path, monkeypatch):
    """Regression: a folder under an allowed root whose dev/ is a link to a folder outside was read."""
    from test_data_mind import write_mind

    roots = tmp_path / "roots"
    folder = write_mind(roots / "mind")
    outside = write_mind(tmp_path / "elsewhere")
    import shutil
    shutil.rmtree(folder / "dev")
    (folder / "dev").symlink_to(outside / "dev")
    monkeypatch.setenv("LEGO_DATA_ROOTS", str(roots))
    at = start()
    at.text_input(key="mind-name").set_value("mind-x")
    at.text_input(key="mind-folder").set_value(str(folder))
    button(at, "Load MIND folder").click().run()
    assert not at.exception and len(at.error) == 1
    assert "“dev” in folder" in at.error[0].value and "LEGO\\_DATA\\_ROOTS" in at.error[0].value


def test_mind_folder_that_is_a_file_is_named_not_read(tmp_path):
    secret = tmp_path / "notes.tsv"
    secret.write_text("SECRET\tCONTENT\n")
    at = start()
    at.text_input(key="mind-name").set_value("mind-x")
    at.text_input(key="mind-folder").set_value(str(secret))
    button(at, "Load MIND folder").click().run()
    assert not at.exception and len(at.error) == 1
    assert "notes.tsv" in at.error[0].value and "is a file" in at.error[0].value
    assert "SECRET" not in at.error[0].value


def test_read_only_mode_hides_adding_and_launching(monkeypatch):
    monkeypatch.setenv("LEGO_READ_ONLY", "1")
    at = start(dataset="synthetic", synthetic_options=TINY)
    assert not at.exception
    assert not at.file_uploader and not [b for b in at.button if b.label == "Load MIND folder"]
    assert any("LEGO_READ_ONLY" in i.value.replace("\\", "") for i in at.info)
    show(at, "pages/builder.py")
    assert "Launch" not in [b.label for b in at.button]
    monkeypatch.setenv("LEGO_READ_ONLY", "0")
    at.run()
    assert not button(at, "Launch").disabled


def test_builder_select_boxes_explain_incompatible_bricks_and_disable_launch():
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    at.selectbox(key="slot-content").set_value("cnn").run()
    at.selectbox(key="slot-behavior").set_value("poly").run()
    at.selectbox(key="slot-predictor").set_value("dot").run()
    assert not at.exception
    assert any("poly" in w.value and "dot" in w.value for w in at.warning), [w.value for w in at.warning]
    assert button(at, "Launch").disabled
    at.selectbox(key="slot-predictor").set_value("miner").run()
    assert not at.warning and not button(at, "Launch").disabled
    recipe = [c.value for c in at.code if "content:" in c.value][0]
    assert "name: cnn" in recipe and "name: poly" in recipe and "name: miner" in recipe
    assert "name: synthetic" in recipe
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] not in ("", "0") and "MB" in metrics["Memory (estimate)"]


def test_builder_counts_language_model_parameters_only_on_request():
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    at.selectbox(key="slot-content").set_value("lm_encoder").run()
    assert not at.exception and not at.error
    assert "Parameters" not in [m.label for m in at.metric]  # loading the LM waits for a click
    button(at, "Count parameters").click().run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"].endswith("M")  # MiniLM's ~22M weights, mostly frozen
    assert metrics["Trainable"] != metrics["Parameters"]
    assert at.selectbox(key="p-content-lm_encoder-tuning").options == ["frozen", "top", "lora", "full"]


def test_builder_times_an_epoch_on_request_before_launch():
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    assert "Epoch (estimate)" not in [m.label for m in at.metric]  # no earlier run: timing waits for a click
    button(at, "Estimate epoch time").click().run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epoch (estimate)"].endswith(" s") or "min" in metrics["Epoch (estimate)"]
    assert any("steps timed here" in c.value and "steps per epoch" in c.value for c in at.caption)


def test_builder_item_fields_list_the_dataset_columns_and_go_into_the_recipe():
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    fields = at.multiselect(key="fields-synthetic-0")
    assert "title" in fields.options and "item_id" not in fields.options
    fields.set_value(["title"]).run()
    assert not at.exception and not at.error
    assert "fields:\n  - title" in at.code[0].value or "fields: [title]" in at.code[0].value


def test_builder_forms_follow_the_catalog_and_presets_load():
    from lego_core.bricks import get

    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    assert at.selectbox(key="preset").value == "nrms"  # the default preset, named as such
    at.selectbox(key="preset").set_value("naml").run()  # picking a preset loads it
    assert not at.exception and at.selectbox(key="preset").value == "naml"
    from lego_core.bricks.recipe import Recipe

    naml = Recipe.preset("naml")
    assert at.selectbox(key="slot-content").value == naml.content.name
    assert at.selectbox(key="slot-behavior").value == naml.behavior.name
    spec = get(naml.content.name, "content")
    for p in spec.params:  # one widget per declared parameter, of the declared type
        key = f"p-content-{spec.name}-{p.name}"
        kind = {"int": "number_input", "float": "number_input", "bool": "checkbox",
                "choice": "selectbox"}.get(p.type, "text_input")
        widget = getattr(at, kind)(key=key)
        if p.type == "int" and p.high is not None:
            assert widget.max == p.high and widget.min == p.low
    ints = [p for p in spec.params if p.type == "int"]
    if ints:
        p = ints[0]
        new = int(p.default) + 1 if p.high is None or p.default + 1 <= p.high else int(p.default) - 1
        at.number_input(key=f"p-content-{spec.name}-{p.name}").set_value(new).run()
        recipe = [c.value for c in at.code if "content:" in c.value][0]
        assert f"{p.name}: {new}" in recipe


def test_builder_names_settings_in_words_and_the_preset_box_says_custom_once_they_differ():
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
    dim, lr = at.number_input(key="t-dim"), at.number_input(key="t-lr")
    assert (dim.label, lr.label) == ("Embedding size", "Learning rate")
    assert "training.dim" in dim.help and "training.lr" in lr.help  # the config key, for the YAML
    assert at.number_input(key="p-content-attention-heads").label == "Attention heads"
    preset = at.selectbox(key="preset")
    assert preset.value == "nrms" and preset.options[0] == "Custom"
    width = dim.value
    dim.set_value(2 * width).run()  # the change shows in the box at once, not one rerun later
    assert at.selectbox(key="preset").value == "custom" and not at.exception
    at.number_input(key="t-dim").set_value(width).run()
    assert at.selectbox(key="preset").value == "nrms"
    at.selectbox(key="slot-content").set_value("cnn").run()
    assert at.selectbox(key="preset").value == "custom"
    show(at, "pages/users.py")
    show(at, "pages/builder.py")  # back on the Builder: still Custom, not the first preset in the list
    assert at.selectbox(key="preset").value == "custom"
    at.toggle(key="quick").set_value(True).run()
    assert any("Quick test run: epochs 1, steps per epoch (cap) 20" in c.value for c in at.caption)


def test_cold_items_setting_reaches_the_builders_recipe_and_the_hybrid_option_shows():
    at = show(start(dataset="ml-100k"), "pages/builder.py")
    assert not at.exception
    at.slider(key="cold-ml-100k").set_value(10).run()
    recipe = [c.value for c in at.code if "content:" in c.value][0]
    assert "cold_items: 0.1" in recipe
    assert at.selectbox(key="t-item_id").options == ["off", "added", "gated"]  # words; the key is in the help
    assert at.selectbox(key="t-item_id").label == "Item ID vector" and "training.item_id" in at.selectbox(key="t-item_id").help
    at.selectbox(key="t-item_id").set_value("gate").run()
    assert "item_id: gate" in [c.value for c in at.code if "content:" in c.value][0]
    assert not at.exception


# ---- with runs --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run launched from the Builder (quick test run on a tiny synthetic dataset), finished."""
    cache = tmp_path_factory.mktemp("app-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(cache))
        patch.setattr(app_test, "PagesManager", _NavigationPages)  # module scope: before the autouse one
        at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/builder.py")
        at.toggle(key="quick").set_value(True).run()
        button(at, "Launch").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        run_id = at.session_state["last_launch"]
        assert any(run_id in s.value for s in at.success)
        status = wait_finished(run_id)
        assert status["state"] == "succeeded", f"{status}\n{jobs.logs(run_id)}"
        yield {"cache": cache, "run_id": run_id}


@pytest.fixture
def with_runs(trained, monkeypatch):
    monkeypatch.setenv("LEGO_CACHE_DIR", str(trained["cache"]))
    return trained


def test_launched_run_shows_its_curves_metrics_and_log_on_training(with_runs):
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/training.py")
    assert at.selectbox(key="training_run").value == with_runs["run_id"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "succeeded" and metrics["Progress"] == "100%"
    assert 0 <= float(metrics["AUC"]) <= 1
    assert any("done: test" in c.value for c in at.code)  # the log tail
    assert any("Explore" in str(link.label) for link in at.get("page_link"))


def test_experiments_table_filters_and_compares(with_runs):
    at = show(start(), "pages/experiments.py")
    frame = at.dataframe[0].value
    assert with_runs["run_id"] in frame["run_id"].tolist()
    assert {"test_auc", "content", "behavior", "predictor", "parameters", "train_seconds"} <= set(frame.columns)
    assert [c.key for c in at.get("plotly_chart")] == ["warm-cold-chart", "compare-chart"]
    at.text_input(key="exp-text").set_value("no-such-brick").run()
    assert any("No run matches" in i.value for i in at.info)


def test_embeddings_map_and_user_highlight(with_runs):
    at = show(start(dataset="synthetic", synthetic_options=TINY, **{"emb-method": "PCA"}), "pages/embeddings.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    points = sum(_length(trace.get("x", [])) for trace in figure["data"])
    assert points == TINY["n_items"]
    assert any("Draw a lasso" in c.value for c in at.caption)
    users = runs.open(with_runs["run_id"]).user_embeddings()[0]
    at.selectbox(key="emb-user").set_value(str(users[0])).run()
    assert not at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace.get("name") for trace in figure["data"]]
    assert "user recommended" in names and "user history" in names
    # the items' traces are built once per map and kept: a highlight only adds its marks, and they
    # are gone once the user is cleared
    kept = at.session_state["emb-figures"]["map-a"][2]
    at.selectbox(key="emb-user").set_value(None).run()
    assert not at.exception and at.session_state["emb-figures"]["map-a"][2] is kept
    cleared = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert "user recommended" not in [trace.get("name") for trace in cleared]
    assert sum(_length(trace.get("x", [])) for trace in cleared) == TINY["n_items"]


def test_users_page_lists_history_and_recommendations_with_clicks(with_runs):
    at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/users.py")
    user = at.selectbox(key="users-user").value
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Test impressions' clicks"]) >= 1  # users with test impressions come first
    recs = at.dataframe[0].value
    assert len(recs) == 10 and recs["rank"].tolist() == list(range(1, 11))
    assert np.all(np.diff(recs["score"].to_numpy()) <= 1e-9)
    assert recs["clicked_in_test"].dtype == bool
    assert recs["cold"].dtype == bool and not recs["cold"].any()  # synthetic data: every item trained on
    history = at.dataframe[1].value
    assert history["position"].tolist() == list(range(1, len(history) + 1))
    clicked = set(at.dataframe[2].value["item_id"])  # the user's test clicks
    assert set(recs.loc[recs["clicked_in_test"], "item_id"]) <= clicked
    assert set(history["item_id"]) & set(recs["item_id"]) <= clicked  # history is left out, test clicks not
    at.text_input(key="users-query").set_value(str(user)).run()
    assert at.selectbox(key="users-user").value == user
    at.number_input(key="users-k").set_value(5).run()
    assert len(at.dataframe[0].value) == 5


def test_delete_asks_for_confirmation(with_runs):
    copy = runs.create(runs.open(with_runs["run_id"]).recipe())
    copy.set_training_status(state="failed", error="boom")
    at = show(start(training_run=copy.id), "pages/training.py")
    assert at.selectbox(key="training_run").value == copy.id
    assert any("boom" in e.value for e in at.error)
    button(at, "Delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    button(at, "Keep it").click().run()
    assert copy.path.exists()
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    assert not at.exception and not copy.path.exists()
    assert copy.id not in [r.id for r in runs.list()]


STAND_IN = r'''
import os, signal, sys, time
from lego_core import runs
run = runs.open(sys.argv[1])
def stop(*_):
    run.set_training_status(state="cancelled", ended=time.time())
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
run.set_training_status(state="running", pid=os.getpid(), started=time.time(), progress=0.25, epoch=0)
run.append("steps", {"epoch": 0, "step": 10, "global_step": 10, "loss": 0.9})
time.sleep(60)
'''


def test_cancel_and_resume_from_the_training_page(tmp_path, monkeypatch):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    from lego_core.bricks.recipe import Recipe

    recipe = Recipe.preset("nrms").with_overrides({"dataset.name": "synthetic", "dataset.options": TINY})
    run_id = jobs.launch(recipe, device="cpu", command=[sys.executable, str(script), "{run_dir}"])
    try:
        deadline = time.monotonic() + 30
        while runs.open(run_id).status().get("progress") != 0.25:  # the stand-in itself is running
            assert time.monotonic() < deadline
            time.sleep(0.1)
        at = show(start(dataset="synthetic", synthetic_options=TINY), "pages/training.py")
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["State"] == "running" and metrics["Progress"] == "25%"
        assert button(at, "Delete").disabled and button(at, "Resume").disabled
        button(at, "Cancel").click().run()
        assert not at.exception
        deadline = time.monotonic() + 30  # the button only signals; wait for the processes to exit
        while runs.open(run_id).state != "cancelled" or jobs.run_pids(runs.open(run_id).status()):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        at.run()
        assert not button(at, "Resume").disabled
        button(at, "Resume").click().run()
        assert runs.open(run_id).status().get("resumes") == 1
    finally:
        if runs.open(run_id).state in runs.ACTIVE_STATES:
            jobs.cancel(run_id, timeout=5)


def test_training_shows_one_progress_number_and_says_when_a_run_was_deleted(tmp_path, monkeypatch):
    from tests.test_training import tiny_recipe

    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    run = runs.create(tiny_recipe("pooling", "additive", "dot"))
    run.set_training_status(state="cancelled", progress=0.4118, epoch=0)
    at = show(start(dataset="synthetic", synthetic_options=TINY, training_run=run.id), "pages/training.py")
    table = at.dataframe[0].value.set_index("run_id")
    shown = {m.label: m.value for m in at.metric}["Progress"]
    assert shown == "41%" and f"{table.loc[run.id, 'progress']:.0f}%" == shown  # one number, one format
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    assert not at.exception and not run.path.exists()
    assert any(f"Deleted run {run.id}" in s.value for s in at.success)  # not a silent empty page
    at.run()
    assert not any("Deleted run" in s.value for s in at.success)  # said once


def test_any_format_speaks_of_its_format_box_and_stays_open_after_registering(tmp_path, monkeypatch):
    from tests.test_data_review_formats import write_ml1m

    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "cache"))

    def inner_tabs(at):  # the Add a dataset tab's own tabs: (their place in it, their proto)
        add = at.get("tab_container")[0].children[4]
        place = next(i for i, child in add.children.items() if getattr(child, "type", "") == "tab_container")
        return place, add.children[place].proto.tab_container

    at = start()
    assert "Format box" in " ".join(c.value for c in at.caption) and "python -m" not in " ".join(
        c.value for c in at.caption if "any format" in c.value)
    before, _ = inner_tabs(at)
    at.text_input(key="add-path").set_value(str(tmp_path)).run()
    button(at, "Register").click().run()
    assert len(at.error) == 1 and "Format box" in at.error[0].value and "pass --format" not in at.error[0].value
    at.text_input(key="add-path").set_value(str(write_ml1m(tmp_path / "ml")))
    button(at, "Register").click().run()
    assert not at.error and any("Registered 'ml'" in s.value for s in at.success)
    place, tabs = inner_tabs(at)
    assert place == before  # the message does not push the tabs down (a new element: back to the first tab)
    assert tabs.default_tab_index == 2  # "Any format", where the dataset was added from
    at.run()
    assert inner_tabs(at)[1].default_tab_index == 2


def test_while_a_run_trains_the_app_compiles_umap_for_the_first_map(tmp_path, monkeypatch):
    import streamlit as st

    from lego_core.explore import maps
    from tests.test_training import tiny_recipe

    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    run = runs.create(tiny_recipe("pooling", "additive", "dot"))
    calls = []
    monkeypatch.setattr(maps, "warm_umap", lambda force=False: calls.append(force))
    monkeypatch.setattr(st.runtime, "exists", lambda: True)  # as under a server (AppTest has no runtime)
    run.set_training_status(state="succeeded", progress=1.0)
    show(start(dataset="synthetic", synthetic_options=TINY), "pages/training.py")
    assert True not in calls  # nothing trains: only app.py's unforced warm-up (a no-op while uncompiled)
    run.set_training_status(state="running", pid=os.getpid(), started=time.time(), progress=0.1)
    monkeypatch.setattr(runs.Run, "is_active", lambda self: True)
    show(start(dataset="synthetic", synthetic_options=TINY), "pages/training.py")
    assert True in calls  # forced: compiled even before numba's cache holds umap's code

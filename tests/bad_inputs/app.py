"""Bad inputs for the Streamlit app, driven through streamlit.testing's AppTest: hostile upload names,
unsupported or oversize uploads, MIND folders outside LEGO_DATA_ROOTS, Markdown in file content and
read-only mode (LEGO_READ_ONLY=1).

A page shows its errors instead of raising, so each `act` returns the AppTest and `check` asserts
what the page showed: one `st.error` line naming the file or field (escaped), no exception element.
`keep` lists the folder where a traversing upload name would land: `act` points tempfile at
<tmp>/outside/scratch, so `../x.csv` from a temporary folder there reaches scratch/ and `../../x.csv`
reaches outside/; the snapshot proves nothing appeared (and the temporary folders were removed).
"""
from __future__ import annotations

import html
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest, app_test

from tests.bad_inputs import Case
from tests.test_app_pages import TINY, _NavigationPages, _tables, button, show, start

ITEMS, INTER = _tables()
CSV = "text/csv"


# ---- arranging ------------------------------------------------------------------------------------
def _folders(tmp: Path) -> dict:
    """outside/ (with a file that must stay as it is), outside/scratch/ (the temporary folder root)."""
    outside = tmp / "outside"
    name = f"shop-{tmp.name[-12:]}".strip("-_.")  # the in-process dataset cache keys by name
    (outside / "scratch").mkdir(parents=True)
    (outside / "keep.txt").write_text("unchanged\n")
    return {"tmp": tmp, "outside": outside, "scratch": outside / "scratch", "name": name}


def _roots(tmp: Path) -> dict:
    """roots/ (LEGO_DATA_ROOTS) and elsewhere/ beside it, each with a file that must stay as it is."""
    ctx = _folders(tmp)
    roots, elsewhere = tmp / "roots", tmp / "elsewhere"
    roots.mkdir()
    elsewhere.mkdir()
    (roots / "news.tsv").write_text("N1\tnews\tsub\tA title\tAn abstract\thttp://x\t\t\n")
    (elsewhere / "secret.tsv").write_text("SECRET-CONTENT\n")
    ctx.update(roots=roots, elsewhere=elsewhere)
    return ctx


def _keep_outside(ctx: dict) -> list[Path]:
    return [ctx["outside"]]


def _keep_roots(ctx: dict) -> list[Path]:
    return [ctx["outside"], ctx["roots"], ctx["elsewhere"]]


# ---- acting -------------------------------------------------------------------------------------
@contextmanager
def _app(ctx: dict, **env: str) -> Iterator[pytest.MonkeyPatch]:
    """The app as a server would run it (st.navigation mode), temporary folders under scratch/,
    LEGO_READ_ONLY / LEGO_DATA_ROOTS as given (unset otherwise). The page caches live in this
    process across cases (each with its own LEGO_CACHE_DIR): start them empty."""
    from pages import _common

    _common.available_datasets.clear()
    _common._load.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_test, "PagesManager", _NavigationPages)
        patch.setattr(tempfile, "tempdir", str(ctx["scratch"]))
        for name in ("LEGO_READ_ONLY", "LEGO_DATA_ROOTS"):
            if name in env:
                patch.setenv(name, env[name])
            else:
                patch.delenv(name, raising=False)
        yield patch


def _start() -> AppTest:
    return start(dataset="synthetic", synthetic_options=TINY)


def upload(items: tuple[str, bytes] | None = ("items.csv", ITEMS),
           inter: tuple[str, bytes] | None = ("interactions.csv", INTER), *, register: bool = False,
           limit_mb: int | None = None, text: list[str] | None = None):
    """act: upload the two tables under the given (client-sent) names; optionally map and register."""
    def act(ctx: dict) -> AppTest:
        with _app(ctx) as patch:
            if limit_mb is not None:
                from pages import _common

                patch.setattr(_common, "max_upload_mb", lambda: limit_mb)
            at = _start()
            at.text_input(key="tables-name").set_value(ctx["name"])
            if items is not None:
                at.file_uploader(key="tables-items").set_value((items[0], items[1], CSV))
            if inter is not None:
                at.file_uploader(key="tables-inter").set_value((inter[0], inter[1], CSV))
            at.run()
            if register:
                assert not at.error, [e.value for e in at.error]
                at.selectbox(key="map-item").set_value("iid")
                if text is not None:
                    at.multiselect(key="map-text").set_value(text)
                at.run()
                button(at, "Register tables").click().run()
        return at
    return act


def mind(folder: str | Callable, **env) -> Callable:
    """act: submit the MIND form with `folder` (a string, or ctx -> string), env as given."""
    def act(ctx: dict) -> AppTest:
        values = {k: v(ctx) if callable(v) else v for k, v in env.items()}
        with _app(ctx, **values):
            at = _start()
            at.text_input(key="mind-name").set_value("mind-x")
            at.text_input(key="mind-folder").set_value(folder(ctx) if callable(folder) else folder)
            button(at, "Load MIND folder").click().run()
        return at
    return act


def _roots_env(ctx: dict) -> str:
    return str(ctx["roots"])


# ---- checking -----------------------------------------------------------------------------------
def _errors(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def rendered(markdown: str) -> str:
    """What a visitor reads: Markdown backslash escapes and HTML entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def error(*names: str, raw: tuple[str, ...] = (), absent: tuple[str, ...] = ()) -> Callable:
    """check: exactly one one-line st.error; a visitor reads every name in it (case-insensitive); its
    Markdown source holds every `raw` string and none of `absent`."""
    def check(ctx: dict, at: AppTest) -> None:
        errors = _errors(at)
        assert len(errors) == 1, errors
        text = errors[0]
        assert "\n" not in text and "\r" not in text, text
        for name in names:
            assert name.lower() in rendered(text).lower(), f"{name!r} not in {rendered(text)!r}"
        for part in raw:
            assert part in text, f"{part!r} not in {text!r}"
        for bad in absent:
            assert bad not in text, f"{bad!r} in {text!r}"
    return check


def registered(items: int = 30, users: int = 10) -> Callable:
    """check: no error, the uploaded dataset is current with the uploaded counts, nothing in outside/."""
    def check(ctx: dict, at: AppTest) -> None:
        assert not _errors(at)
        assert at.session_state["dataset"] == ctx["name"]
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Items"] == str(items) and metrics["Users"] == str(users), metrics
        assert sorted(p.name for p in ctx["outside"].rglob("*")) == ["keep.txt", "scratch"]
    return check


def _previewed(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    assert len(at.dataframe) >= 2 and at.selectbox(key="map-item-id").value == "id"


def _keep_etc(ctx: dict) -> list[Path]:
    """Where the old code wrote an upload named /etc/x.csv: it must stay missing (or unchanged)."""
    return [ctx["outside"], Path("/etc/x.csv")]


def _bad_timestamp(value: str) -> bytes:
    return INTER.replace(b"\nu3,", f"\nu3,i1,{value}\nu3,".encode(), 1)


def _items_with_columns(header: str) -> bytes:
    lines = ITEMS.decode().splitlines()
    return "\n".join([header] + lines[1:]).encode() + b"\n"


MD_COLUMN = "[x](http://evil.example)"


def _markdown_caption(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    assert at.session_state["dataset"] == ctx["name"]
    shown = [c.value for c in at.caption if "Text fields" in c.value]
    assert shown and r"\[x\](http:\/\/evil.example)" in shown[0], shown
    assert all(MD_COLUMN not in c.value for c in at.caption)
    assert all("**" not in c.value.replace(r"\*", "") for c in at.caption if "Text fields" in c.value)


def _mind_tree(tmp: Path, time_value: str) -> dict:
    """A MIND folder inside roots/ whose train behaviors.tsv has `time_value` as a time."""
    ctx = _roots(tmp)
    folder = ctx["roots"] / "mind"
    for split in ("train", "dev"):
        (folder / split).mkdir(parents=True)
        (folder / split / "news.tsv").write_text("N1\tnews\tsub\tA title\tAn abstract\thttp://x\t\t\n"
                                                 "N2\tnews\tsub\tB title\tB abstract\thttp://y\t\t\n")
        (folder / split / "behaviors.tsv").write_text(f"1\tU1\t{time_value}\tN1\tN1-1 N2-0\n")
    ctx["folder"] = folder
    return ctx


SECRET = "SECRET-LINE-" * 20


# ---- read-only mode -----------------------------------------------------------------------------
def _page(page: str, **env: str) -> Callable:
    def act(ctx: dict) -> AppTest:
        with _app(ctx, **env):
            return show(_start(), page)
    return act


def _labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


def _no_add_forms(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    assert not at.file_uploader and "Load MIND folder" not in _labels(at)
    assert any("LEGO_READ_ONLY" in i.value for i in at.info)


def _add_forms(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    assert len(at.file_uploader) == 2 and "Load MIND folder" in _labels(at)


def _no_launch(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    assert "Launch" not in _labels(at)
    assert any("LEGO_READ_ONLY" in i.value for i in at.info)


def _failed_run(error_text: str) -> Callable:
    def arrange(tmp: Path) -> dict:
        from lego_core import runs
        from lego_core.bricks.recipe import Recipe

        ctx = _folders(tmp)
        recipe = Recipe.preset("nrms").with_overrides({"dataset.name": "synthetic", "dataset.options": TINY})
        ctx["run"] = runs.create(recipe)
        ctx["run"].set_training_status(state="failed", error=error_text)
        return ctx
    return arrange


def _keep_run(ctx: dict) -> list[Path]:
    return [ctx["outside"], ctx["run"].path]


def _no_run_actions(ctx: dict, at: AppTest) -> None:
    _errors(at)
    assert not {"Cancel", "Resume", "Delete", "Yes, delete"} & _labels(at), _labels(at)
    assert any("LEGO_READ_ONLY" in i.value for i in at.info)
    assert ctx["run"].path.is_dir()


def _escaped_run_error(ctx: dict, at: AppTest) -> None:
    errors = _errors(at)
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert r"\*\*boom\*\*" in errors[0] and r"\[click\](http:\/\/evil.example)" in errors[0], errors
    assert "&lt;img" in errors[0] and "<img" not in errors[0]


def _described(tmp: Path) -> dict:
    """A dataset registered from Python with Markdown and HTML in its description."""
    from lego_core.data import datasets

    ctx = _folders(tmp)
    (tmp / "items.csv").write_bytes(ITEMS)
    (tmp / "interactions.csv").write_bytes(INTER)
    with warnings.catch_warnings():  # its note on repeated clicks is not what this case is about
        warnings.simplefilter("ignore")
        datasets.register_tables("described", tmp / "items.csv", tmp / "interactions.csv",
                                 {"item_id": "id", "user": "uid", "item": "iid", "timestamp": "ts"},
                                 description="**loud** [x](http://evil.example) <b>bold</b>")
    return ctx


def _described_act(ctx: dict) -> AppTest:
    with _app(ctx):
        return start(dataset="described")


def _escaped_description(ctx: dict, at: AppTest) -> None:
    assert not _errors(at)
    shown = [c.value for c in at.sidebar.caption if "loud" in c.value]
    assert shown == [r"\*\*loud\*\* \[x\](http:\/\/evil.example) &lt;b&gt;bold&lt;/b&gt;"], \
        [c.value for c in at.sidebar.caption]


# ---- the table ----------------------------------------------------------------------------------
CASES: list[Case] = [
    # upload names are never paths
    Case("app-upload-items-parent-traversal", _folders, upload(("../../x.csv", ITEMS), register=True),
         keep=_keep_outside, check=registered()),
    Case("app-upload-inter-parent-traversal", _folders, upload(inter=("../x.csv", INTER), register=True),
         keep=_keep_outside, check=registered()),
    Case("app-upload-absolute-name-in-tmp", _folders,
         lambda ctx: upload((str(ctx["outside"] / "abs.csv"), ITEMS), register=True)(ctx),
         keep=_keep_outside, check=registered()),
    Case("app-upload-absolute-etc-name", _folders, upload(("/etc/x.csv", ITEMS), register=True),
         keep=_keep_etc, check=registered()),
    Case("app-upload-backslash-traversal", _folders, upload(("..\\..\\x.csv", ITEMS), register=True),
         keep=_keep_outside, check=registered()),
    Case("app-upload-same-name-both", _folders, upload(("data.csv", ITEMS), ("data.csv", INTER), register=True),
         keep=_keep_outside, check=registered()),
    Case("app-upload-same-traversal-name-both", _folders,
         upload(("../../data.csv", ITEMS), ("../../data.csv", INTER), register=True),
         keep=_keep_outside, check=registered()),
    Case("app-upload-uppercase-extension", _folders, upload(("ITEMS.CSV", ITEMS)), keep=_keep_outside,
         check=_previewed),
    # names and types the page refuses, in one line
    Case("app-upload-empty-name", _folders, upload(("", ITEMS)), keep=_keep_outside,
         check=error("Items table", "empty")),
    Case("app-upload-nul-in-name", _folders, upload(("x\x00.csv", ITEMS)), keep=_keep_outside,
         check=error("Items table", "control characters", absent=("\x00",))),
    Case("app-upload-newline-in-name", _folders, upload(inter=("a\nb.csv", INTER)), keep=_keep_outside,
         check=error("Interactions table", "a?b.csv")),
    Case("app-upload-unsupported-extension", _folders, upload(("items.exe", ITEMS)), keep=_keep_outside,
         check=error("items.exe", ".csv, .tsv or .parquet")),
    Case("app-upload-no-extension", _folders, upload(("items", ITEMS)), keep=_keep_outside,
         check=error("Items table “items”", ".csv, .tsv or .parquet")),
    Case("app-upload-dot-csv-only-name", _folders, upload((".csv", ITEMS)), keep=_keep_outside,
         check=error(".csv, .tsv or .parquet")),
    Case("app-upload-double-extension", _folders, upload(("items.csv.exe", ITEMS)), keep=_keep_outside,
         check=error("items.csv.exe", ".csv, .tsv or .parquet")),
    Case("app-upload-oversize", _folders, upload(("big.csv", ITEMS + b"#" * (2**20 + 10)), limit_mb=1),
         keep=_keep_outside, check=error("big.csv", "1 MB upload limit")),
    Case("app-upload-not-parquet", _folders, upload(("items.parquet", b"not parquet at all")), keep=_keep_outside,
         check=error("Items table “items.parquet”", "parquet", absent=("lego-upload",))),
    # what files hold is shown as text, briefly, under the name it was uploaded as
    Case("app-upload-error-names-the-upload", _folders,
         upload(inter=("my-clicks.csv", _bad_timestamp("soon")), register=True), keep=_keep_outside,
         check=error("“my-clicks.csv”", "ts", absent=("lego-upload", str(Path(tempfile.gettempdir()))))),
    Case("app-upload-html-in-error-escaped", _folders,
         upload(inter=("clicks.csv", _bad_timestamp("<img src=x onerror=alert(1)>")), register=True),
         keep=_keep_outside, check=error("clicks.csv", "<img src=x", raw=("&lt;img",), absent=("<img",))),
    Case("app-upload-markdown-in-error-escaped", _folders,
         upload(inter=("clicks.csv", _bad_timestamp("[go](http://evil.example)")), register=True),
         keep=_keep_outside, check=error("[go](http://evil.example)", raw=(r"\[go\](http:\/\/evil.example)",),
                                         absent=("[go](",))),
    Case("app-upload-long-content-cut", _folders,
         upload(inter=("clicks.csv", _bad_timestamp(SECRET)), register=True), keep=_keep_outside,
         check=error("clicks.csv", "…", absent=(SECRET[:80],))),
    Case("app-upload-markdown-column-names", _folders,
         upload(("items.csv", _items_with_columns(f"id,{MD_COLUMN},genre")), register=True, text=[MD_COLUMN]),
         keep=_keep_outside, check=_markdown_caption),
    # the MIND folder field stays inside LEGO_DATA_ROOTS and does not echo files
    Case("app-mind-outside-roots", _roots,
         mind(lambda ctx: str(ctx["elsewhere"]), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("LEGO_DATA_ROOTS", "elsewhere")),
    Case("app-mind-dotdot-out-of-root", _roots,
         mind(lambda ctx: f"{ctx['roots']}/../elsewhere", LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("LEGO_DATA_ROOTS")),
    Case("app-mind-symlink-out-of-root", lambda tmp: {**(c := _roots(tmp)),
                                                      "link": (c["roots"] / "link").symlink_to(c["elsewhere"])},
         mind(lambda ctx: str(ctx["roots"] / "link"), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("LEGO_DATA_ROOTS")),
    Case("app-mind-etc-passwd-outside-roots", _roots, mind("/etc/passwd", LEGO_DATA_ROOTS=_roots_env),
         keep=_keep_roots, check=error("/etc/passwd", "LEGO_DATA_ROOTS", absent=("root:",))),
    Case("app-mind-home-outside-roots", _roots, mind("~", LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("LEGO_DATA_ROOTS")),
    Case("app-mind-folder-is-a-file", _roots,
         mind(lambda ctx: str(ctx["roots"] / "news.tsv"), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("news.tsv", "is a file", absent=("A title",))),
    Case("app-mind-file-without-roots", _roots, mind(lambda ctx: str(ctx["elsewhere"] / "secret.tsv")),
         keep=_keep_roots, check=error("secret.tsv", "is a file", absent=("SECRET-CONTENT",))),
    Case("app-mind-nul-in-folder", _roots, mind("/data\x00/x", LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("control characters", absent=("\x00",))),
    Case("app-mind-missing-folder", _roots,
         mind(lambda ctx: str(ctx["roots"] / "nowhere"), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("nowhere", "does not exist")),
    Case("app-mind-inside-roots-not-mind", lambda tmp: {**(c := _roots(tmp)), "e": (c["roots"] / "e").mkdir()},
         mind(lambda ctx: str(ctx["roots"] / "e"), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("not a MIND folder")),
    Case("app-mind-long-content-cut", lambda tmp: _mind_tree(tmp, SECRET),
         mind(lambda ctx: str(ctx["folder"]), LEGO_DATA_ROOTS=_roots_env), keep=_keep_roots,
         check=error("behaviors.tsv", "time", "…", absent=(SECRET[:80],))),
    # read-only mode: look, do not change
    Case("app-read-only-no-add-forms", _folders, _page("pages/datasets.py", LEGO_READ_ONLY="1"),
         keep=_keep_outside, check=_no_add_forms),
    Case("app-read-only-zero-keeps-forms", _folders, _page("pages/datasets.py", LEGO_READ_ONLY="0"),
         keep=_keep_outside, check=_add_forms),
    Case("app-read-only-no-launch", _folders, _page("pages/builder.py", LEGO_READ_ONLY="true"),
         keep=_keep_outside, check=_no_launch),
    Case("app-read-only-no-run-actions", _failed_run("boom"), _page("pages/training.py", LEGO_READ_ONLY="1"),
         keep=_keep_run, check=_no_run_actions),
    # Markdown and HTML from runs and registrations shown as text
    Case("app-run-error-markdown-escaped", _failed_run("**boom** [click](http://evil.example) <img src=x>"),
         _page("pages/training.py"), keep=_keep_run, check=_escaped_run_error),
    Case("app-dataset-description-escaped", _described, _described_act, keep=_keep_outside,
         check=_escaped_description),
]

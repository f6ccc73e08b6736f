"""UI pieces every page shares (not a page itself): the dataset picker state, cached loading of
datasets and runs, one-line display of LegoError, and what a shared app allows (LEGO_READ_ONLY,
LEGO_DATA_ROOTS). Data work stays in lego_core.

Text that comes from files or visitors (dataset and column names, item texts, error messages) goes
through `safe()` (or `message()`/`one_line()`, which call it) before st.error, st.caption,
st.markdown and the like: those render Markdown, and a column named `[x](http://...)` must show as
text, not as a link."""
from __future__ import annotations

import json
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import streamlit as st

from lego_core.core import paths
from lego_core.core.errors import LegoError
from lego_core.explore.frames import plain

DEFAULT_DATASET = "ml-100k"
# Small synthetic sizes for quick test runs (a tiny run finishes in well under a minute on a CPU).
QUICK_SYNTHETIC = {"n_items": 300, "n_users": 200, "n_impressions": 400}


def require_navigation() -> None:
    """Make sure this page runs inside app.py's st.navigation (call first on every page).

    Streamlit treats a folder named pages/ as a legacy multipage app until st.navigation has run
    once in the server process, so the first request for a page URL (a tab restored after a server
    restart) would run the page alone, without the sidebar. Switch to st.navigation and rerun."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


# ---- text from files and visitors ---------------------------------------------------------
# Markdown that Streamlit would act on inside one line: emphasis, code, links and images ([ ]),
# LaTeX ($), strikethrough (~), table cells (|); < > & are already entities (frames.plain).
_MARKDOWN = re.compile(r"([\\`*_\[\]$~|])")
_LINE_START = re.compile(r"^(\s*)(?:([-+=#])|(\d+)([.)]))", re.MULTILINE)  # lists, headings
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.|@)")  # GFM links bare URLs and e-mail addresses
_AUTOLINK_BROKEN = {"://": r":\/\/", "www.": r"www\.", "@": r"\@"}
_QUOTED = re.compile(r"(?<!\w)(['\"])((?:\\.|(?!\1).)*?)\1(?!\w)")
QUOTED_CHARS = 40  # quoted file content in a message is cut to this many characters
MESSAGE_CHARS = 400  # and a whole message to this many


def safe(text: Any) -> str:
    """`text` (from a file, a visitor or an error) as inert Markdown: shown as typed, never as
    formatting, a link, an image or HTML. Builds on frames.plain (the HTML escape of plot labels)."""
    out = _MARKDOWN.sub(r"\\\1", plain(text))
    out = _LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                          out)
    return _AUTOLINK.sub(lambda m: _AUTOLINK_BROKEN[m.group(0).lower()] if m.group(0) != "@" else r"\@", out)


def _shorten_quotes(text: str) -> str:
    """Quoted values (file content a message repeats, e.g. 'x' in "timestamp 'x'") cut to QUOTED_CHARS."""
    def cut(match: re.Match) -> str:
        quote, body = match.group(1), match.group(2)
        return f"{quote}{body[:QUOTED_CHARS]}…{quote}" if len(body) > QUOTED_CHARS else match.group(0)

    return _QUOTED.sub(cut, text)


def message(text: Any) -> str:
    """One line for st.error/st.warning: the first non-empty line of `text`, quoted file content
    shortened, at most MESSAGE_CHARS long, escaped with safe()."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = _shorten_quotes(lines[0]) if lines else ""
    if len(line) > MESSAGE_CHARS:
        line = line[:MESSAGE_CHARS - 1] + "…"
    return safe(line)


def one_line(exc: BaseException) -> str:
    """An exception as one escaped line (LegoErrors are written to fit on one line): see message()."""
    return message(exc) or type(exc).__name__


@contextmanager
def lego_errors() -> Iterator[None]:
    """Show a LegoError raised inside the block with st.error (one line), not a traceback."""
    try:
        yield
    except LegoError as exc:
        st.error(one_line(exc), icon=":material/error:")


# ---- sharing the app ----------------------------------------------------------------------
READ_ONLY_ENV = "LEGO_READ_ONLY"
DATA_ROOTS_ENV = paths.DATA_ROOTS_ENV


def read_only() -> bool:
    """LEGO_READ_ONLY=1 (or true/yes/on): visitors may look, not add datasets, launch, cancel,
    resume or delete runs."""
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def read_only_note(what: str) -> None:
    st.info(f"{what} is switched off: this app runs read-only ({READ_ONLY_ENV}=1).", icon=":material/lock:")


def data_roots() -> list[Path] | None:
    """The folders LEGO_DATA_ROOTS allows the path fields to read (None: any folder)."""
    return paths.data_roots()


def shown_name(name: Any, limit: int = 80) -> str:
    """A visitor-supplied file or folder name for a message, in “ ” (quotes that message() does not
    shorten): control characters as '?', the middle cut when longer than `limit` characters so the
    end (the file name) stays; still to be escaped, e.g. by message()."""
    text = re.sub(r"[\x00-\x1f\x7f]", "?", str(name))
    if len(text) > limit:
        text = text[:limit // 3] + "…" + text[-(limit - limit // 3 - 1):]
    return f"“{text}”"


def data_folder(text: str) -> Path:
    """The folder a visitor typed, confined to LEGO_DATA_ROOTS (every link inside it too); ValueError
    with a one-line reason (naming the folder, not its content) when it may not or cannot be read."""
    try:
        path = paths.confine(text, data_roots(), what="folder", show=shown_name)
    except LegoError as exc:
        message = str(exc)
        raise ValueError(message[:1].upper() + message[1:]) from None
    if path.is_file():
        raise ValueError(f"{shown_name(text.strip())} is a file, not a folder: give the folder holding train/ and dev/.")
    return path


def max_upload_mb() -> int:
    """The upload limit per file (server.maxUploadSize in .streamlit/config.toml), in MB."""
    return int(st.get_option("server.maxUploadSize"))


@contextmanager
def data_notes() -> Iterator[list[str]]:
    """Collect the warnings lego_core's readers give while loading data (rows dropped, ...), to show
    them with the result instead of in the server log."""
    from lego_core.data.io import collecting_notes

    with collecting_notes() as collected, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes: list[str] = []
        try:
            yield notes
        finally:  # the readers' notes by their own channel (another thread may reset `caught`), then others
            found = collected + [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            notes.extend(dict.fromkeys(found))


# ---- datasets ---------------------------------------------------------------------------
@st.cache_data(ttl=15, show_spinner=False)
def available_datasets() -> list[dict]:
    """datasets.available(), refreshed every few seconds (and after a registration)."""
    from lego_core.data import datasets

    return datasets.available()


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _load(name: str, options_json: str, version: str):
    """The one loaded copy of a dataset per app process, shared by every session and page; run
    models are loaded on it (`recommend.scorer(run, dataset)`), never on a second copy."""
    from lego_core.data import datasets

    return datasets.load(name, **json.loads(options_json))


def _version(name: str) -> str:
    """What a name means now: the cache folder and, for a registered dataset, when its registration
    was written, so a name removed and registered again never serves the old dataset."""
    from lego_core.data import store
    from lego_core.core.paths import cache_dir

    path = store.manifest_path(name)
    try:
        written = path.stat().st_mtime_ns if path is not None else 0
    except OSError:
        written = 0
    return f"{cache_dir()}|{written}"


def forget_loaded_datasets() -> None:
    """Drop the loaded datasets kept across reruns (a generated field was just saved: the next
    load joins it into the items), and the run models loaded on them."""
    from lego_core.runs import recommend

    _load.clear()
    recommend.forget()


def current_dataset_name() -> str:
    return st.session_state.get("dataset", DEFAULT_DATASET)


def dataset_declaration(name: str) -> dict:
    """What `datasets.available()` declares for dataset `name` (protocol, cold_items, options; {}
    when it is not listed)."""
    try:
        return next((d for d in available_datasets() if d["name"] == name), {})
    except LegoError:
        return {}


def current_options() -> dict:
    """Options of the current dataset from the sidebar: the synthetic one's sizes, and the share of
    cold items where its declaration says cold_items applies (`cold_items`, set only when above 0)."""
    if current_dataset_name() == "synthetic":
        return dict(st.session_state.get("synthetic_options", QUICK_SYNTHETIC))
    fraction = st.session_state.get("cold_items", {}).get(current_dataset_name(), 0.0)
    applies = dataset_declaration(current_dataset_name()).get("cold_items", False)
    return {"cold_items": fraction} if fraction and applies else {}


# The sidebar's settings in the address (?dataset=ml-1m&cold=10), so a reload or a shared link keeps
# them: the synthetic sizes as (option, label, low, high, query key).
SYNTHETIC_SIZES = (("n_items", "Items", 20, 50000, "items"), ("n_users", "Users", 10, 50000, "users"),
                   ("n_impressions", "Impressions", 10, 100000, "impressions"))
COLD_PERCENT_MAX, COLD_PERCENT_STEP = 50, 5
_FROM_URL = "sidebar-from-url"


def _query_int(key: str, low: int, high: int) -> int | None:
    try:
        value = int(str(st.query_params.get(key, "")).strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


def sidebar_from_url() -> None:
    """On a session's first run, take the sidebar's settings from the address (written there by
    `sidebar_to_url`): the dataset, its cold share, the synthetic sizes. A value out of range or a
    dataset no longer listed is left out (the sidebar then shows its default)."""
    if st.session_state.get(_FROM_URL):
        return
    st.session_state[_FROM_URL] = True
    name = str(st.query_params.get("dataset", "")).strip()
    if not name:
        return
    st.session_state["dataset"] = name
    percent = _query_int("cold", 0, COLD_PERCENT_MAX)
    if percent is not None:
        st.session_state.setdefault("cold_items", {})[name] = (percent - percent % COLD_PERCENT_STEP) / 100
    if name == "synthetic":
        options = st.session_state.setdefault("synthetic_options", dict(QUICK_SYNTHETIC))
        for field, _, low, high, query in SYNTHETIC_SIZES:
            if (value := _query_int(query, low, high)) is not None:
                options[field] = value


def sidebar_to_url() -> None:
    """Write the sidebar's settings into the address (only the keys it owns; other ones stay)."""
    name = current_dataset_name()
    wanted = {"dataset": name}
    if name == "synthetic":
        options = st.session_state.get("synthetic_options", QUICK_SYNTHETIC)
        wanted.update({query: str(int(options.get(field, low))) for field, _, low, _, query in SYNTHETIC_SIZES})
    elif fraction := current_options().get("cold_items"):
        wanted["cold"] = str(round(100 * fraction))
    owned = {"dataset", "cold", *(query for *_, query in SYNTHETIC_SIZES)}
    stale = [k for k in st.query_params if k in owned and k not in wanted]
    for k in stale:
        del st.query_params[k]
    for k, v in wanted.items():
        if st.query_params.get(k) != v:
            st.query_params[k] = v


def load_dataset(name: str | None = None, options: dict | None = None):
    """The Dataset object, cached across reruns and pages; LegoError propagates to the caller."""
    name = name or current_dataset_name()
    options = current_options() if options is None and name == current_dataset_name() else (options or {})
    return _load(name, json.dumps(options, sort_keys=True), _version(name))


def dataset_or_stop(name: str | None = None, options: dict | None = None):
    """Load a dataset, or show the error in one line and stop the page."""
    try:
        return load_dataset(name, options)
    except LegoError as exc:
        st.error(f"Could not load dataset '{safe(name or current_dataset_name())}': {one_line(exc)}",
                 icon=":material/error:")
        st.stop()


def dataset_of_run(run: Any):
    """The dataset a run was trained on (name + options from its recipe)."""
    recipe = run.recipe()
    return dataset_or_stop(recipe.dataset.name, dict(recipe.dataset.options))


# ---- runs -------------------------------------------------------------------------------
def all_runs() -> list:
    """Every run (newest first), after letting the scheduler notice vanished or queued jobs."""
    from lego_core import runs

    try:
        from lego_core import jobs

        jobs.refresh()
    except (ImportError, AttributeError):
        pass
    except LegoError as exc:
        st.warning(one_line(exc))
    return runs.list()


def finished_runs() -> list:
    """Runs that finished training and have an item embedding table."""
    return [r for r in all_runs() if r.state == "succeeded" and (r.path / "embeddings" / "items.npy").exists()]


def run_label(run: Any) -> str:
    """'<id> · content+behavior+predictor on dataset' for select boxes."""
    try:
        return f"{run.id} · {run.recipe().summary()}"
    except LegoError:
        return run.id



def run_dataset(run: Any) -> str | None:
    """The name of the dataset `run` was trained on (None when its recipe cannot be read)."""
    try:
        return run.recipe().dataset.name
    except LegoError:
        return None


EVERY_DATASET = "Runs of every dataset"


def _listing_switched(key: str, own: list[str]) -> None:
    """The toggle went off: a picked run of another dataset gives way to the first of this one."""
    if not st.session_state.get(f"{key}-all") and st.session_state.get(key) not in own:
        st.session_state.pop(key, None)


def pick_run(candidates: list, key: str, label: str = "Run", wanted: str | None = None, where: Any = None,
             toggle_where: Any = None, noun: str = "run") -> str:
    """A run picker (select box `key`) listing the runs of the sidebar's dataset; a toggle beside it
    lists every dataset's runs. A run asked for by id (`wanted`, or preset in st.session_state[key]
    while the sidebar's dataset stays as it was) is shown whatever its dataset: the toggle turns on.
    When the dataset has no run, an empty state says so (and how many other datasets have) and the
    page stops."""
    where, toggle_where = where or st, toggle_where or st
    name = current_dataset_name()
    by_id = {r.id: r for r in candidates}
    dataset_of = {r.id: run_dataset(r) for r in candidates}
    own = [i for i in by_id if dataset_of[i] == name]
    seen_key, all_key = f"{key}-dataset", f"{key}-all"
    if st.session_state.get(seen_key, name) != name and st.session_state.get(key) not in own:
        st.session_state.pop(key, None)  # the sidebar switched datasets: its runs, not the last pick
        st.session_state[all_key] = False
    st.session_state[seen_key] = name
    if wanted in by_id:
        st.session_state[key] = wanted
    if st.session_state.get(key) in by_id and st.session_state[key] not in own:
        st.session_state[all_key] = True
    others = len(by_id) - len(own)
    show_all = others > 0 and toggle_where.toggle(
        EVERY_DATASET, key=all_key, on_change=_listing_switched, args=(key, own),
        help=f"Off: only runs trained on {name}, the sidebar's dataset. {others} {noun}(s) on other datasets.")
    ids = list(by_id) if show_all else own
    if not ids:
        empty_state(f"No {noun} on {safe(name)} yet" + (f"; {others} on other datasets (switch on "
                                                          f"'{EVERY_DATASET}' to list them)" if others else "")
                    + ". Train one on this dataset from the Builder.", "pages/builder.py", "Open the Builder")
        quick_start()
        st.stop()
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    labels = {i: run_label(by_id[i]) for i in ids}
    return where.selectbox(label, ids, key=key, format_func=lambda i: labels.get(i, i))


def pick_runs(finished: list, key: str, second_label: str,
              wanted: str | None = None) -> tuple[str, str | None, dict]:
    """A run picker (`pick_run`, the sidebar's dataset) plus an optional second run to compare with,
    among the runs on the first one's dataset: (first id, second id or None, runs by id)."""
    by_id = {r.id: r for r in finished}
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    first = pick_run(finished, f"{key}-run", wanted=wanted, where=c1, toggle_where=c3, noun="finished run")
    same = [i for i in by_id if i != first and run_dataset(by_id[i]) == run_dataset(by_id[first])]
    if st.session_state.get(f"{key}-run-2") not in [None, *same]:
        st.session_state.pop(f"{key}-run-2")
    second = c2.selectbox(second_label, [None] + same, key=f"{key}-run-2",
                          format_func=lambda i: "(none)" if i is None else run_label(by_id[i]),
                          help="Runs trained on the same dataset as the first.")
    return first, second, by_id


def empty_state(message: str, page: str | None = None, label: str | None = None) -> None:
    """What to do next on an empty page: an info line plus a link to the page that fixes it."""
    st.info(message, icon=":material/lightbulb:")
    if page:
        st.page_link(page, label=label or "Go there", icon=":material/arrow_forward:")


# ---- first launch -------------------------------------------------------------------------------
QUICK_START_REFRESH_SECONDS = 2.0


def quick_start(key: str = "quick-start") -> None:
    """The first-launch offer under a page's empty state: one click trains the Builder's default
    recipe for one short epoch in the background (`lego_core.explore.builder.quick_start_recipe`). While a
    run is active its progress shows here, refreshed every few seconds, and the page reruns when
    it ends. No button when the app is read-only."""
    from lego_core import runs

    active = [r for r in runs.list() if r.is_active()]
    if active:
        st.fragment(run_every=QUICK_START_REFRESH_SECONDS)(_follow_run)(active[0].id)
        return
    if read_only():
        return
    from lego_core.explore.builder import DEFAULT_PRESET, QUICK

    st.caption(f"Or start at once: train the {DEFAULT_PRESET.upper()} preset on {safe(current_dataset_name())} for "
               f"{QUICK['training.epochs']} epoch of at most {QUICK['training.max_steps_per_epoch']} steps in the "
               "background (about a minute on a CPU).")
    if st.button("Quick start", type="primary", icon=":material/rocket_launch:", key=key,
                 help="Train the default recipe briefly, then explore its results on every page."):
        with lego_errors():
            from lego_core import jobs
            from lego_core.explore.builder import quick_start_recipe

            run_id = jobs.launch(quick_start_recipe(current_dataset_name(), current_options()))
            st.session_state["select_run"] = run_id
            st.toast(f"Launched the quick start {run_id}")
            st.rerun()


def _follow_run(run_id: str) -> None:
    """One active run's state and progress; the whole page reruns once it has ended."""
    from lego_core import runs

    try:
        status = runs.open(run_id).status()
    except LegoError:
        st.rerun(scope="app")
    state = status.get("state", "unknown")
    if state not in runs.ACTIVE_STATES:
        st.rerun(scope="app")
    st.caption(f"Run {safe(run_id)} is {state}; its results appear here when it has finished.")
    st.progress(min(max(float(status.get("progress") or 0), 0.0), 1.0))

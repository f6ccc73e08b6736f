"""UI pieces every page shares (not a page itself): the dataset picker state, cached loading of
datasets and runs, and one-line display of LegoError. Data work stays in lego_core."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import streamlit as st

from lego_core.errors import LegoError

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


def one_line(exc: BaseException) -> str:
    """First line of an error message (LegoErrors are written to fit on one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def lego_errors() -> Iterator[None]:
    """Show a LegoError raised inside the block with st.error (one line), not a traceback."""
    try:
        yield
    except LegoError as exc:
        st.error(one_line(exc), icon=":material/error:")


@contextmanager
def data_notes() -> Iterator[list[str]]:
    """Collect the warnings lego_core's readers give while loading data (rows dropped, ...), to show
    them with the result instead of in the server log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes: list[str] = []
        try:
            yield notes
        finally:
            notes.extend(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))


# ---- datasets ---------------------------------------------------------------------------
@st.cache_data(ttl=15, show_spinner=False)
def available_datasets() -> list[dict]:
    """datasets.available(), refreshed every few seconds (and after a registration)."""
    from lego_core import datasets

    return datasets.available()


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _load(name: str, options_json: str):
    from lego_core import datasets

    return datasets.load(name, **json.loads(options_json))


def current_dataset_name() -> str:
    return st.session_state.get("dataset", DEFAULT_DATASET)


def current_options() -> dict:
    """Options of the current dataset (only the synthetic one has size options in the sidebar)."""
    if current_dataset_name() == "synthetic":
        return dict(st.session_state.get("synthetic_options", QUICK_SYNTHETIC))
    return {}


def load_dataset(name: str | None = None, options: dict | None = None):
    """The Dataset object, cached across reruns and pages; LegoError propagates to the caller."""
    name = name or current_dataset_name()
    options = current_options() if options is None and name == current_dataset_name() else (options or {})
    return _load(name, json.dumps(options, sort_keys=True))


def dataset_or_stop(name: str | None = None, options: dict | None = None):
    """Load a dataset, or show the error in one line and stop the page."""
    try:
        return load_dataset(name, options)
    except LegoError as exc:
        st.error(f"Could not load dataset '{name or current_dataset_name()}': {one_line(exc)}",
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



def pick_runs(finished: list, key: str, second_label: str) -> tuple[str, str | None, dict]:
    """A run picker plus an optional second run to compare with: (first id, second id or None, runs by id)."""
    by_id = {r.id: r for r in finished}
    ids = list(by_id)
    labels = {r.id: run_label(r) for r in finished}
    c1, c2 = st.columns(2)
    first = c1.selectbox("Run", ids, key=f"{key}-run", format_func=lambda i: labels[i])
    second = c2.selectbox(second_label, [None] + [i for i in ids if i != first], key=f"{key}-run-2",
                          format_func=lambda i: "(none)" if i is None else labels[i])
    return first, second, by_id

def empty_state(message: str, page: str | None = None, label: str | None = None) -> None:
    """What to do next on an empty page: an info line plus a link to the page that fixes it."""
    st.info(message, icon=":material/lightbulb:")
    if page:
        st.page_link(page, label=label or "Go there", icon=":material/arrow_forward:")

"""Legommenders app: pick a dataset, build a recommender from bricks, train it in the background,
then explore its item embeddings and each user's recommendations.

Run with `streamlit run app.py` (or `make app`). This script owns the navigation and the shared
sidebar (the current dataset); each page lives in pages/ and only calls lego_core's public API.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # pages import `pages._common` and `lego_core` from here
    sys.path.insert(0, str(ROOT))

from lego_core.core import paths  # noqa: E402

paths.use_numba_cache()  # before anything imports numba: umap's compiled code is kept across processes

from lego_core.explore import maps  # noqa: E402
from pages import _common as ui  # noqa: E402

st.set_page_config(page_title="Legommenders", page_icon=":material/widgets:", layout="wide")

PAGES = [
    st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:", default=True),
    st.Page("pages/builder.py", title="Builder", icon=":material/construction:"),
    st.Page("pages/training.py", title="Training", icon=":material/monitoring:"),
    st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("pages/users.py", title="Users", icon=":material/person_search:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/table_chart:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
]


def sidebar() -> None:
    """The current dataset, shared by every page through st.session_state['dataset'], and its
    options (cold share, synthetic sizes); all of them kept in the address, so a reload keeps them."""
    ui.sidebar_from_url()
    st.session_state.setdefault("dataset", ui.DEFAULT_DATASET)
    st.session_state.setdefault("synthetic_options", dict(ui.QUICK_SYNTHETIC))
    if "dataset_next" in st.session_state:  # a page asked to switch (e.g. after registering one)
        st.session_state["dataset"] = st.session_state.pop("dataset_next")
    with st.sidebar:
        try:
            listed = ui.available_datasets()
        except ui.LegoError as exc:
            st.error(ui.one_line(exc))
            listed = []
        names = [d["name"] for d in listed if d.get("loadable", True)] or [ui.DEFAULT_DATASET]
        if st.session_state["dataset"] not in names:
            st.session_state["dataset"] = names[0] if ui.DEFAULT_DATASET not in names else ui.DEFAULT_DATASET
        info = {d["name"]: d for d in listed}
        st.selectbox("Dataset", names, key="dataset",
                     help="The dataset every page works on; the Builder trains on it.")
        description = info.get(st.session_state["dataset"], {}).get("description")
        if description:
            st.caption(ui.safe(description))
        if st.session_state["dataset"] == "synthetic":
            options = st.session_state["synthetic_options"]
            with st.expander("Synthetic size", expanded=False):
                for field, label, low, high, _ in ui.SYNTHETIC_SIZES:
                    options[field] = int(st.number_input(label, low, high, int(options.get(field, low)),
                                                         key=f"synthetic-{field}"))
        elif info.get(st.session_state["dataset"], {}).get("cold_items"):  # its declaration: leave-last-out
            cold = st.session_state.setdefault("cold_items", {})
            name = st.session_state["dataset"]
            shown = st.session_state.get(f"cold-{name}", round(100 * cold.get(name, 0.0)))
            with st.expander(f"Cold items: {shown}%" if shown else "Cold items: none", expanded=bool(shown)):
                percent = st.slider("Items never seen in training (%)", 0, ui.COLD_PERCENT_MAX,
                                    int(round(100 * cold.get(name, 0.0))), step=ui.COLD_PERCENT_STEP,
                                    key=f"cold-{name}",
                                    help="A seeded share of items that no training impression, history or "
                                         "negative shows: test metrics then split into warm and cold items, "
                                         "where content bricks (and hybrid item vectors) show their value.")
                cold[name] = percent / 100
        ui.sidebar_to_url()
        unloadable = [d for d in listed if not d.get("loadable", True)]
        if unloadable:
            with st.expander(f"{len(unloadable)} unavailable", expanded=False):
                for d in unloadable:
                    st.text(f"{d['name']}: {d.get('reason', '')}")


pg = st.navigation(PAGES)
sidebar()
try:
    pg.run()
finally:  # once the page is drawn: umap's imports hold the GIL, and the first page would wait on them
    maps.warm_umap()  # load umap in the background now, so the first item map comes sooner

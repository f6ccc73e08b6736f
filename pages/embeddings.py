"""Embeddings: a finished run's item vectors on a 2-D map (UMAP, with PCA shown at once while UMAP
computes in the background), coloured by category; lasso/box selection lists the items; a user's
history and recommendations can be highlighted. Two runs can be shown side by side."""
from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from lego_core import maps, viz
from lego_core.errors import LegoError
from pages import _common as ui

ui.require_navigation()

HOVER_CHARS = 140

st.title("Embeddings")

finished = ui.finished_runs()
if not finished:
    ui.empty_state("No finished run yet. Launch one from the Builder (a quick test run takes under a minute) "
                   "and wait until it succeeds on the Training page; its item map appears here.",
                   "pages/builder.py", "Open the Builder")
    ui.quick_start()
    st.stop()

first, second, by_id = ui.pick_runs(finished, "emb", "Side by side with")

o1, o2, o3 = st.columns([1, 1, 1])
method = o1.radio("Projection", ["UMAP", "PCA"], horizontal=True, key="emb-method",
                  help="PCA is instant; UMAP keeps neighbourhoods and is cached once computed.")
n_neighbors = o2.slider("UMAP neighbours", 5, 100, maps.UMAP_DEFAULTS["n_neighbors"], key="emb-neighbors",
                        disabled=method != "UMAP")
min_dist = o3.slider("UMAP min distance", 0.0, 0.99, maps.UMAP_DEFAULTS["min_dist"], 0.01, key="emb-min-dist",
                     disabled=method != "UMAP")
params = {"n_neighbors": int(n_neighbors), "min_dist": float(min_dist)}

run_a = by_id[first]
dataset = ui.dataset_of_run(run_a)
with st.expander("Highlight a user's history and recommendations", expanded=False):
    h1, h2, h3 = st.columns([2, 2, 1])
    query = h1.text_input("Search user id", key="emb-user-query", placeholder="type part of a user id")
    matches = viz.find_users(dataset, query)
    user = h2.selectbox("User", [None] + matches, key="emb-user",
                        format_func=lambda u: "(none)" if u is None else str(u))
    k = h3.number_input("Top k", 1, 100, 10, key="emb-k")


def _map(run, frame, dataset_, key: str, title: str) -> None:
    """Scatter of one run's items; the user's items on top; the selected items listed below."""
    frame = frame.copy()
    frame["hover"] = frame["text"].str.slice(0, HOVER_CHARS).map(viz.plain)
    shown = frame.assign(category=frame["category"].map(viz.plain))  # plotly reads HTML tags in legends
    fig = px.scatter(shown, x="x", y="y", color="category", custom_data=["item_id"], hover_name="hover",
                     hover_data={"item_id": True, "category": True, "x": False, "y": False}, title=title,
                     render_mode="webgl" if len(frame) > 5000 else "auto", opacity=0.75)
    fig.update_traces(marker={"size": 6})
    if user is not None:
        try:
            history = viz.user_history(dataset_, user)["item_id"].tolist()
            recommended = viz.recommendations(run, dataset_, user, int(k))["item_id"].tolist()
        except (KeyError, LegoError) as exc:
            st.warning(f"User {ui.safe(user)}: {ui.one_line(exc)}")
            history, recommended = [], []
        marks = maps.highlight(frame, history, recommended)
        for role, symbol, colour in (("history", "circle-open", "#111111"), ("recommended", "star", "#F2B705")):
            part = marks[marks["role"] == role]
            fig.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=f"user {role}",
                                     customdata=part[["item_id"]].to_numpy(), hovertext=part["hover"],
                                     hovertemplate="%{hovertext}<extra>" + role + "</extra>",
                                     marker={"symbol": symbol, "size": 13, "color": colour,
                                             "line": {"width": 2, "color": colour}}))
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10), dragmode="lasso",
                      legend={"itemsizing": "constant"}, xaxis_title=None, yaxis_title=None)
    event = st.plotly_chart(fig, width="stretch", key=key, on_select="rerun", selection_mode=("lasso", "box", "points"))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    chosen = {str(p["customdata"][0]) for p in points if p.get("customdata")}
    if chosen:
        picked = frame[frame["item_id"].isin(chosen)][["item_id", "category", "text"]]
        st.caption(f"{len(picked)} selected items")
        st.dataframe(picked, hide_index=True, width="stretch", height=min(36 * (len(picked) + 1) + 2, 320))
    else:
        st.caption("Draw a lasso or box on the map to list the items inside it.")


pending = []
columns = st.columns(2) if second else [st.container()]
for run_id, column in zip([first, second] if second else [first], columns):
    run = by_id[run_id]
    with column:
        try:
            ds = dataset if run_id == first else ui.dataset_of_run(run)
            frame = maps.embedding_map(run, ds, method.lower(), params) if method == "UMAP" else None
            title = f"{run_id} · UMAP"
            if frame is None:
                if method == "UMAP":
                    _, vectors = run.item_embeddings()
                    pending.append(maps.start_umap(run.id, vectors, params))
                frame = maps.embedding_map(run, ds, "pca")
                title = f"{run_id} · PCA" + (" (UMAP is computing…)" if method == "UMAP" else "")
            _map(run, frame, ds, key=f"map-{'a' if run_id == first else 'b'}", title=title)
        except LegoError as exc:
            st.error(ui.one_line(exc))

if pending:
    @st.fragment(run_every=1.5)
    def _wait_for_umap() -> None:
        """Swap the PCA view for UMAP as soon as the background projection is stored."""
        failed = [f.exception() for f in pending if f.done() and f.exception() is not None]
        if failed:
            st.error(f"UMAP failed: {ui.one_line(failed[0])}; the PCA view stays.")
            return
        if all(f.done() for f in pending):
            st.rerun(scope="app")
        st.caption("UMAP is computing in the background; the map switches to it when ready.")

    _wait_for_umap()

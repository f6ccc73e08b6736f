"""Embeddings: a finished run's item vectors on a 2-D map (UMAP, with PCA shown at once while UMAP
computes in the background), coloured by any item column; lasso/box selection lists the items; a
user's history and recommendations, an item found by name and its nearest neighbours, and the Users
page's explanation ("Show on the map") can be highlighted. A second run is shown side by side,
aligned onto the first (Procrustes) and coloured by how much each item's neighbours moved."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from lego_core.explore import compare
from lego_core.explore import explain
from lego_core.explore import maps
from lego_core.explore import frames
from lego_core.core.errors import LegoError
from pages import _common as ui

ui.require_navigation()

HOVER_CHARS = 140
MOVED = "moved"  # colour of the comparison: 1 - neighbour overlap between the two runs
NEIGHBOURS = 10

st.title("Embeddings")

finished = ui.finished_runs()
if not finished:
    ui.empty_state("No finished run yet. Launch one from the Builder (a quick test run takes under a minute) "
                   "and wait until it succeeds on the Training page; its item map appears here.",
                   "pages/builder.py", "Open the Builder")
    ui.quick_start()
    st.stop()

explained = st.session_state.get(explain.MAP_STATE)
sent = explained["run_id"] if explained and explained.get("fresh") else None  # just sent from Users: its run
if sent:
    explained["fresh"] = False
first, second, by_id = ui.pick_runs(finished, "emb", "Side by side with", wanted=sent)

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
options = maps.colour_options(dataset)
colour_choices = ([MOVED] if second else []) + list(options)
colour = st.selectbox("Colour by", colour_choices, key="emb-colour-2" if second else "emb-colour",
                      help="An item column (numbers get a continuous scale); with a second run, 'moved' is "
                           "how much each item's nearest neighbours changed between the two runs.")

with st.expander("Highlight a user's history and recommendations", expanded=False):
    h1, h2, h3 = st.columns([2, 2, 1])
    query = h1.text_input("Search user id", key="emb-user-query", placeholder="type part of a user id")
    matches = frames.find_users(dataset, query)
    user = h2.selectbox("User", [None] + matches, key="emb-user",
                        format_func=lambda u: "(none)" if u is None else str(u))
    k = h3.number_input("Top k", 1, 100, 10, key="emb-k")



def _item_label(item_id: str) -> str:
    text = item_texts.get(item_id, "")
    return f"{text[:80]} ({item_id})" if text and text != item_id else str(item_id)


with st.expander("Find an item and its nearest neighbours", expanded=bool(st.session_state.get("emb-find"))):
    f1, f2, f3 = st.columns([2, 3, 1])
    item_query = f1.text_input("Find an item by name", key="emb-find", placeholder="type part of a title")
    found_items = maps.find_items(dataset, item_query) if item_query else None
    item_texts = {} if found_items is None else dict(zip(found_items["item_id"], found_items["text"]))
    if item_query != st.session_state.get("emb-find-seen"):  # a new search shows its best match at once
        st.session_state["emb-find-seen"] = item_query
        if item_texts and st.session_state.get("emb-item") not in item_texts:
            st.session_state["emb-item"] = next(iter(item_texts))
    item = f2.selectbox("Item", [None] + list(item_texts), key="emb-item",
                        format_func=lambda i: "(none)" if i is None else _item_label(i))
    neighbour_k = f3.number_input("Neighbours", 1, 50, 10, key="emb-item-k")
    nearby = None
    if item_query and not item_texts:
        st.caption(f"No item text contains '{ui.message(item_query)}'.")
    if item is not None:
        try:
            nearby = maps.neighbours(run_a, dataset, item, int(neighbour_k))
        except LegoError as exc:
            st.error(ui.one_line(exc))
        else:
            st.caption(f"The {len(nearby)} items nearest to {ui.safe(_item_label(item))} "
                       f"in {ui.safe(first)}'s item space (cosine similarity)")
            st.dataframe(nearby[["rank", "similarity", "text", "category", "item_id"]], hide_index=True,
                         width="stretch", key="emb-neighbours",
                         column_config={"similarity": st.column_config.NumberColumn(format="%.3f"),
                                        "text": st.column_config.TextColumn("item", width="large")})

if explained:
    e1, e2 = st.columns([5, 1], vertical_alignment="center")
    e1.info(f"Showing why user {ui.safe(explained['user'])} got their recommendations from {ui.safe(explained['run_id'])}"
            " (sent from Users): lines join each recommended item to the clicks behind it.",
            icon=":material/lightbulb:")
    if e2.button("Clear", key="emb-explained-clear"):
        st.session_state.pop(explain.MAP_STATE, None)
        st.rerun()


def _scatter(frame, title: str, kind: str, legend: str):
    """The items coloured by `colour`: a discrete palette with one colour per category, or a scale.
    Past maps.WEBGL_FROM items, WebGL traces built directly (plotly express takes seconds there)."""
    shown = maps.hover_labels(frame, HOVER_CHARS)  # plotly reads HTML tags in labels
    if len(shown) >= maps.WEBGL_FROM:
        return _large_scatter(shown, title, kind, legend)
    common = dict(x="x", y="y", custom_data=["item_id"], hover_name="hover", title=title, opacity=0.75,
                  hover_data={"item": True, "item_id": False, "category": True, "colour": True, "x": False,
                              "y": False},
                  render_mode="auto", labels={"colour": legend})
    if kind == "numeric":
        scale = "Bluered" if legend == MOVED else "Viridis"  # moved: blue = same neighbours, red = new ones
        fig = px.scatter(shown, color="colour", color_continuous_scale=scale,
                         range_color=(0, 1) if legend == MOVED else None, **common)
    else:
        shown["colour"] = shown["colour"].fillna("unknown").astype(str).map(frames.plain)
        fig = px.scatter(shown, color="colour", color_discrete_sequence=maps.PALETTE, **common)
    fig.update_traces(marker={"size": 6})
    return fig


def _large_scatter(shown, title: str, kind: str, legend: str):
    """As `_scatter`, for a map of many items: one Scattergl trace per colour value (or one with a
    colour scale), hovering the item's text, id and colour value; a smaller figure to build and send
    on every rerun than plotly express's (about 12 instead of 19 MB at 160,000 points)."""
    fig = go.Figure()
    shown = shown.assign(label="<b>" + shown["hover"] + "</b><br>item=" + shown["item"])
    name = frames.plain(legend)
    extra = f"{name}=%{{marker.color:.3g}}" if kind == "numeric" else f"{name}=%{{fullData.name}}"

    def trace(part, **marker):  # the least a point needs: its hover line, the item id (what a selection reads)
        return go.Scattergl(x=part["x"].to_numpy(), y=part["y"].to_numpy(), mode="markers",
                            customdata=part[["item_id"]].to_numpy(), hovertext=part["label"].to_numpy(),
                            hovertemplate="%{hovertext}<extra>" + extra + "</extra>",
                            marker={"size": 6, "opacity": 0.75, **marker})

    if kind == "numeric":
        moved = legend == MOVED
        fig.add_trace(trace(shown, color=shown["colour"].to_numpy(), colorscale="Bluered" if moved else "Viridis",
                            cmin=0 if moved else None, cmax=1 if moved else None, colorbar={"title": name}))
        fig.update_traces(showlegend=False)
    else:
        shown = shown.assign(colour=shown["colour"].fillna("unknown").astype(str).map(frames.plain))
        for i, (value, part) in enumerate(shown.groupby("colour", sort=False)):
            fig.add_trace(trace(part, color=maps.PALETTE[i % len(maps.PALETTE)]).update(name=value))
        fig.update_layout(legend_title_text=name)
    fig.update_layout(title=title)
    return fig


def _marks(fig, frame, role: str, ids, symbol: str, colour_: str, size: int = 13) -> None:
    part = frame[frame["item_id"].isin([str(i) for i in ids])]
    fig.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=role,
                             customdata=part[["item_id"]].to_numpy(),
                             hovertext=maps.hover_labels(part, HOVER_CHARS)["hover"],
                             hovertemplate="%{hovertext}<extra>" + role + "</extra>",
                             marker={"symbol": symbol, "size": size, "color": colour_,
                                     "line": {"width": 2, "color": colour_}}))


def _explained_on(fig, frame) -> None:
    """The Users page's explanation: recommended items, the clicks behind them, lines between."""
    rows = pd.DataFrame(explained["rows"])
    links = maps.explanation_links(frame, rows)
    xs, ys = [], []
    for x0, y0, x1, y1 in links[["x0", "y0", "x1", "y1"]].itertuples(index=False):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="why: click → item", hoverinfo="skip",
                             line={"width": 1.5, "color": "rgba(40,40,40,0.55)"}))
    _marks(fig, frame, "why: clicks behind", rows["history_item_id"], "diamond-open", "#1F4E8C")
    _marks(fig, frame, "why: recommended", rows["item_id"], "star", "#E8590C", 15)


def _figure(frame, dataset_, key: str, title: str) -> tuple:
    """(the map's figure of its items alone, the frame with its colour, the colour's kind). Kept per session and map
    while the frame is the same object (a stored map, not a comparison's new aligned copy): a
    highlight or a selection then only adds its marks, where building the traces of 160,000 items
    takes about half a second."""
    kept = st.session_state.setdefault("emb-figures", {})
    held = kept.get(key)
    if held is not None and held[0] is frame and held[1] == (title, colour):
        return held[2:]
    if colour == MOVED:
        coloured, kind, legend = frame, "numeric", MOVED
    else:
        coloured, kind, legend = maps.with_colour(frame, dataset_, colour)
    fig = _scatter(coloured, title, kind, legend)
    kept[key] = (frame, (title, colour), fig, coloured, kind)
    return fig, coloured, kind


def _marked_chart(run, fig, frame, dataset_, kind: str, key: str, ranges: dict | None):
    """Draw `fig` with the user's, the found and the explained items added on top; the selection event."""
    if user is not None:
        try:
            history = frames.user_history(dataset_, user)["item_id"].tolist()
            recommended = frames.recommendations(run, dataset_, user, int(k))["item_id"].tolist()
        except (KeyError, LegoError) as exc:
            st.warning(f"User {ui.safe(user)}: {ui.one_line(exc)}")
            history, recommended = [], []
        marks = maps.highlight(frame, history, recommended)
        _marks(fig, marks, "user history", marks.loc[marks["role"] == "history", "item_id"], "circle-open", "#111111")
        _marks(fig, marks, "user recommended", marks.loc[marks["role"] == "recommended", "item_id"], "star", "#F2B705")
    if nearby is not None and run.id == first:
        _marks(fig, frame, "found item", [item], "x", "#D6336C", 15)
        _marks(fig, frame, "its neighbours", nearby["item_id"], "circle-open", "#D6336C", 11)
    if explained and explained.get("run_id") == run.id:
        _explained_on(fig, frame)
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10), dragmode="lasso",
                      legend={"itemsizing": "constant"}, xaxis_title=None, yaxis_title=None)
    if kind == "numeric":  # the colour bar holds the right edge: the legend goes under the map
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.04, "xanchor": "left", "x": 0},
                          margin=dict(l=10, r=10, t=40, b=60))
    if ranges:  # aligned maps share their axes, so the same place means the same place
        fig.update_layout(xaxis_range=ranges["x"], yaxis_range=ranges["y"], title_font_size=13)
    return st.plotly_chart(fig, width="stretch", key=key, on_select="rerun", selection_mode=("lasso", "box", "points"))


def _map(run, frame, dataset_, key: str, title: str, ranges: dict | None = None) -> None:
    """Scatter of one run's items; the user's, the found and the explained items on top; the
    selected items listed below."""
    fig, frame, kind = _figure(frame, dataset_, key, title)
    marked = len(fig.data)
    try:
        event = _marked_chart(run, fig, frame, dataset_, kind, key, ranges)
    finally:  # the kept figure goes back to its items alone, whatever stopped the script
        fig.data = fig.data[:marked]
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    chosen = {str(p["customdata"][0]) for p in points if p.get("customdata")}
    if chosen:
        picked = frame[frame["item_id"].isin(chosen)][["item_id", "category", "text"]]
        st.caption(f"{len(picked)} selected items")
        st.dataframe(picked, hide_index=True, width="stretch", height=min(36 * (len(picked) + 1) + 2, 320))
    else:
        st.caption("Draw a lasso or box on the map to list the items inside it.")


def _projection(run, ds, pending: list) -> tuple:
    """(map frame, title): UMAP when stored, otherwise PCA while UMAP computes in the background."""
    frame = maps.embedding_map(run, ds, "umap", params) if method == "UMAP" else None
    if frame is not None:
        return frame, f"{run.id} · UMAP"
    if method == "UMAP":
        _, vectors = run.item_embeddings()
        pending.append(maps.start_umap(run.id, vectors, params))
    return maps.embedding_map(run, ds, "pca"), f"{run.id} · PCA" + (" (UMAP is computing…)" if method == "UMAP" else "")


def _shared_ranges(framed) -> dict:
    """Axis ranges that hold every point of both aligned maps (5% margin)."""
    both = pd.concat([f[["x", "y"]] for f, _ in framed])
    out = {}
    for axis in ("x", "y"):
        low, high = float(both[axis].min()), float(both[axis].max())
        pad = 0.05 * (high - low or 1.0)
        out[axis] = [low - pad, high + pad]
    return out


pending: list = []
shown_runs = [first, second] if second else [first]
try:
    datasets_ = {run_id: dataset if run_id == first else ui.dataset_of_run(by_id[run_id]) for run_id in shown_runs}
    projections = {run_id: _projection(by_id[run_id], datasets_[run_id], pending) for run_id in shown_runs}
    if second:
        with st.spinner("Comparing the two item spaces (nearest neighbours of each item)…"):
            comparison = compare.compare_runs(by_id[first], by_id[second], k=NEIGHBOURS)
        aligned_a, aligned_b, disparity = compare.align_maps(projections[first][0], projections[second][0])
        moved = comparison.frame().set_index("item_id")["moved"]
        scored = aligned_a["item_id"].isin(moved.index)  # beyond compare.MAX_ITEMS: the sampled items
        projections = {first: (aligned_a[scored].assign(colour=aligned_a.loc[scored, "item_id"].map(moved).to_numpy()),
                          projections[first][1] + " · aligned"),
                  second: (aligned_b[scored].assign(colour=aligned_b.loc[scored, "item_id"].map(moved).to_numpy()),
                           projections[second][1] + " · aligned")}
        c1, c2, c3 = st.columns(3)
        c1.metric("Neighbour overlap", f"{comparison.overlap:.0%}",
                  help=f"Mean share of each item's {comparison.k} nearest neighbours (cosine, in each run's full "
                       "item space) that both runs agree on: 100% = the same neighbourhoods.")
        c2.metric("Items compared", f"{len(comparison.item_ids):,} of {comparison.common:,}")
        c3.metric("Map disparity (Procrustes)", "-" if disparity != disparity else f"{disparity:.3f}",
                  help="Residual after rotating, scaling and shifting the second map onto the first: 0 = same layout.")
        st.caption(f"The second map is rotated, scaled and shifted onto the first (Procrustes), so an item sits in "
                   f"comparable places; 'moved' = 1 - the overlap of its {comparison.k} nearest neighbours.")
except LegoError as exc:
    st.error(ui.one_line(exc))
    st.stop()

columns = st.columns(2) if second else [st.container()]
for run_id, column in zip(shown_runs, columns):
    with column:
        frame, title = projections[run_id]
        _map(by_id[run_id], frame, datasets_[run_id], key=f"map-{'a' if run_id == first else 'b'}", title=title,
             ranges=_shared_ranges(projections.values()) if second else None)

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
        st.caption("UMAP is computing in the background; the map switches to it when ready (the first map on "
                   "this machine also compiles UMAP's code, up to a minute on a busy machine).")

    _wait_for_umap()

"""Users: pick a user; see their history (oldest first), a run's top-k recommendations with scores,
which of them the user really clicked in the test impressions, why the model chose each (the clicks
behind it, lego_core.explore.explain; "Show on the map" draws them on Embeddings), and a second run's list."""
from __future__ import annotations

import streamlit as st

from lego_core.explore import explain
from lego_core.explore import frames
from lego_core.core.errors import LegoError
from pages import _common as ui

ui.require_navigation()

st.title("Users")

finished = ui.finished_runs()
if not finished:
    ui.empty_state("No finished run yet. Train one from the Builder and wait until it succeeds on the "
                   "Training page; each user's recommendations appear here.", "pages/builder.py", "Open the Builder")
    ui.quick_start()
    st.stop()

first, second, by_id = ui.pick_runs(finished, "users", "Compare with")
run_a = by_id[first]
dataset = ui.dataset_of_run(run_a)

u1, u2, u3, u4 = st.columns([2, 2, 1, 1.4], vertical_alignment="bottom")
query = u1.text_input("Search user id", key="users-query", placeholder="type part of a user id")
tested = u4.checkbox("Test users only", value=True, key="users-tested",
                     help="List only users who have test impressions, so the list can be checked against them.")
matches = frames.find_users(dataset, query, split="test" if tested else None)
if not matches:
    st.info(f"No user id in {ui.safe(dataset.name)} contains '{ui.message(query)}'"
            + (" among users with test impressions" if tested else "") + ". Clear the search to list users.",
            icon=":material/search_off:")
    st.stop()
user = u2.selectbox("User", matches, key="users-user", help="At most 200 matches are listed; search to narrow.")
k = u3.number_input("Top k", 1, 100, 10, key="users-k")

try:
    history = frames.user_history(dataset, user)
    clicked = frames.test_clicks(dataset, user)
except KeyError as exc:
    st.error(ui.message(str(exc).strip("'\"")))
    st.stop()

m1, m2, m3 = st.columns(3)
m1.metric("History length", len(history))
m2.metric("Test impressions' clicks", len(clicked))
m3.metric("Candidates shown in test", len(frames.test_candidates(dataset, user)))

ITEM_COLUMNS = {"text": st.column_config.TextColumn("item", width="large"),
                "score": st.column_config.NumberColumn("score", format="%.4f"),
                "clicked_in_test": st.column_config.CheckboxColumn("clicked in test"),
                "cold": st.column_config.CheckboxColumn("cold", help="never seen in training: the model scores "
                                                                     "it from its content alone")}


def _recommendations(run_id: str, column) -> None:
    run = by_id[run_id]
    with column:
        st.subheader(f"Top {k}: {run_id}", divider="gray")
        try:
            ds = dataset if run_id == first else ui.dataset_of_run(run)
            if ds.name != dataset.name:
                st.warning(f"This run was trained on {ui.safe(ds.name)}, not {ui.safe(dataset.name)}; "
                           "pick a run on the same dataset.")
                return
            recs = frames.recommendations(run, ds, user, int(k))
        except (LegoError, KeyError) as exc:
            st.error(ui.one_line(exc))
            return
        hits = int(recs["clicked_in_test"].sum())
        st.caption(f"{hits} of the user's {len(clicked)} test clicks are in this top {k} "
                   "(history items are left out).")
        st.dataframe(recs[["rank", "score", "clicked_in_test", "cold", "text", "category", "item_id"]], hide_index=True,
                     width="stretch", column_config=ITEM_COLUMNS, key=f"recs-{run_id}")
        _explanation(run, ds, recs)


def _show_on_map(run_id: str, found) -> None:
    """Hand this explanation to the Embeddings page (read there from st.session_state) and open it."""
    st.session_state[explain.MAP_STATE] = {"run_id": run_id, "user": str(user), "fresh": True,
                                          "rows": found[["item_id", "history_item_id", "contribution", "method"]]
                                          .to_dict("records")}
    st.switch_page("pages/embeddings.py")


def _explanation(run, ds, recs) -> None:
    """Under the list: each recommended item's top 3 clicks, by their contribution to its score."""
    try:
        found = explain.explain(run, ds, user, recs["item_id"].tolist(), k=3)
    except (LegoError, KeyError) as exc:
        st.caption(f"No explanation: {ui.one_line(exc)}")
        return
    if found.empty:
        st.caption("No explanation: this user clicked nothing before the test impressions.")
        return
    with st.container(key=f"why-{run.id}"):
        method = found["method"].iloc[0]
        st.markdown(f"**Why these items** (each item's 3 clicks that add most to its score; {method})")
        st.caption(ui.safe(explain.describe(method)))
        lines = explain.summary(found, chars=50)
        st.markdown("\n".join(f"{i}. {ui.safe(explain.shorten(text, 60))} ({score:.2f}) ← {ui.safe(because)}"
                              for i, (text, score, because)
                              in enumerate(zip(lines["item_text"], lines["score"], lines["because"]), 1)))
        if st.button("Show on the map", key=f"explain-map-{run.id}", icon=":material/scatter_plot:",
                     help="Open Embeddings with these recommendations and the clicks behind them drawn on the map."):
            _show_on_map(run.id, found)


cols = st.columns(2) if second else [st.container()]
_recommendations(first, cols[0])
if second:
    _recommendations(second, cols[1])

st.subheader("History (oldest first)", divider="gray")
if history.empty:
    st.caption("This user clicked nothing before the test impressions.")
else:
    st.dataframe(history[["position", "text", "category", "item_id"]], hide_index=True, width="stretch",
                 column_config=ITEM_COLUMNS, height=min(36 * (len(history) + 1) + 2, 420))
if clicked:
    st.subheader("Clicked in the test impressions", divider="gray")
    frame = frames.item_frame(dataset)
    st.dataframe(frame[frame["item_id"].isin(clicked)][["text", "category", "item_id"]], hide_index=True,
                 width="stretch", column_config=ITEM_COLUMNS)

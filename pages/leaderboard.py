"""Leaderboard: a sweep's configurations ranked by their mean validation metric over seeds, with
the spread, a 95% interval and a marker where two intervals overlap; quality against train time and
against parameter count (Pareto fronts); Optuna's parameter importance and parallel coordinates;
pick a configuration to open its runs. Resume or stop the sweep."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from lego_core.core.errors import LegoError
from lego_core.sweeps import leaderboard, list_sweeps
from pages import _common as ui

ui.require_navigation()

REFRESH_SECONDS = 3.0
st.title("Leaderboard")

try:
    found = list_sweeps()
except LegoError as exc:
    st.error(ui.one_line(exc))
    found = []
if not found:
    ui.empty_state("No sweeps yet. On the Builder, switch the mode to Sweep, pick several bricks per slot and "
                   "launch: every configuration is ranked here.", "pages/builder.py", "Open the Builder")
    st.stop()

storages = dict(found)
ids = [sweep_id for sweep_id, _ in found]
wanted = st.session_state.pop("select_sweep", None)
if wanted in ids:
    st.session_state["lb-sweep"] = wanted
if st.session_state.get("lb-sweep") not in ids:
    st.session_state["lb-sweep"] = ids[0]
sweep_id = st.selectbox("Sweep", ids, key="lb-sweep")
try:
    first_snap = leaderboard.Snapshot.load(sweep_id, storages.get(sweep_id))
    first = first_snap.summary()
except LegoError as exc:
    st.error(ui.one_line(exc), icon=":material/error:")
    st.stop()
LIVE = first["state"] in ("created", "running")
_read: list = []


def _snapshot():
    """(snapshot, its ranked table): read once per page run for a sweep that no longer changes (a
    sweep of hundreds of runs takes a second to read); read again on each refresh of a live one."""
    if LIVE:
        snap = leaderboard.Snapshot.load(sweep_id, storages.get(sweep_id))
        return snap, snap.table()
    if not _read:
        _read.append((first_snap, first_snap.table()))
    return _read[0]


def _actions(summary: dict) -> None:
    if ui.read_only():
        ui.read_only_note("Resuming and stopping sweeps")
        return
    from lego_core import sweeps

    a1, a2, _ = st.columns([1, 1, 4])
    with ui.lego_errors():
        if a1.button("Resume sweep", icon=":material/play_arrow:", key="lb-resume",
                     disabled=summary["state"] not in ("paused", "created"),
                     help="Start a worker that continues where the sweep stopped (no trial is repeated)."):
            sweeps.resume(sweep_id, storage=storages.get(sweep_id))
            st.toast(f"Resuming {sweep_id}")
        if a2.button("Stop sweep", icon=":material/pause:", key="lb-stop", disabled=summary["state"] != "running",
                     help="Pause this machine's workers: running trials stop with a checkpoint; Resume continues."):
            sweeps.stop(sweep_id, storage=storages.get(sweep_id))
            st.toast(f"Stopping {sweep_id}")


def _table_view(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    spread = leaderboard.spread_text(table)
    view = pd.DataFrame({
        "rank": table["rank"],
        "≈": ["≈ " + ", ".join(map(str, o)) if tie else "" for o, tie in zip(table["overlaps"], table["tie"])],
        "content": table["content"], "behaviour": table["behavior"], "predictor": table["predictor"],
        "params": table["params"], "seeds": table["seeds"],
        f"valid {metric}": table["mean"], "± std": spread["± std"], "95% interval": spread["95% interval"],
        f"test {metric}": table[f"test_{metric}"], "train s": table["train_seconds"],
        "parameters": table["parameters"], "pruned": table["pruned"], "failed": table["failed"],
        "running": table["running"],
        "Pareto": ["time, size" if a and b else "time" if a else "size" if b else ""
                   for a, b in zip(table["pareto_train_seconds"], table["pareto_parameters"])]})
    return view


def _label(table: pd.DataFrame, config: str) -> str:
    """A configuration as its bricks and parameters (no rank: a label that changes with the ranking
    would move the choice)."""
    row = table[table["config"] == config].iloc[0]
    params = f" ({row['params']})" if row["params"] else ""
    return f"{row['content']} + {row['behavior']} + {row['predictor']}{params}"


def _runs(snap: leaderboard.Snapshot, config: str, index: int) -> None:
    rows = snap.runs_of(config)
    if rows.empty:
        st.caption("No trial of this configuration has a run yet.")
        return
    st.dataframe(rows.drop(columns=["here"]), hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(f"valid {snap.spec.metric}", format="%.4f")})
    here = rows[rows["here"]]
    if here.empty:
        st.caption("Its runs are not in this app's runs folder (another machine, or another --runs-dir): open them there.")
        return
    labels = {r.run_id: f"seed {r.seed} · {r.state}" for r in here.itertuples()}
    run_id = st.radio("Run", list(labels), key=f"lb-run-{index}", horizontal=True, format_func=labels.get)
    st.session_state["select_run"] = run_id  # the Training page opens this run
    st.page_link("pages/training.py", label=f"Open {labels[run_id].split(' · ')[0]} on Training",
                 icon=":material/monitoring:")


def _charts(snap: leaderboard.Snapshot, table: pd.DataFrame, metric: str) -> None:
    ranked = table[table["rank"].notna()].copy()
    if ranked.empty:
        return
    ranked["bricks"] = ranked["content"] + " + " + ranked["behavior"] + " + " + ranked["predictor"]
    st.subheader("Quality against cost", divider="gray")
    left, right = st.columns(2)
    for col, cost, title in ((left, "train_seconds", "train time (s)"), (right, "parameters", "parameters")):
        data = ranked.dropna(subset=[cost])
        if data.empty:
            col.caption(f"No {title} recorded yet.")
            continue
        data = data.assign(front=data[f"pareto_{cost}"].map({True: "Pareto front", False: "dominated"}))
        fig = px.scatter(data, x=cost, y="mean", error_y="std", color="front", symbol="front",
                         hover_data=["rank", "bricks", "params", "seeds"], title=f"valid {metric} vs {title}",
                         labels={"mean": f"valid {metric} (mean ± std)", cost: title},
                         color_discrete_map={"Pareto front": "#C91A09", "dominated": "#9A9A9A"})
        front = data[data[f"pareto_{cost}"]].sort_values(cost)
        fig.add_scatter(x=front[cost], y=front["mean"], mode="lines", line=dict(color="#C91A09", dash="dot"),
                        showlegend=False, hoverinfo="skip")
        fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
        col.plotly_chart(fig, width="stretch", key=f"lb-pareto-{cost}")
    st.subheader("What matters", divider="gray")
    left, right = st.columns(2)
    for col, (figure, note), key in ((left, snap.importance_figure(), "lb-importance"),
                                     (right, snap.parallel_figure(), "lb-parallel")):
        if figure is None:
            col.caption(note)
        else:
            figure.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10))
            col.plotly_chart(figure, width="stretch", key=key)


def _board() -> None:
    """State, counts and the ranked table (refreshed while the sweep runs); a click on a row picks
    the configuration whose runs are listed below."""
    snap, table = _snapshot()
    summary = snap.summary()
    if summary["state"] != first["state"]:
        st.rerun(scope="app")  # finished or started: redraw the buttons and the timer
    metric, counts = summary["metric"], summary["counts"]
    c = st.columns(5)
    c[0].metric("State", summary["state"])
    c[1].metric("Trials done", f"{counts['succeeded']} of {summary['planned']}")
    c[2].metric("Pruned", counts["pruned"])
    c[3].metric("Running", counts["running"] + counts["waiting"])
    budget = f" of {summary['minutes']:g} min" if summary["minutes"] else ""
    c[4].metric("Time", f"{summary['elapsed'] / 60:.1f} min{budget}")
    st.caption(f"Optimises valid {metric} with the {summary['sampler']} sampler, pruner {summary['pruner']}, "
               f"{summary['seeds']} seed(s) per configuration. Rows are ranked by the mean over finished seeds; "
               "≈ lists the ranks whose 95% interval of the mean overlaps this one's (too close to tell apart "
               "from seed noise).")
    if counts["failed"]:
        st.warning(f"{counts['failed']} trial(s) failed; their errors are in the runs below.", icon=":material/warning:")
    if table.empty:
        st.info("No trial has started yet. A worker starts them in the background.", icon=":material/hourglass:")
        return
    event = st.dataframe(_table_view(table, metric), hide_index=True, width="stretch", key="lb-table",
                         on_select="rerun", selection_mode="single-row",
                         column_config={f"valid {metric}": st.column_config.NumberColumn(format="%.4f"),
                                        "± std": st.column_config.TextColumn(
                                            help="Spread of the valid metric over the finished seeds; "
                                                 f"{leaderboard.NO_SPREAD} with fewer than two."),
                                        "95% interval": st.column_config.TextColumn(
                                            help="95% interval of the mean over the finished seeds (Student t); "
                                                 f"{leaderboard.NO_SPREAD} with fewer than two."),
                                        f"test {metric}": st.column_config.NumberColumn(format="%.4f"),
                                        "train s": st.column_config.NumberColumn(format="%.1f"),
                                        "parameters": st.column_config.NumberColumn(format="localized")})
    st.download_button("Download CSV", table.to_csv(index=False).encode("utf-8"), file_name=f"{sweep_id}.csv",
                       mime="text/csv", icon=":material/download:")
    configs = table["config"].tolist()
    rows = getattr(getattr(event, "selection", None), "rows", None) or []
    picked = configs[rows[0]] if rows and rows[0] < len(configs) else None
    if picked is not None and st.session_state.get("lb-picked") != picked:  # a click on a row, not a rerun
        st.session_state["lb-picked"] = st.session_state["lb-pending"] = picked
        st.rerun(scope="app")
    st.session_state["lb-picked"] = picked


def _runs_section() -> None:
    """The runs of one configuration, each a button to its run on Training (outside the refreshed
    part, so a click is never lost to a refresh)."""
    snap, table = _snapshot()
    if table.empty:
        return
    ranked = table["config"].tolist()
    configs = sorted(ranked, key=lambda key: min(table["trials"].iloc[ranked.index(key)]))  # in order of start:
    # a choice stays put while the ranking moves
    if st.session_state.get("lb-pending") in configs:
        st.session_state["lb-config"] = st.session_state.pop("lb-pending")
    if st.session_state.get("lb-config") not in configs:
        st.session_state["lb-config"] = ranked[0]
    st.subheader("Runs of a configuration", divider="gray")
    chosen = st.selectbox("Configuration", configs, key="lb-config",
                          format_func=lambda key: _label(table, key),
                          help="Click a row of the table, or pick it here.")
    _runs(snap, chosen, configs.index(chosen))


def _figures() -> None:
    snap, table = _snapshot()
    if table.empty:
        return
    _charts(snap, table, snap.spec.metric)
    skipped = snap.skipped()
    if len(skipped):
        with st.expander(f"{len(skipped)} proposal(s) that got no run", expanded=False):
            st.dataframe(skipped, hide_index=True, width="stretch")


_actions(first)
live = st.fragment(run_every=REFRESH_SECONDS if LIVE else None)
live(_board)()
_runs_section()
live(_figures)()

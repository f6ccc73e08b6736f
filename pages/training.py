"""Training: every run with its state and progress; the selected run's live curves and log tail
(refreshed in a fragment, not by reloading the page); cancel, resume and delete."""
from __future__ import annotations

import plotly.express as px
import streamlit as st

from lego_core import runs
from lego_core.explore import frames
from lego_core.explore import maps
from lego_core.core.errors import LegoError
from pages import _common as ui

ui.require_navigation()

REFRESH_SECONDS = 2.0
TABLE_COLUMNS = ["run_id", "state", "progress", "epoch", "content", "behavior", "predictor", "dataset",
                 "device", "created", "error"]

st.title("Training")
DELETED = "training-deleted"  # st.session_state: the run just deleted, said once after the rerun

deleted = st.session_state.pop(DELETED, None)
if deleted:
    st.success(f"Deleted run {ui.safe(deleted)} with its checkpoints, metrics and embeddings.",
               icon=":material/delete:")
all_runs = ui.all_runs()
if not all_runs:
    ui.empty_state("No runs yet. Build a recommender on the Builder page and press Launch; "
                   "its progress appears here.", "pages/builder.py", "Open the Builder")
    ui.quick_start()
    st.stop()

picker, every = st.columns([4, 1], vertical_alignment="bottom")  # the sidebar dataset's runs; a toggle: all
selected = ui.pick_run(all_runs, "training_run", wanted=st.session_state.pop("select_run", None), where=picker,
                       toggle_where=every)
run = runs.open(selected)
state_at_render = run.state
try:
    total_epochs = run.recipe().training.epochs
except LegoError:
    total_epochs = "?"
any_active = any(r.is_active() for r in all_runs)
if any_active and st.runtime.exists():  # while the user waits for training, compile UMAP's code (a minute
    maps.warm_umap(force=True)  # on a busy machine the first time), so the first item map comes in seconds


def _runs_table(table) -> None:
    shown = table[[c for c in TABLE_COLUMNS if c in table.columns]].assign(progress=100 * table["progress"])
    st.dataframe(shown, hide_index=True, width="stretch", height=min(38 * (len(table) + 1) + 2, 260),
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                            max_value=100.0, format="%.0f%%"),
                                "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")})


def _live() -> None:
    """The selected run and the table of all runs, from one read of their statuses (the progress
    shown twice is one number); reruns itself every few seconds while a run is active."""
    table = frames.runs_table(ui.all_runs())
    progress = table.loc[table["run_id"] == selected, "progress"]
    _live_run(float(progress.iloc[0]) if len(progress) else 0.0)
    st.subheader("All runs", divider="gray")
    _runs_table(table)


def _live_run(progress: float) -> None:
    """Status, curves and log of the selected run (`progress` from the runs table)."""
    current = runs.open(selected)
    status = current.status()
    state = status.get("state", "unknown")
    if state != state_at_render:  # finished, failed, started: redraw buttons and stop the timer
        st.rerun(scope="app")
    cols = st.columns(4)
    cols[0].metric("State", state)
    cols[1].metric("Progress", f"{100 * progress:.0f}%")
    cols[2].metric("Epoch", "-" if status.get("epoch") is None else f"{int(status['epoch']) + 1} of {total_epochs}")
    cols[3].metric("Device", f"{status.get('device') or '-'}" + (f" ×{status['nproc']}" if (status.get("nproc") or 1) > 1 else ""))
    if status.get("error"):
        st.error(ui.one_line(Exception(status["error"])))
    st.progress(min(max(progress, 0.0), 1.0))
    steps, epochs = frames.curves(current)
    left, right = st.columns(2)
    with left:
        if len(steps):
            fig = px.line(steps, x="global_step", y="loss", title="Training loss", markers=len(steps) < 30)
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
            st.plotly_chart(fig, width="stretch", key="loss-chart")
        else:
            st.caption("The loss curve appears after the first logged steps.")
    with right:
        valid = [c for c in epochs.columns if c.startswith("valid_") and not c.endswith("_skipped")]
        if len(epochs) and valid:
            long = epochs.melt(id_vars=["epoch"], value_vars=valid, var_name="metric", value_name="value")
            long["metric"] = long["metric"].str.removeprefix("valid_")
            fig = px.line(long, x="epoch", y="value", color="metric", markers=True, title="Validation")
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
            st.plotly_chart(fig, width="stretch", key="valid-chart")
        else:
            st.caption("Validation curves appear after the first epoch.")
    st.subheader("Log", divider="gray")
    tail = frames.log_tail(current)
    st.code(tail or "(no log lines yet)", language=None)
    if state == "succeeded":
        metrics = current.metrics()
        test = {k: v for k, v in (metrics.get("test") or {}).items() if isinstance(v, float)}
        if test:
            st.subheader("Test metrics", divider="gray")
            mcols = st.columns(len(test))
            for col, (name, value) in zip(mcols, test.items()):
                col.metric(name.upper(), f"{value:.4f}")


def _actions() -> None:
    if ui.read_only():
        ui.read_only_note("Cancelling, resuming and deleting runs")
        return
    state = run.state
    cols = st.columns([1, 1, 1, 3])
    with ui.lego_errors():
        if cols[0].button("Cancel", disabled=state not in runs.ACTIVE_STATES, icon=":material/stop:",
                          help="Stop the run gracefully; it keeps a checkpoint to resume from."):
            from lego_core import jobs

            jobs.cancel(run.id, wait=False)
            st.toast(f"Cancelling {run.id}")
            st.rerun()
        if cols[1].button("Resume", disabled=state not in ("cancelled", "interrupted", "failed", "pruned"),
                          icon=":material/play_arrow:", help="Continue from the last checkpoint."):
            from lego_core import jobs

            jobs.resume(run.id)
            st.toast(f"Resuming {run.id}")
            st.rerun()
        if cols[2].button("Delete", disabled=state == "running", icon=":material/delete:",
                          help="Remove the run folder (asks for confirmation)."):
            st.session_state["confirm_delete"] = run.id
    if st.session_state.get("confirm_delete") == run.id:
        st.warning(f"Delete run {run.id} with its checkpoints, metrics and embeddings? This cannot be undone.")
        yes, no = st.columns([1, 5])
        with ui.lego_errors():
            if yes.button("Yes, delete", type="primary", key="confirm-delete-yes"):
                st.session_state.pop("confirm_delete", None)
                from lego_core import jobs

                jobs.delete(run.id)
                st.session_state.pop("training_run", None)
                st.session_state[DELETED] = run.id  # said at the top of the page after the rerun
                st.rerun()
        if no.button("Keep it", key="confirm-delete-no"):
            st.session_state.pop("confirm_delete", None)
            st.rerun()


_actions()
live = st.fragment(run_every=REFRESH_SECONDS if any_active else None)
with st.container():
    live(_live)()
if state_at_render == "succeeded":
    st.page_link("pages/embeddings.py", label="Explore its item embeddings", icon=":material/scatter_plot:")
    st.page_link("pages/users.py", label="See its recommendations per user", icon=":material/person_search:")

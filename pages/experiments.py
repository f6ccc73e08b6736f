"""Experiments: every run as a row (recipe summary, test metrics, time, parameters), filterable
and sortable; a bar chart comparing selected runs; CSV export."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from lego_core.explore import frames
from pages import _common as ui

ui.require_navigation()

st.title("Experiments")

all_runs = ui.all_runs()
if not all_runs:
    ui.empty_state("No experiments yet. Launch a few recipes from the Builder (the presets are a good "
                   "start); each finished run becomes a row here.", "pages/builder.py", "Open the Builder")
    st.stop()

table = frames.runs_table(all_runs)
metrics = frames.metric_columns(table)

with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    states = sorted(table["state"].dropna().unique())
    pick_states = c1.multiselect("State", states, default=[s for s in states if s == "succeeded"] or states,
                                 key="exp-states")
    datasets = sorted(table["dataset"].dropna().unique()) if "dataset" in table else []
    pick_datasets = c2.multiselect("Dataset", datasets, default=datasets, key="exp-datasets")
    text = c3.text_input("Filter by brick or id", key="exp-text", placeholder="e.g. attention, gru, nrms")
    sort_by = c4.selectbox("Sort by", (metrics or []) + ["created", "train_seconds", "parameters"],
                           key="exp-sort")

view = table[table["state"].isin(pick_states)]
if datasets:
    view = view[view["dataset"].isin(pick_datasets)]
if text:
    needle = text.strip().lower()
    haystack = view[[c for c in ("run_id", "recipe", "content", "behavior", "predictor") if c in view]]
    view = view[haystack.astype(str).apply(lambda col: col.str.lower().str.contains(needle, regex=False)).any(axis=1)]
if sort_by in view:
    view = view.sort_values(sort_by, ascending=sort_by in ("train_seconds", "parameters"), na_position="last")

columns = [c for c in ["run_id", "state", "recipe", "dataset", "content", "behavior", "predictor", *metrics,
                       "train_seconds", "parameters", "dim", "epochs", "created"] if c in view.columns]
st.caption(f"{len(view)} of {len(table)} runs. Click a column header to sort.")
if view.empty:
    st.info("No run matches these filters; widen the state or dataset choice.", icon=":material/filter_alt:")
else:
    config = {m: st.column_config.NumberColumn(m.removeprefix("test_").upper(), format="%.4f") for m in metrics}
    config["parameters"] = st.column_config.NumberColumn("parameters", format="localized")
    config["train_seconds"] = st.column_config.NumberColumn("train s", format="%.1f")
    config["created"] = st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")
    st.dataframe(view[columns], hide_index=True, width="stretch", column_config=config)
    st.download_button("Download CSV", view[columns].to_csv(index=False).encode("utf-8"),
                       file_name="experiments.csv", mime="text/csv", icon=":material/download:")

st.subheader("Compare runs", divider="gray")
scored = view.dropna(subset=metrics, how="all") if metrics else view.iloc[0:0]
if scored.empty:
    ui.empty_state("Metrics appear when a run finishes; wait on the Training page.", "pages/training.py",
                   "Open Training")
    st.stop()
chosen = st.multiselect("Runs", scored["run_id"].tolist(), default=scored["run_id"].tolist()[:6],
                        key="exp-compare")
pick_metrics = st.multiselect("Metrics", metrics, default=[m for m in metrics if m in
                                                         ("test_auc", "test_mrr", "test_ndcg@10")] or metrics[:3],
                              format_func=lambda m: m.removeprefix("test_").upper(), key="exp-metrics")
floor = st.checkbox("Show the popularity baseline", value=True, key="exp-baseline",
                    help="Items ranked by how often they were clicked in training: the floor to beat.")
if chosen and pick_metrics:
    bars = scored[scored["run_id"].isin(chosen)]
    if floor:
        base = frames.baselines([r for r in all_runs if r.id in chosen])
        bars = pd.concat([bars, base[[c for c in base.columns if c in ("run_id", *pick_metrics)]]], ignore_index=True)
    long = bars.melt(id_vars=["run_id"], value_vars=pick_metrics, var_name="metric", value_name="value")
    long["metric"] = long["metric"].str.removeprefix("test_").str.upper()
    fig = px.bar(long, x="metric", y="value", color="run_id", barmode="group", text_auto=".3f")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="run")
    st.plotly_chart(fig, width="stretch", key="compare-chart")
else:
    st.caption("Choose at least one run and one metric.")

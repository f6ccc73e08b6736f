"""Experiments: every run as a row (recipe summary, test metrics, time, parameters), filterable
and sortable; CSV export; the test metrics split into all / warm / cold items with a chart per run;
a bar chart comparing selected runs."""
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
    current = ui.current_dataset_name()  # the sidebar's dataset first, as every page; clear it to see all
    pick_datasets = c2.multiselect("Dataset", datasets, default=[current] if current in datasets else datasets,
                                   key="exp-datasets", help="The sidebar's dataset; add others (or all) to compare "
                                                            "runs across datasets.")
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

overall = [m for m in metrics if not m.startswith(("test_warm_", "test_cold_"))]  # warm/cold: their own section
columns = [c for c in ["run_id", "state", "recipe", "dataset", "content", "behavior", "predictor", *overall,
                       "train_seconds", "parameters", "dim", "epochs", "created"] if c in view.columns]
st.caption(f"{len(view)} of {len(table)} runs, metrics over all test impressions (warm and cold items apart "
           "below). Click a column header to sort.")
if view.empty:
    st.info("No run matches these filters; widen the state or dataset choice.", icon=":material/filter_alt:")
else:
    config = {m: st.column_config.NumberColumn(m.removeprefix("test_").upper(), format="%.4f") for m in overall}
    config["parameters"] = st.column_config.NumberColumn("parameters", format="localized")
    config["train_seconds"] = st.column_config.NumberColumn("train s", format="%.1f")
    config["created"] = st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")
    st.dataframe(view[columns], hide_index=True, width="stretch", column_config=config, key="exp-table")
    everything = [c for c in table.columns if c in columns or c in metrics]
    st.download_button("Download CSV", view[everything].to_csv(index=False).encode("utf-8"),
                       file_name="experiments.csv", mime="text/csv", icon=":material/download:",
                       help="Every column shown, with the warm and cold metrics.")


def _warm_and_cold(shown_runs: list) -> None:
    """All / warm / cold test metrics per run: a table with integer counts, where the cold items come
    from, and one warm-vs-cold chart per run."""
    split = frames.warm_cold(shown_runs)
    st.subheader("Warm and cold items", divider="gray")
    if split.empty:
        st.caption("No run here has its test metrics split by warm and cold items yet.")
        return
    st.caption("Test impressions split by their clicked item: **warm** if training saw it, **cold** if it never "
               "did (the model can only read its content). **all** is both together.")
    names = [c for c in split.columns if c not in ("run_id", "part", "impressions", "held_out")]
    config = {m: st.column_config.NumberColumn(m.upper(), format="%.4f") for m in names}
    config["impressions"] = st.column_config.NumberColumn("impressions", format="%d")
    st.dataframe(split[["run_id", "part", "impressions", *names]], hide_index=True, width="stretch",
                 column_config=config, key="exp-warm-cold")
    first_seen = split[(split["part"] == "cold") & (split["held_out"] == 0)]
    for run_id, count in zip(first_seen["run_id"], first_seen["impressions"]):
        st.info(f"{ui.safe(run_id)}: no item was held out of training (Cold items 0%), so its {count:,} cold "
                "impressions click items first seen in valid/test impressions only; set Cold items in the "
                "sidebar to hold out a share of the items.", icon=":material/ac_unit:")
    charted = split["run_id"].drop_duplicates().tolist()[:6]
    shown_metrics = [m for m in ("auc", "mrr", "ndcg@10") if m in names] or names[:3]
    bars = frames.warm_cold_bars(split[split["run_id"].isin(charted)], shown_metrics)
    fig = px.bar(bars, x="metric", y="value", color="part", barmode="group", facet_col="run",
                 facet_col_wrap=min(len(charted), 3), text_auto=".3f", hover_data={"label": True, "run": False},
                 color_discrete_map={"all": "#6C757D", "warm": "#E8590C", "cold": "#1C7ED6"},
                 category_orders={"part": ["all", "warm", "cold"]}, title="Warm vs cold, per run")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(height=320 * -(-len(charted) // 3), margin=dict(l=10, r=10, t=60, b=10), legend_title_text="")
    st.plotly_chart(fig, width="stretch", key="warm-cold-chart")
    if len(split["run_id"].unique()) > len(charted):
        st.caption(f"Charts for the first {len(charted)} runs; the table lists them all.")


_warm_and_cold([r for r in all_runs if r.id in set(view["run_id"])])

st.subheader("Compare runs", divider="gray")
scored = view.dropna(subset=metrics, how="all") if metrics else view.iloc[0:0]
if scored.empty:
    ui.empty_state("Metrics appear when a run finishes; wait on the Training page.", "pages/training.py",
                   "Open Training")
    st.stop()
chosen = st.multiselect("Runs", scored["run_id"].tolist(), default=scored["run_id"].tolist()[:6],
                        key="exp-compare")
scores = [m for m in metrics if not m.endswith("_impressions")]  # counts are not scores to compare
pick_metrics = st.multiselect("Metrics", scores, default=[m for m in scores if m in
                                                        ("test_auc", "test_mrr", "test_ndcg@10")] or scores[:3],
                              format_func=frames.metric_label, key="exp-metrics")
floor = st.checkbox("Show the popularity baseline", value=True, key="exp-baseline",
                    help="Items ranked by how often they were clicked in training: the floor to beat.")
if chosen and pick_metrics:
    bars = scored[scored["run_id"].isin(chosen)]
    if floor:
        base = frames.baselines([r for r in all_runs if r.id in chosen])
        bars = pd.concat([bars, base[[c for c in base.columns if c in ("run_id", *pick_metrics)]]], ignore_index=True)
    long = bars.melt(id_vars=["run_id"], value_vars=pick_metrics, var_name="metric", value_name="value")
    long["metric"] = long["metric"].map(frames.metric_label)
    fig = px.bar(long, x="metric", y="value", color="run_id", barmode="group", text_auto=".3f")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), legend_title_text="run")
    st.plotly_chart(fig, width="stretch", key="compare-chart")
else:
    st.caption("Choose at least one run and one metric.")

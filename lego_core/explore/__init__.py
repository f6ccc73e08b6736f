"""What the pages show, computed here so pages only render: the Builder's state (`builder`) and
its Sweep mode (`sweep_form`), DataFrames of datasets, runs and users (`frames`, on lookups built once
per dataset: `lookups`), the Datasets page's binned plots (`distributions`), item maps (`maps`, UMAP of any size: `umap_fit`),
run comparisons (`compare`) and per-item explanations (`explain`).

May import core, data, lm, bricks, evaluation, training, runs, jobs and sweeps.
"""

"""What the pages show, computed here so pages only render: the Builder's state (`builder`) and
its Sweep mode (`sweep_form`), DataFrames of datasets, runs and users (`frames`), item maps (`maps`),
run comparisons (`compare`) and per-item explanations (`explain`).

May import core, data, lm, bricks, evaluation, training, runs, jobs and sweeps.
"""

"""Re-open a finished run: rebuild its model from the recipe, load the best checkpoint, evaluate."""
from __future__ import annotations

from lego_core.data import datasets
from lego_core.evaluation import evaluate as ev
from lego_core.core.errors import RunError
from lego_core.evaluation.evaluate import split_parts
from lego_core.bricks.model import Legommender, build
from lego_core.training.checkpoints import load_weights, read_checkpoint


def load_model(run, device: str = "cpu", dataset=None) -> tuple[Legommender, object]:
    """(model with the run's best weights, dataset) for a run directory. `dataset` is the run's
    dataset when the caller already holds it (the app's one loaded copy); None loads it."""
    recipe = run.recipe().validate()
    checkpoint = run.checkpoint_path("best")
    if not checkpoint.exists():
        raise RunError(f"run {run.id} has no best checkpoint ({checkpoint}); train it first or resume it")
    fix = (f"resume the run if it was interrupted (`python -m lego_core train --run-dir {run.path} --resume`), "
           "otherwise train its recipe again into a new --run-dir")
    weights = read_checkpoint(checkpoint, device, fix=fix)["model"]  # a bad file fails before any data loads
    if dataset is None:
        dataset = datasets.load(recipe.dataset.name, **recipe.dataset.options)
    model = build(recipe, dataset, device).to(device)
    load_weights(model, weights, checkpoint, fix)
    return model.eval(), dataset


def evaluate_run(run, cached: bool = True, splits: list[str] | tuple = ("valid", "test")) -> dict:
    """{split: metrics} as training reports them: test also split into test_warm / test_cold."""
    model, dataset = load_model(run)
    out = {}
    for split in splits:
        parts = ev.evaluate(model, dataset, split, cached=cached, progress=True, parts=True,
                            batch_size=model.recipe.training.eval_batch_size)
        out.update(split_parts(split, parts) if split == "test" else {split: parts["all"]})
    return out

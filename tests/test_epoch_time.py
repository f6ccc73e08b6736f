"""The Builder's epoch-time estimate: from earlier runs of the same setup, else a measurement of
real training steps; other bricks, datasets or batch sizes never lend their speed."""
from __future__ import annotations

from lego_core import runs
from lego_core.data import datasets
from lego_core.training import epoch_time
from lego_core.training import train
from test_training import TINY, tiny_recipe


def test_steps_per_epoch_counts_training_samples_and_honours_the_cap():
    dataset = datasets.load("synthetic", **TINY)
    recipe = tiny_recipe(batch_size=16)
    from lego_core.data.batches import TrainingSamples

    samples = len(TrainingSamples(dataset, recipe.training.negatives, recipe.training.max_history))
    assert epoch_time.steps_per_epoch(recipe, dataset) == -(-samples // 16)
    assert epoch_time.steps_per_epoch(tiny_recipe(max_steps_per_epoch=2), dataset) == 2


def test_an_earlier_run_of_the_same_setup_gives_its_seconds_per_step(tmp_path):
    dataset = datasets.load("synthetic", **TINY)
    recipe = tiny_recipe()
    run = runs.create(recipe, root=tmp_path, run_id="earlier")
    metrics = train.run(recipe, run, progress=False)
    steps = run.history("steps")[-1]["global_step"]
    def count() -> int:
        return epoch_time.steps_per_epoch(recipe, dataset)

    found = epoch_time.estimate(recipe, runs.list(tmp_path), count)
    assert abs(found["per_step"] - metrics["train_seconds"] / steps) < 1e-9
    assert found["steps"] == count() and found["seconds"] == found["per_step"] * count()
    assert "1 earlier run" in found["basis"]
    assert epoch_time.estimate(tiny_recipe(batch_size=32), runs.list(tmp_path), count) is None
    assert epoch_time.estimate(tiny_recipe("attention"), runs.list(tmp_path), count) is None


def test_without_earlier_runs_a_few_steps_are_timed_on_request(tmp_path):
    dataset = datasets.load("synthetic", **TINY)
    recipe = tiny_recipe(history_cache=True)
    counted = []

    def count() -> int:
        counted.append(1)
        return epoch_time.steps_per_epoch(recipe, dataset)

    assert epoch_time.estimate(recipe, [], count) is None
    assert not counted  # no time per step: the steps are not counted (MIND-large's take seconds)
    found = epoch_time.estimate(recipe, [], count, lambda: epoch_time.measure(recipe, dataset))
    assert found["per_step"] > 0 and found["seconds"] == found["per_step"] * found["steps"] > found["per_step"]
    assert "timed" in found["basis"]


def test_bench_batches_run_on_into_the_next_epoch_as_training_does():
    """`training_batches` (the LM benches) past one epoch's steps: the next epoch's batches, in the
    order train_epoch draws them, never an empty batch."""
    import numpy as np

    trainer = epoch_time.in_memory_trainer(tiny_recipe(max_steps_per_epoch=3), datasets.load("synthetic", **TINY))
    batches = list(epoch_time.training_batches(trainer, 5))
    size = trainer.t.batch_size
    expected = trainer.samples.batch(trainer.samples.epoch_order(trainer.t.seed, 1)[size:2 * size],
                                     trainer.t.seed, 1, 1)
    assert all(len(b.candidates) == size for b in batches)
    np.testing.assert_array_equal(batches[4].candidates, expected.candidates)
    np.testing.assert_array_equal(batches[4].history, expected.history)

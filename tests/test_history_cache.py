"""The history cache (training.history_cache): right after a refresh it scores exactly like the exact
path; only the candidates go through the content brick with gradients; the table is refreshed on
schedule; a run resumed from its checkpoint equals an uninterrupted one; every content brick and
two DDP processes train with it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lego_core import runs
from lego_core.data import datasets
from lego_core.training import history_cache
from lego_core.training import train
from lego_core.training.checkpoints import MemoryCheckpointer
from lego_core.bricks.model import to_tensor
from lego_core.bricks import catalog
from lego_core.training.logs import MemoryLog
from test_training import TINY, tiny_recipe

LM_TINY = {"training.max_length": 12, "training.template": "{title}"}


@pytest.fixture(scope="module")
def tiny_dataset():
    return datasets.load("synthetic", **TINY)


def _trainer(recipe, dataset=None):
    trainer = train.Trainer(recipe, MemoryLog(), MemoryCheckpointer(), progress=False, dataset=dataset)
    trainer.setup()
    return trainer


def _batch(trainer, step=0):
    order = trainer.samples.epoch_order(trainer.t.seed, 0)
    size = trainer.t.batch_size
    return trainer.samples.batch(order[step * size:(step + 1) * size], trainer.t.seed, 0, step)


def _inputs(trainer, batch):
    return [to_tensor(a, trainer.device) for a in (batch.users, batch.history, batch.history_mask, batch.candidates)]


def test_default_is_on_for_language_model_bricks_and_off_for_word_models():
    assert not history_cache.enabled(tiny_recipe("cnn"))
    assert history_cache.enabled(tiny_recipe("lm_encoder"))
    assert history_cache.enabled(tiny_recipe("cnn", history_cache=True))
    assert not history_cache.enabled(tiny_recipe("lm_encoder", history_cache=False))


@pytest.mark.parametrize("content", ["cnn", "attention", "lm_encoder"])
def test_right_after_a_refresh_scores_equal_the_exact_path(content, tiny_dataset):
    recipe = tiny_recipe(content, "additive", "dot", history_cache=True).with_overrides(LM_TINY)
    trainer = _trainer(recipe, tiny_dataset)
    for step in range(3):  # move the weights away from their initial values first
        trainer.train_step(_batch(trainer, step))
    trainer.model.eval()
    with torch.no_grad():
        table = trainer.history.refresh(trainer.model)
        inputs = _inputs(trainer, _batch(trainer, 3))
        cached = trainer.model(*inputs, history_table=table)
        exact = trainer.model(*inputs)
    torch.testing.assert_close(cached, exact, rtol=1e-5, atol=1e-5)


def test_only_candidates_are_encoded_with_gradients(tiny_dataset):
    trainer = _trainer(tiny_recipe("cnn", "additive", "dot", history_cache=True), tiny_dataset)
    seen: list[torch.Tensor] = []
    original = trainer.model.content.forward

    def spy(tokens, mask, item_ids):
        if torch.is_grad_enabled():
            seen.append(item_ids.clone())
        return original(tokens, mask, item_ids)

    trainer.model.content.forward = spy
    batch = _batch(trainer)
    before = {n: p.detach().clone() for n, p in trainer.model.behavior.named_parameters()}
    trainer.train_step(batch)
    encoded = torch.cat(seen)
    assert set(encoded.tolist()) == set(batch.candidates.reshape(-1).tolist())
    history_only = set(batch.history[batch.history_mask].tolist()) - set(batch.candidates.reshape(-1).tolist())
    assert history_only and not history_only & set(encoded.tolist())
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.behavior.named_parameters())  # still trains


def test_the_table_is_refreshed_every_n_steps_and_at_each_epoch_start(tiny_dataset):
    recipe = tiny_recipe("cnn", history_cache=True, history_refresh=2, epochs=2, max_steps_per_epoch=3)
    trainer = _trainer(recipe, tiny_dataset)
    trainer.train_epoch(0)
    assert trainer.history.refreshes == 2  # steps 0 and 2
    trainer.train_epoch(1)
    assert trainer.history.refreshes == 4  # epoch start, then step 2 again


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    recipe = tiny_recipe("cnn", "gru", "dot", epochs=2, patience=5, history_cache=True, history_refresh=2)
    full = train.run(recipe, runs.create(recipe, root=tmp_path, run_id="full"), progress=False)
    one = recipe.with_overrides({"training.epochs": 1})
    run = runs.create(one, root=tmp_path, run_id="split")
    train.run(one, run, progress=False)  # as if killed after epoch 1's checkpoint
    (run.path / "recipe.yaml").write_text(recipe.to_yaml())
    resumed = train.run(recipe, run, resume=True, progress=False)
    assert resumed["test"] == full["test"]


@pytest.mark.parametrize("content", [n for n, s in catalog("content").items()])
def test_every_content_brick_trains_with_the_history_cache(content, tiny_dataset):
    recipe = tiny_recipe(content, "additive", "dot", history_cache=True).with_overrides(LM_TINY)
    trainer = _trainer(recipe, tiny_dataset)
    losses = [trainer.train_step(_batch(trainer, step)) for step in range(2)]
    assert all(torch.isfinite(torch.tensor(losses))) and trainer.history.refreshes == 1


@pytest.mark.slow
def test_two_ddp_processes_train_with_the_history_cache(tmp_path):
    recipe = tiny_recipe("cnn", "additive", "dot", epochs=1, history_cache=True, history_refresh=2)
    run = runs.create(recipe, root=tmp_path, run_id="ddp")
    env = {**os.environ, "LEGO_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           "-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet",
                           "--set", "training.device=cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    status = runs.open("ddp", tmp_path).status()
    assert status["state"] == "succeeded" and status["nproc"] == 2
    assert 0.0 <= runs.open("ddp", tmp_path).metrics()["test"]["auc"] <= 1.0


def test_the_default_refresh_interval_follows_the_catalogue_size():
    recipe = tiny_recipe("lm_encoder", batch_size=64, negatives=4)
    assert history_cache.refresh_interval(recipe, 1682) == 5  # MovieLens-100k
    assert history_cache.refresh_interval(recipe, 160_000) == 500  # MIND-large
    assert history_cache.refresh_interval(recipe, 10) == 1
    assert history_cache.refresh_interval(recipe.with_overrides({"training.history_refresh": 40}), 1682) == 40

"""The history cache (training.history_cache): with rows no older than the step it scores exactly
like the exact path; only the candidates go through the content brick with gradients, and they go
back into the table; a history read re-encodes only the rows older than history_max_age; a run
resumed from its checkpoint equals an uninterrupted one; every content brick and two DDP processes
train with it; a few steps trained both ways score a batch alike."""
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


def test_off_unless_asked_for():
    assert not history_cache.enabled(tiny_recipe("cnn"))
    assert not history_cache.enabled(tiny_recipe("lm_encoder"))  # the exact path is the default
    assert history_cache.enabled(tiny_recipe("lm_encoder", history_cache=True))


def test_recipes_written_with_a_refresh_interval_still_load():
    old = tiny_recipe("lm_encoder").model_dump()
    old["training"].update(history_cache=None, history_refresh=7)
    del old["training"]["history_max_age"]
    t = type(tiny_recipe("cnn")).model_validate(old).training
    assert t.history_cache is False and t.history_max_age == 7


@pytest.mark.parametrize("content", ["cnn", "attention", "lm_encoder"])
def test_with_rows_of_this_step_scores_equal_the_exact_path(content, tiny_dataset):
    recipe = tiny_recipe(content, "additive", "dot", history_cache=True, history_max_age=0).with_overrides(LM_TINY)
    trainer = _trainer(recipe, tiny_dataset)
    for step in range(3):  # move the weights away from their initial values first
        trainer.train_step(_batch(trainer, step))
    trainer.model.eval()
    with torch.no_grad():
        trainer.history.begin_step()  # every row is now a step old: max age 0 re-encodes each read
        inputs = _inputs(trainer, _batch(trainer, 3))
        cached = trainer.model(*inputs, history_cache=trainer.history)
        exact = trainer.model(*inputs)
    torch.testing.assert_close(cached, exact, rtol=1e-5, atol=1e-5)


def test_fresh_rows_are_not_encoded_again(tiny_dataset):
    trainer = _trainer(tiny_recipe("cnn", "additive", "dot", history_cache=True, history_max_age=5), tiny_dataset)
    trainer.train_step(_batch(trainer))  # fills the table with this batch's rows
    seen: list[torch.Tensor] = []
    original = trainer.model.content.forward

    def spy(tokens, mask, item_ids):
        seen.append(item_ids.clone())
        return original(tokens, mask, item_ids)

    trainer.model.content.forward = spy
    batch = _batch(trainer, 1)
    before = {n: p.detach().clone() for n, p in trainer.model.behavior.named_parameters()}
    trainer.train_step(batch)
    encoded = set(torch.cat(seen).tolist())
    read = set(batch.history.reshape(-1).tolist())
    stored_at_step_1 = set(torch.nonzero(trainer.history.stamps == 1).reshape(-1).tolist())
    candidates = set(batch.candidates.reshape(-1).tolist())
    assert encoded == candidates | (read - stored_at_step_1)  # rows the first step stored are not encoded again
    assert read & stored_at_step_1 - candidates
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.behavior.named_parameters())  # still trains


@pytest.mark.parametrize("content", ["cnn", "lm_encoder"])
def test_max_age_zero_is_the_exact_path_gradients_included(content, tiny_dataset):
    """Dropout off (eval mode), so both paths see the same vectors: every gradient agrees (to float
    rounding: a language model encodes its texts in length groups, which the batch's make-up changes)."""
    recipe = tiny_recipe(content, "additive", "dot", history_cache=True, history_max_age=0,
                         amp=False).with_overrides(LM_TINY)  # float32: bf16 rounding would hide nothing but noise
    trainer = _trainer(recipe, tiny_dataset)
    trainer.train_step(_batch(trainer, 0))
    trainer.model.eval()
    inputs = _inputs(trainer, _batch(trainer, 1))
    grads = []
    for cache in (trainer.history, None):
        trainer.model.zero_grad(set_to_none=True)
        if cache is not None:
            cache.begin_step()
        trainer.model(*inputs, history_cache=cache).logsumexp(dim=1).sum().backward()
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("item_id", ["off", "add"])
def test_rows_read_from_the_table_still_train_the_head_exactly(item_id, tiny_dataset):
    """The table keeps the LM brick's pooled states, and its head (projection, then a hybrid's ID
    vector) runs on every history row: at unchanged weights the head's, the ID table's and the
    behaviour's gradients equal the exact path's; only the LM layers miss the table rows' share."""
    recipe = tiny_recipe("lm_encoder", "additive", "dot", history_cache=True, history_max_age=5, amp=False,
                         item_id=item_id, item_id_dropout=0.0).with_overrides(LM_TINY)
    trainer = _trainer(recipe, tiny_dataset)
    model, cache = trainer.model, trainer.history
    model.eval()
    inputs = _inputs(trainer, _batch(trainer, 0))
    cache.begin_step()
    with torch.no_grad():
        model(*inputs, history_cache=cache)  # every row of the batch is now in the table
    cache.begin_step()
    grads = []
    for table in (cache, None):
        model.zero_grad(set_to_none=True)
        model(*inputs, history_cache=table).logsumexp(dim=1).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert cache.reencoded == 0  # the second read took every history row from the table
    cached, exact = grads
    heads = [n for n in exact if not n.startswith("content.stack.")]
    assert "content.proj.weight" in heads and ("item_ids.ids.weight" in heads) == (item_id == "add")
    for name in heads:
        torch.testing.assert_close(cached[name], exact[name], rtol=1e-4, atol=1e-6)
    layers = [n for n in exact if n.startswith("content.stack.")]
    assert layers and any(not torch.allclose(cached[n], exact[n]) for n in layers)


def test_candidates_go_back_into_the_table_and_only_old_rows_are_re_encoded(tiny_dataset):
    recipe = tiny_recipe("cnn", "additive", "dot", history_cache=True, history_max_age=2)
    trainer = _trainer(recipe, tiny_dataset)
    cache = trainer.history
    first = _batch(trainer, 0)
    trainer.train_step(first)
    read = set(first.history.reshape(-1).tolist())
    candidates = set(first.candidates.reshape(-1).tolist())
    assert cache.reencoded == len(read - candidates)  # an empty table: every history row but the candidates
    assert set(torch.nonzero(cache.stamps == 1).reshape(-1).tolist()) == read | candidates
    trainer.train_step(first)  # the same rows a step later: all fresh
    assert cache.reencoded == 0
    cache.begin_step()  # step 3: history rows encoded at step 1 are 2 steps old, still within max age 2
    vectors = cache.lookup(trainer.model, torch.tensor(sorted(read)))
    assert cache.reencoded == 0 and vectors.shape == (len(read), trainer.t.dim)
    cache.begin_step()  # step 4: they are 3 old and re-encoded; the candidates, stored at step 2, are not
    cache.lookup(trainer.model, torch.tensor(sorted(read)))
    assert cache.reencoded == len(read - candidates)
    assert cache.stats()["fresh_share"] > 0


def test_every_row_expires_at_each_epoch_start(tiny_dataset):
    recipe = tiny_recipe("cnn", history_cache=True, history_max_age=100, epochs=2, max_steps_per_epoch=3)
    trainer = _trainer(recipe, tiny_dataset)
    trainer.train_epoch(0)
    seen = int((trainer.history.stamps > history_cache.NEVER).sum())
    assert seen > 0
    trainer.train_epoch(1)
    first = _batch(trainer, 0)
    assert trainer.history.reencoded_total >= 2 * len(set(first.history.reshape(-1).tolist())
                                                      - set(first.candidates.reshape(-1).tolist()))


def test_a_few_steps_trained_both_ways_score_a_batch_alike(tiny_dataset):
    """The cached path's weights after a few steps stay close to the exact path's: scores of one
    batch agree within 0.05 (logits of order 1), the tolerance a fresh table (max age 0) keeps."""
    recipe = tiny_recipe("attention", "attention", "dot", history_max_age=0, lr=1e-3)
    exact = _trainer(recipe.with_overrides({"training.history_cache": False}), tiny_dataset)
    cached = _trainer(recipe.with_overrides({"training.history_cache": True}), tiny_dataset)
    for step in range(4):
        exact.train_step(_batch(exact, step))
        cached.train_step(_batch(cached, step))
    for trainer in (exact, cached):
        trainer.model.eval()
    with torch.no_grad():
        inputs = _inputs(exact, _batch(exact, 5))
        a, b = exact.model(*inputs), cached.model(*inputs)
    assert not torch.equal(a, b)  # two different trainings
    torch.testing.assert_close(b, a, rtol=0, atol=0.05)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    recipe = tiny_recipe("cnn", "gru", "dot", epochs=2, patience=5, history_cache=True, history_max_age=2)
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
    assert all(torch.isfinite(torch.tensor(losses))) and trainer.history.reencoded_total > 0


@pytest.mark.slow
def test_two_ddp_processes_train_with_the_history_cache(tmp_path):
    recipe = tiny_recipe("cnn", "additive", "dot", epochs=1, history_cache=True, history_max_age=2)
    run = runs.create(recipe, root=tmp_path, run_id="ddp")
    env = {**os.environ, "LEGO_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           "-m", "lego_core", "train", "--run-dir", str(run.path), "--quiet",
                           "--set", "training.device=cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    status = runs.open("ddp", tmp_path).status()
    assert status["state"] == "succeeded" and status["nproc"] == 2
    assert 0.0 <= runs.open("ddp", tmp_path).metrics()["test"]["auc"] <= 1.0

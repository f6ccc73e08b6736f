"""`lego export RUN -o DIR`: a serving bundle whose ONNX user encoder and predictor score within
1e-5 of torch under onnxruntime, whose recommend.py ranks a new history in a clean interpreter
without lego_core or torch, and whose projector files TensorBoard's projector reads."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from lego_core import runs
from lego_core.bricks.recipe import Recipe
from lego_core.cli.main import main
from lego_core.core.errors import RunError
from lego_core.runs import export, recommend
from lego_core.training import train
from test_loggers import TINY


@pytest.fixture(scope="module", params=["nrms", "lstur"])
def bundle(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        recipe = Recipe.preset(request.param).with_overrides(TINY)
        run = runs.create(recipe)
        train.run(recipe, run, progress=False)
        out = tmp_path_factory.mktemp("bundles") / request.param
        assert main(["export", str(run.path), "-o", str(out)]) == 0
        yield run, out


def test_onnx_scores_match_torch(bundle):
    import onnxruntime

    run, out = bundle
    found = recommend.scorer(run)
    model, items = found.model, found.items
    rows = np.arange(found.dataset.num_users)
    hist, mask = found.dataset.gather_histories(rows, found.test_ends[rows], model.recipe.training.max_history)
    history, mask_t = items[torch.from_numpy(hist)], torch.from_numpy(mask)
    behavior, _ = export.history_free(model, history, mask_t)
    with torch.no_grad():
        user = behavior(history, mask_t, torch.zeros(len(rows), dtype=torch.long))
        candidates = items.unsqueeze(0).expand(len(rows), -1, -1).contiguous()
        scores = model.score(user, candidates, history, mask_t)
    encoder = onnxruntime.InferenceSession(str(out / "user_encoder.onnx"))
    predictor = onnxruntime.InferenceSession(str(out / "predictor.onnx"))
    got_user = encoder.run(None, {"history": history.numpy(), "mask": mask})[0]
    feeds = {"user": got_user, "candidates": candidates.numpy(), "history": history.numpy(), "mask": mask}
    got = predictor.run(None, {i.name: feeds[i.name] for i in predictor.get_inputs()})[0]
    np.testing.assert_allclose(got_user, user.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, scores.numpy(), atol=1e-5, rtol=0)
    table = pq.read_table(out / "items.parquet")
    assert table.column("item_id").to_pylist() == found.item_ids
    np.testing.assert_array_equal(np.asarray(table.column("vector").to_pylist(), dtype=np.float32), items.numpy())
    info = json.loads((out / "model.json").read_text())
    assert info["recipe"] == model.recipe.model_dump(mode="json") and info["metrics"]["test"] == run.metrics()["test"]
    assert info["dataset"]["items"] == len(found.item_ids) and info["created"]
    assert (info["notes"] != []) == (model.recipe.behavior.name == "gru")  # LSTUR drops its per-user vectors


def test_the_bundle_recommends_for_a_new_history_without_lego_core(bundle):
    run, out = bundle
    found = recommend.scorer(run)
    history = found.item_ids[3:9]
    probe = ("import runpy, sys, json\nsys.argv = ['recommend.py', '.', *%r, '-k', '5']\n"
             "try:\n    runpy.run_path('recommend.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'lego_core', 'torch'})))" % (history,))
    done = subprocess.run([sys.executable, "-I", "-c", probe], cwd=out, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert json.loads(lines[-1]) == []  # neither lego_core nor torch was imported
    got = [json.loads(line) for line in lines[:-1]]
    # the same ranking from the torch model: the history's vectors, the encoder without a user id
    model, items, h = found.model, found.items, found.model.recipe.training.max_history
    rows = [found.item_ids.index(i) for i in history]
    vectors, mask = torch.zeros(1, h, items.shape[1]), torch.zeros(1, h, dtype=torch.bool)
    vectors[0, :len(rows)], mask[0, :len(rows)] = items[rows], True
    behavior, _ = export.history_free(model, vectors, mask)
    with torch.no_grad():
        user = behavior(vectors, mask, torch.zeros(1, dtype=torch.long))
        scores = model.score(user, items.unsqueeze(0), vectors, mask)[0].double().numpy()
    scores[rows] = -np.inf
    best = np.argsort(-scores, kind="stable")[:5]
    assert [g["item_id"] for g in got] == [found.item_ids[i] for i in best]
    np.testing.assert_allclose([g["score"] for g in got], scores[best], atol=1e-5)


def test_projector_files_hold_the_item_table_with_titles_and_categories(bundle):
    from tensorboard.plugins.projector import projector_config_pb2
    from google.protobuf import text_format

    run, out = bundle
    found = recommend.scorer(run)
    config = text_format.Parse((out / "projector" / "projector_config.pbtxt").read_text(),
                               projector_config_pb2.ProjectorConfig())
    (embedding,) = config.embeddings
    tensors = np.loadtxt(out / "projector" / embedding.tensor_path, delimiter="\t", dtype=np.float32)
    np.testing.assert_allclose(tensors, found.items.numpy(), rtol=1e-5, atol=1e-6)
    meta = (out / "projector" / embedding.metadata_path).read_text().splitlines()
    assert meta[0].split("\t") == ["item_id", "title", "category"] and len(meta) == len(found.item_ids) + 1
    first = found.dataset.items.iloc[0]
    assert meta[1].split("\t")[:2] == [found.item_ids[0], " ".join(str(first[found.dataset.text_fields[0]]).split())]


def test_a_behavior_that_needs_the_training_user_is_named(bundle):
    class PerUser(nn.Module):  # a user vector looked up by id, not learned as a droppable state
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(4, 8)

        def forward(self, items, mask, users):
            return self.table(users) + items.mean(1)

    model = types.SimpleNamespace(behavior=PerUser(), num_users=4,
                                  recipe=types.SimpleNamespace(behavior=types.SimpleNamespace(name="per-user")))
    with pytest.raises(RunError, match="behavior brick 'per-user' cannot be exported: its user vector depends"):
        export.history_free(model, torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool))


def test_an_existing_bundle_is_not_overwritten(bundle, capsys):
    run, out = bundle
    assert main(["export", str(run.path), "-o", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err

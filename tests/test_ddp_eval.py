"""Sharded evaluation: two gloo processes on CPU split the item table, the user table and the
impressions, and rank 0's metrics equal one process's exactly; a 2-process training run evaluates
that way (every rank its share) and reports what one process computes from the same weights."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lego_core.bricks.model import build
from lego_core.bricks.recipe import Recipe
from lego_core.data.readers.synthetic import generate
from lego_core.evaluation import evaluate as ev

WORLD = 2


def _dataset():
    return generate(n_items=300, n_users=120, n_topics=6, history_len=12, n_impressions=240,
                    impression_size=8, seed=7)


def _recipe(**training):
    settings = {"dim": 16, "batch_size": 16, "epochs": 2, "max_history": 10, "max_length": 8, "glove": False,
                "device": "cpu", "eval_batch_size": 32, **training}  # 300 items: 10 chunks, the last one short
    return Recipe.from_dict({"name": "ddp-eval", "dataset": {"name": "synthetic"},
                             "content": {"name": "attention"}, "behavior": {"name": "attention"},
                             "predictor": {"name": "dot"}, "training": settings})


def _join(rank: int, folder: str) -> None:
    torch.set_num_threads(1)  # both the one-process and the sharded figures from the same kernels
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)


def _evaluate_worker(rank: int, folder: str) -> None:
    _join(rank, folder)
    try:
        dataset = _dataset()
        torch.manual_seed(0)
        model = build(_recipe(), dataset, torch.device("cpu")).eval()  # no dropout in the tables
        out = {"items_equal": torch.equal(ev.item_table(model, 32), ev.item_table(model, 32, sharded=True))}
        for split in ("valid", "test"):
            for cached in (True, False):
                single = ev.evaluate(model, dataset, split, cached=cached, batch_size=32, parts=True)
                sharded = ev.evaluate(model, dataset, split, cached=cached, batch_size=32, parts=True, sharded=True)
                out[split, cached] = (single, sharded)
        out["scores"] = (ev.score_split(model, dataset, "valid", batch_size=32),
                         ev.score_split(model, dataset, "valid", batch_size=32, sharded=True))
        with open(f"{folder}/rank{rank}.pkl", "wb") as fh:
            pickle.dump(out, fh)
    finally:
        dist.destroy_process_group()


def _train_worker(rank: int, folder: str) -> None:
    from lego_core.training.checkpoints import MemoryCheckpointer
    from lego_core.training.logs import MemoryLog
    from lego_core.training.train import Trainer

    _join(rank, folder)
    try:
        dataset = _dataset()
        trainer = Trainer(_recipe(), MemoryLog(), MemoryCheckpointer(), progress=False, dataset=dataset)
        result = trainer.fit()
        out = {"result": result, "weights": {k: v.clone() for k, v in trainer.model.state_dict().items()}}
        if rank == 0:  # what one process computes from the weights the run ended with
            out["single"] = ev.split_parts("test", ev.evaluate(trainer.model, dataset, "test", parts=True,
                                                                batch_size=32))
            out["epochs"] = trainer.log.epochs
        with open(f"{folder}/rank{rank}.pkl", "wb") as fh:
            pickle.dump(out, fh)
    finally:
        dist.destroy_process_group()


def _spawn(worker, folder) -> list[dict]:
    mp.spawn(worker, args=(str(folder),), nprocs=WORLD, join=True)
    return [pickle.loads((folder / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]


def test_sharded_evaluation_equals_one_process(tmp_path):
    rank0, rank1 = _spawn(_evaluate_worker, tmp_path)
    for out in (rank0, rank1):
        assert out["items_equal"]  # every rank holds the whole item table, bit for bit
    for split in ("valid", "test"):
        for cached in (True, False):
            single, sharded = rank0[split, cached]
            assert sharded == single, (split, cached)  # exact, not close
            assert single["all"]["impressions"] == len(_dataset().splits[split])
            assert rank1[split, cached][1] is None  # only rank 0 gets the metrics
    single, sharded = rank0["scores"]
    assert np.array_equal(single, sharded) and np.count_nonzero(single) == len(single)
    assert rank1["scores"][1] is None


def test_sharded_without_a_process_group_is_the_one_process_evaluation(synthetic_dataset):
    torch.manual_seed(0)
    model = build(_recipe(), synthetic_dataset, torch.device("cpu"))
    assert ev.evaluate(model, synthetic_dataset, "valid", batch_size=32, sharded=True) == \
        ev.evaluate(model, synthetic_dataset, "valid", batch_size=32)


@pytest.mark.slow
def test_two_process_training_evaluates_on_every_rank_and_reports_one_process_metrics(tmp_path):
    rank0, rank1 = _spawn(_train_worker, tmp_path)
    assert rank1["result"] == {} and rank0["result"]["test"]
    assert {k: rank0["result"][k] for k in rank0["single"]} == rank0["single"]  # one process, same weights
    assert [e["epoch"] for e in rank0["epochs"]] == [1, 2]
    for key, tensor in rank0["weights"].items():  # rank 1 evaluated rank 0's best weights
        assert torch.equal(tensor, rank1["weights"][key]), key

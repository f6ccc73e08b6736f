"""Training samples: negatives come from the impression when it has unclicked candidates, else
from items the user never touched; histories never include the sample's own click."""
import numpy as np

from lego_core.data.batches import TrainingSamples, impression_batches, padded_candidates
from lego_core.data.schema import Dataset, Impressions
import pandas as pd


def _dataset() -> Dataset:
    # user 0 clicked 0,1,2,3 in order; user 1 clicked 4,5
    seq_offsets = np.array([0, 4, 6])
    seq_items = np.array([0, 1, 2, 3, 4, 5])
    # train: user 0 positive 1 (history 1), 2 (history 2); user 1: an impression with negatives 7,8,9
    train = Impressions(ids=np.array([1, 2, 3]), users=np.array([0, 0, 1]), times=np.zeros(3, np.int64),
                        history_end=np.array([1, 2, 1]), offsets=np.array([0, 1, 2, 6]),
                        items=np.array([1, 2, 5, 7, 8, 9]), labels=np.array([1, 1, 1, 0, 0, 0], np.int8))
    empty = Impressions(*(np.zeros(0, np.int64) for _ in range(4)), np.array([0]), np.zeros(0, np.int64),
                        np.zeros(0, np.int8))
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(12)], "title": ["t"] * 12})
    return Dataset("toy", items, np.array(["u0", "u1"]), seq_offsets, seq_items,
                   {"train": train, "valid": empty, "test": empty}, ["title"])


def test_samples_and_negatives():
    ds = _dataset()
    samples = TrainingSamples(ds, negatives=3, max_history=5)
    assert len(samples) == 3
    batch = samples.batch(np.arange(3), seed=1, epoch=0, step=0)
    assert batch.candidates.shape == (3, 4)
    assert batch.candidates[:, 0].tolist() == [1, 2, 5]
    # user 0's negatives are never items the user touched
    assert not np.isin(batch.candidates[:2, 1:], [0, 1, 2, 3]).any()
    # user 1's negatives come from the impression's own unclicked candidates
    assert np.isin(batch.candidates[2, 1:], [7, 8, 9]).all()
    # history is the sequence before the sample, left-aligned, no leakage of the positive
    assert batch.history[0, :1].tolist() == [0] and batch.history_mask[0].sum() == 1
    assert batch.history[1, :2].tolist() == [0, 1] and batch.history_mask[1].sum() == 2
    # deterministic per (seed, epoch, step)
    again = samples.batch(np.arange(3), seed=1, epoch=0, step=0)
    assert np.array_equal(batch.candidates, again.candidates)


def test_seen_keys_are_built_only_when_a_sample_lacks_unclicked_candidates():
    """MIND-like impressions always carry unclicked candidates: the sorted (user, item) keys that
    reject drawn negatives (33 million at MIND-large, most of its set-up) are never built."""
    samples = TrainingSamples(_dataset(), negatives=3, max_history=5)
    samples.batch(np.array([2]), seed=1, epoch=0, step=0)  # user 1's impression has negatives 7, 8, 9
    assert samples._seen_keys is None
    samples.batch(np.array([0]), seed=1, epoch=0, step=0)  # user 0's has none: drawn, checked against keys
    assert samples.seen_keys.tolist() == sorted(set([0 * 12 + i for i in (0, 1, 2, 3)] + [12 + 4, 12 + 5]))


def test_epoch_order_shards_evenly():
    samples = TrainingSamples(_dataset(), negatives=2, max_history=5)
    full = samples.epoch_order(0, 0)
    assert sorted(full.tolist()) == [0, 1, 2]
    shards = [samples.epoch_order(0, 0, rank, 2) for rank in range(2)]
    assert len(shards[0]) == len(shards[1]) == 2
    assert set(np.concatenate(shards)) == {0, 1, 2}


def test_padded_candidates_roundtrip():
    imps = _dataset().splits["train"]
    rows = impression_batches(imps, 2)
    assert sorted(np.concatenate(rows).tolist()) == [0, 1, 2]
    items, valid, flat = padded_candidates(imps, np.array([2, 0]))
    assert items.shape == (2, 4) and valid.sum() == 5
    assert items[valid].tolist() == imps.items[flat].tolist() == [5, 7, 8, 9, 1]

"""lego_core.evaluation.metrics against independent references: sklearn and a plain per-impression loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from lego_core.evaluation import metrics as M
from lego_core.core.errors import LegoError

# ----------------------------------------------------------------------------- references


def _by_group(labels, scores, groups):
    """{group: [(score, label), ...]} with a plain dict, in row order."""
    out: dict = {}
    for y, s, g in zip(labels.tolist(), scores.tolist(), groups.tolist()):
        out.setdefault(g, []).append((s, y))
    return out


def _ranked_labels(rows):
    """Labels sorted by score descending; equal scores put negatives first (pessimistic rule)."""
    return [y for s, y in sorted(rows, key=lambda t: (-t[0], t[1]))]


def ref_ranking(labels, scores, groups, name, k=None):
    """MIND formulas, one impression at a time; impressions with no positive are skipped."""
    values, skipped = [], 0
    for rows in _by_group(labels, scores, groups).values():
        ranked = _ranked_labels(rows)
        npos = sum(ranked)
        if npos == 0:
            skipped += 1
            continue
        if name == "mrr":
            values.append(sum(y / (i + 1) for i, y in enumerate(ranked)) / npos)
        elif name == "ndcg":
            cut = len(ranked) if k is None else k
            dcg = sum(y / math.log2(i + 2) for i, y in enumerate(ranked[:cut]))
            ideal = sorted(ranked, reverse=True)
            idcg = sum(y / math.log2(i + 2) for i, y in enumerate(ideal[:cut]))
            values.append(dcg / idcg)
        elif name == "hit":
            values.append(float(any(ranked[:k])))
        elif name == "recall":
            values.append(sum(ranked[:k]) / npos)
    return (sum(values) / len(values) if values else float("nan")), skipped


def ref_gauc(labels, scores, groups):
    values, skipped = [], 0
    for rows in _by_group(labels, scores, groups).values():
        ys = [y for _, y in rows]
        if len(set(ys)) < 2:
            skipped += 1
            continue
        values.append(roc_auc_score(ys, [s for s, _ in rows]))
    return float(np.mean(values)), skipped


def random_impressions(seed, n_groups=150, max_size=30, tied=False, pos_rate=0.15):
    """Shuffled (non-contiguous) impressions with arbitrary ids, some single-class ones."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_size + 1, n_groups)
    ids = rng.choice(10**6, n_groups, replace=False) - 500_000  # arbitrary, some negative
    groups = np.repeat(ids, sizes)
    labels = (rng.random(groups.size) < pos_rate).astype(np.int64)
    if tied:
        scores = rng.integers(0, 4, groups.size).astype(np.float64)  # many ties
    else:
        scores = rng.normal(size=groups.size) + labels
    perm = rng.permutation(groups.size)
    return labels[perm], scores[perm], groups[perm]


CASES = [(seed, tied) for seed in (0, 1, 2) for tied in (False, True)]


# ----------------------------------------------------------------------------- against references


@pytest.mark.parametrize("seed,tied", CASES)
def test_auc_and_gauc_match_sklearn(seed, tied):
    labels, scores, groups = random_impressions(seed, tied=tied)
    assert M.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    value, skipped = M.gauc(labels, scores, groups)
    ref_value, ref_skipped = ref_gauc(labels, scores, groups)
    assert skipped == ref_skipped > 0
    assert value == pytest.approx(ref_value, abs=1e-12)


@pytest.mark.parametrize("seed,tied", CASES)
def test_ranking_metrics_match_loop_reference(seed, tied):
    labels, scores, groups = random_impressions(seed, tied=tied)
    assert M.mrr(labels, scores, groups) == pytest.approx(
        ref_ranking(labels, scores, groups, "mrr")[0], abs=1e-9
    )
    for k in (1, 3, 5, 10, 50):  # 50 > every impression's size
        for name, fn in (("ndcg", M.ndcg), ("hit", M.hit), ("recall", M.recall)):
            ref = ref_ranking(labels, scores, groups, name, k)[0]
            assert fn(labels, scores, groups, k) == pytest.approx(ref, abs=1e-9), (name, k)
    full = ref_ranking(labels, scores, groups, "ndcg", None)[0]
    assert M.ndcg(labels, scores, groups) == pytest.approx(full, abs=1e-9)
    assert M.ndcg(labels, scores, groups, 50) == pytest.approx(full, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_compute_matches_single_functions_and_counts_skips(seed):
    labels, scores, groups = random_impressions(seed, tied=True)
    names = ["auc", "gauc", "mrr", "ndcg@5", "NDCG@10 ", "hit@10", "recall@5", "ndcg", "logloss"]
    out = M.compute(labels, scores, groups, names)
    assert out["auc"] == M.auc(labels, scores)
    assert (out["gauc"], out["gauc_skipped"]) == M.gauc(labels, scores, groups)
    assert out["mrr"] == M.mrr(labels, scores, groups)
    assert out["ndcg@5"] == M.ndcg(labels, scores, groups, 5)
    assert out["ndcg@10"] == M.ndcg(labels, scores, groups, 10)
    assert out["ndcg"] == M.ndcg(labels, scores, groups)
    assert out["hit@10"] == M.hit(labels, scores, groups, 10)
    assert out["recall@5"] == M.recall(labels, scores, groups, 5)
    assert out["ranking_skipped"] == ref_ranking(labels, scores, groups, "mrr")[1] > 0
    assert isinstance(out["gauc_skipped"], int) and isinstance(out["ranking_skipped"], int)
    assert all(isinstance(v, float) for key, v in out.items() if not key.endswith("_skipped"))
    probs = 1.0 / (1.0 + np.exp(-scores))
    assert out["logloss"] == pytest.approx(log_loss(labels, probs), abs=1e-12)


def test_default_metrics():
    labels, scores, groups = random_impressions(3)
    out = M.compute(labels, scores, groups)
    assert set(out) == {"auc", "gauc", "gauc_skipped", "mrr", "ndcg@5", "ndcg@10", "hit@10",
                        "ranking_skipped"}


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 500)
    probs = rng.random(500)
    probs[:3] = [0.0, 1.0, 0.5]  # clipped like sklearn
    assert M.logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-12)


def test_logloss_from_extreme_logits_is_finite():
    out = M.compute([1, 0], [-800.0, 800.0], None, ["logloss"])
    assert out["logloss"] == pytest.approx(800.0)


def test_row_order_and_group_ids_do_not_matter():
    labels, scores, groups = random_impressions(5, tied=True)
    names = ["gauc", "mrr", "ndcg@5", "hit@3", "recall@3"]
    base = M.compute(labels, scores, groups, names)
    perm = np.random.default_rng(6).permutation(labels.size)
    _, codes = np.unique(groups, return_inverse=True)
    for g in (groups[perm], (codes * 10**15)[perm], np.array([f"imp-{c}" for c in codes])[perm]):
        assert M.compute(labels[perm], scores[perm], g, names) == pytest.approx(base, abs=1e-12)


def test_single_group_gauc_equals_auc():
    rng = np.random.default_rng(7)
    labels = np.array([0, 1] * 20)
    scores = rng.integers(0, 5, 40).astype(float)
    value, skipped = M.gauc(labels, scores, np.zeros(40, dtype=int))
    assert skipped == 0
    assert value == pytest.approx(M.auc(labels, scores), abs=1e-12)


# ----------------------------------------------------------------------------- hand-computed


HAND_LABELS = np.array([0, 1, 1, 1, 0, 0, 0, 1, 1])
HAND_SCORES = np.array([0.9, 0.8, 0.1, 0.5, 0.5, 0.3, 0.2, 0.7, 0.7])
HAND_GROUPS = np.array([7, 7, 7, 3, 3, 9, 9, 4, 4])
# group 7: ranking 0.9(neg) 0.8(pos) 0.1(pos): positives at ranks 2 and 3; AUC 0
# group 3: tie 0.5/0.5, negative ranked first: positive at rank 2; AUC 0.5
# group 9: no positive -> skipped everywhere
# group 4: only positives, tied: ranks 1 and 2; skipped by GAUC


def test_hand_computed_small_example():
    args = (HAND_LABELS, HAND_SCORES, HAND_GROUPS)
    assert M.mrr(*args) == pytest.approx(((1 / 2 + 1 / 3) / 2 + 1 / 2 + (1 + 1 / 2) / 2) / 3)
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    assert M.ndcg(*args, 2) == pytest.approx((d2 / (1 + d2) + d2 / 1 + 1.0) / 3)
    assert M.ndcg(*args, 1) == pytest.approx((0 + 0 + 1) / 3)
    assert M.ndcg(*args) == pytest.approx(((d2 + d3) / (1 + d2) + d2 + 1.0) / 3)
    assert M.hit(*args, 1) == pytest.approx(1 / 3)
    assert M.hit(*args, 2) == pytest.approx(1.0)
    assert M.recall(*args, 2) == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert M.gauc(*args) == (pytest.approx((0.0 + 0.5) / 2), 2)
    out = M.compute(*args, ["mrr", "gauc"])
    assert out["ranking_skipped"] == 1 and out["gauc_skipped"] == 2
    # global: 5 positives x 4 negatives = 20 pairs; check with sklearn's count of the same pairs
    assert M.auc(HAND_LABELS, HAND_SCORES) == pytest.approx(roc_auc_score(HAND_LABELS, HAND_SCORES))


def test_constant_scores_get_the_worst_ranking():
    labels = np.array([1, 0, 0, 0, 0, 1, 0, 0])
    groups = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    scores = np.zeros(8)
    assert M.mrr(labels, scores, groups) == pytest.approx(1 / 4)
    assert M.hit(labels, scores, groups, 3) == 0.0
    assert M.gauc(labels, scores, groups) == (0.5, 0)
    assert M.auc(labels, scores) == 0.5


def test_undefined_values_are_nan():
    assert math.isnan(M.auc([1, 1], [0.1, 0.2]))
    value, skipped = M.gauc([0, 0, 1], [0.1, 0.2, 0.3], [1, 1, 2])
    assert math.isnan(value) and skipped == 2
    assert math.isnan(M.mrr([0, 0], [0.1, 0.2], [1, 2]))


# ----------------------------------------------------------------------------- names and errors


def test_names_and_direction():
    assert set(M.METRICS) == {"auc", "gauc", "mrr", "ndcg", "hit", "recall", "logloss"}
    assert M.parse_name("nDCG@10") == ("ndcg", 10)
    assert M.parse_name("mrr") == ("mrr", None)
    assert M.higher_is_better("ndcg@5") and M.higher_is_better("gauc")
    assert not M.higher_is_better("logloss")


@pytest.mark.parametrize(
    "name,fragment",
    [("precision@5", "unknown metric"), ("hit", "needs a cut-off"), ("ndcg@0", "bad cut-off"),
     ("ndcg@x", "bad cut-off"), ("auc@5", "takes no cut-off"), (5, "not a string")],
)
def test_bad_metric_names(name, fragment):
    with pytest.raises(LegoError, match=fragment) as err:
        M.compute([0, 1], [0.1, 0.2], [1, 1], [name])
    assert "auc, gauc, mrr" in str(err.value) or "@" in str(err.value)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(LegoError) as err:
        M.higher_is_better("map")
    for name in M.METRICS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda: M.auc([0, 1, 1], [0.1, 0.2]), "2 rows but labels have 3"),
        (lambda: M.mrr([0, 1], [0.1, 0.2], [1]), "groups has 1 rows"),
        (lambda: M.auc([0, 2], [0.1, 0.2]), "labels must be 0 or 1"),
        (lambda: M.auc(["a", "b"], [0.1, 0.2]), "0/1 numbers"),
        (lambda: M.auc([0, 1], [0.1, float("nan")]), "NaN"),
        (lambda: M.gauc([0, 1], [0.1, 0.2], [1.0, float("nan")]), "NaN"),
        (lambda: M.auc([], []), "empty"),
        (lambda: M.auc([[0, 1]], [[0.1, 0.2]]), "1-D"),
        (lambda: M.logloss([0, 1], [0.5, 1.5]), r"\[0, 1\]"),
        (lambda: M.hit([0, 1], [0.1, 0.2], [1, 1], 0), "positive integer"),
        (lambda: M.compute([0, 1], [0.1, 0.2], None, ["mrr"]), "need groups"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, fragment):
    with pytest.raises(LegoError, match=fragment):
        call()


@pytest.mark.parametrize(
    "groups",
    [np.array([2**64 - 1, 2**64 - 1, 5, 5], dtype=np.uint64),
     np.array([-128, -128, 127, 127], dtype=np.int8),
     np.array([True, True, False, False]), np.array([-(2**63), -(2**63), 2**63 - 1, 2**63 - 1])],
)
def test_extreme_group_id_dtypes(groups):
    out = M.compute([1, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], groups, ["gauc", "mrr"])
    assert out == {"gauc": 0.5, "gauc_skipped": 0, "mrr": 0.75, "ranking_skipped": 0}

"""The names of the metrics (auc, gauc, mrr, ndcg@k, hit@k, recall@k, logloss): a vocabulary that
recipes (the validation metric), evaluation, sweeps and the app share, so it sits below all of
them; the metric code itself is `lego_core.evaluation.metrics`."""
from __future__ import annotations

from lego_core.core.errors import LegoError

METRICS: tuple[str, ...] = ("auc", "gauc", "mrr", "ndcg", "hit", "recall", "logloss")
"""Supported metric names. ``ndcg``, ``hit`` and ``recall`` take a cut-off: ``ndcg@10``."""

_AT_K = ("ndcg", "hit", "recall")
_NEEDS_K = ("hit", "recall")  # without a cut-off they are 1 for every impression: meaningless
_LOWER_IS_BETTER = ("logloss",)
DEFAULT_METRICS: tuple[str, ...] = ("auc", "gauc", "mrr", "ndcg@5", "ndcg@10", "hit@10")
"""The one list of reported metric names: what evaluation reports (`evaluate.REPORTED`), what a
recipe may validate on (`recipe.VALIDATION_METRICS`) and what the app and benches show."""


class MetricError(LegoError):
    """Metric inputs or metric names are invalid."""


def parse_name(name: str) -> tuple[str, int | None]:
    """Split ``"ndcg@10"`` into ``("ndcg", 10)``; raise MetricError for names we do not support."""
    valid = "auc, gauc, mrr, ndcg[@k], hit@k, recall@k, logloss (k a positive integer)"
    if not isinstance(name, str):
        raise MetricError(f"metric name {name!r} is not a string; use one of: {valid}")
    text = name.strip().lower()
    base, sep, k_text = text.partition("@")
    if base not in METRICS:
        raise MetricError(f"unknown metric {name!r}; use one of: {valid}")
    if not sep:
        if base in _NEEDS_K:
            raise MetricError(f"metric {name!r} needs a cut-off, e.g. '{base}@10'")
        return base, None
    if base not in _AT_K:
        raise MetricError(f"metric {name!r} takes no cut-off; write '{base}'")
    if not k_text.isdigit() or int(k_text) < 1:
        raise MetricError(f"metric {name!r} has a bad cut-off; write e.g. '{base}@10'")
    return base, int(k_text)


def higher_is_better(name: str) -> bool:
    """True when a larger value of metric ``name`` is better (early stopping and best-run picks)."""
    base, _ = parse_name(name)
    return base not in _LOWER_IS_BETTER

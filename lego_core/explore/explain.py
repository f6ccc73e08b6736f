"""Why a user got an item: each click's contribution to *that item's* score, from the model itself.

Two methods, and the result says which one it used:

- exact decomposition, where the score is linear in the click vectors: the behaviour brick sums the
  clicks with weights (`history_weights`: mean pooling, additive attention, poly's K interests) and
  the predictor is a dot product (or MINER, whose per-item mix of the interests is read from it).
  Then score = sum_i weight_i x <click_i, item> and each term is click i's contribution: they add up
  to the score.
- occlusion, for every other behaviour brick and predictor (NRMS self-attention, GRU, Transformer,
  Fastformer, DIN, DCN, DeepFM, DNN): the item's score minus its score with the click removed from
  the history (the rest kept in order), all removals scored in a few batched model passes.

A history item clicked twice counts once: its positions' terms are summed (exact) or all of them
removed together (occlusion). The history is the one the Users page's scores use
(`recommend.Scorer`); padding never shows.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from lego_core.core.errors import RunError
from lego_core.bricks.model import to_tensor

EXACT = "exact decomposition"
OCCLUSION = "occlusion"
LINEAR_PREDICTORS = ("dot", "miner")  # the score is a (mixed) dot product of user and item vectors
MAP_STATE = "explanation-on-map"  # st.session_state key: the Users page hands an explanation to Embeddings
COLUMNS = ["item_id", "rank", "history_item_id", "contribution", "score", "method", "item_text", "history_text"]
METHOD_NOTES = {
    EXACT: "Exact decomposition: this model's score is a weighted sum of the clicks' dot products with the "
           "item, so each click's contribution is its weight × ⟨click, item⟩ and all clicks' contributions "
           "add up to the item's score.",
    OCCLUSION: "Occlusion: each click's contribution is the item's score minus its score with that click "
               "removed from the history (this model does not score linearly in the clicks, so the "
               "contributions need not add up to the score).",
}
BATCH = 64  # occluded histories scored per model pass


def describe(method: str) -> str:
    """One sentence on what a method's contributions mean, for captions."""
    return METHOD_NOTES[method]


def method_of(model: Any) -> str:
    """EXACT where the model's score decomposes over the clicks, else OCCLUSION."""
    linear = model.recipe.predictor.name in LINEAR_PREDICTORS and not model.needs_history
    return EXACT if linear and hasattr(model.behavior, "history_weights") else OCCLUSION


def _interest_mix(model: Any, interests: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """[C, K] how much each interest counts in each candidate's score, as the MINER predictor mixes
    them: one-hot on the best interest (max), uniform (mean) or its candidate-aware softmax."""
    predictor = model.predictor
    scores = candidates @ interests.t()  # [C, K]
    aggregate = getattr(predictor, "aggregate", "max")
    if aggregate == "mean":
        return torch.full_like(scores, 1.0 / scores.shape[1])
    if aggregate == "attention":
        return (candidates @ predictor.key(interests).t() * predictor.scale).softmax(dim=-1)
    return torch.nn.functional.one_hot(scores.argmax(dim=1), scores.shape[1]).to(scores.dtype)


@torch.no_grad()
def decompose(model: Any, history: torch.Tensor, mask: torch.Tensor, user: torch.Tensor,
              candidates: torch.Tensor) -> torch.Tensor:
    """[C, H] weight_h x <click_h, candidate> for a model whose `method_of` is EXACT; each row sums
    to the candidate's score. history [1, H, D], mask [1, H], user [1] row, candidates [C, D]."""
    weights = model.behavior.history_weights(history, mask, user)[0].to(candidates.dtype)  # [H] or [K, H]
    dots = candidates @ history[0].to(candidates.dtype).t()  # [C, H]
    if weights.dim() == 1:
        return dots * weights
    interests = model.encode_users(history, mask, user)[0].to(candidates.dtype)  # [K, D]
    return dots * (_interest_mix(model, interests, candidates) @ weights)


def without_each(hist: np.ndarray, mask: np.ndarray, distinct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The history [1, H] (left-aligned) once whole and once without each of `distinct`'s items, the
    remaining clicks kept in order and left-aligned: ids and mask [1 + len(distinct), H]."""
    clicks = hist[0, mask[0]]
    ids = np.zeros((len(distinct) + 1, hist.shape[1]), dtype=hist.dtype)
    keep = np.zeros(ids.shape, dtype=bool)
    for r, removed in enumerate([None, *distinct]):
        rest = clicks if removed is None else clicks[clicks != removed]
        ids[r, :len(rest)], keep[r, :len(rest)] = rest, True
    return ids, keep


@torch.no_grad()
def occlude(model: Any, items: torch.Tensor, hist: np.ndarray, mask: np.ndarray, user: torch.Tensor,
            candidates: torch.Tensor, distinct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores [C] with the whole history, contributions [C, len(distinct)]: score minus the score
    without that item's clicks), batched BATCH histories a pass. items is the run's item table."""
    ids, keep = without_each(hist, mask, distinct)
    out = []
    for start in range(0, len(ids), BATCH):
        part_ids = to_tensor(ids[start:start + BATCH], items.device)
        part_mask = to_tensor(keep[start:start + BATCH], items.device)
        vectors = items[part_ids]
        users = user.expand(len(part_ids))
        encoded = model.encode_users(vectors, part_mask, users)
        batch_candidates = candidates.unsqueeze(0).expand(len(part_ids), -1, -1)
        out.append(model.score(encoded, batch_candidates.to(vectors.dtype), vectors, part_mask).float())
    scores = torch.cat(out).cpu().numpy().astype(np.float64)  # [1 + M, C]
    return scores[0], (scores[0][None, :] - scores[1:]).T


def explain(run: Any, dataset: Any, user_id: Any, items: Iterable[Any], k: int = 3) -> pd.DataFrame:
    """For each recommended item (ids, in the given order), the `k` clicks with the largest
    contribution to its score: item_id, rank (1 = largest), history_item_id, contribution (signed),
    score (the item's score), method (EXACT or OCCLUSION), item_text, history_text. `dataset` is the
    run's dataset (the model is loaded on it)."""
    from lego_core.runs import recommend
    from lego_core.explore.lookups import item_lookup

    found = recommend.scorer(run, dataset)
    model, row = found.model, found.row(user_id)
    position = {item: i for i, item in enumerate(found.item_ids)}
    wanted = [str(i) for i in items]
    missing = [i for i in wanted if i not in position]
    if missing:
        raise RunError(f"item {missing[0]!r} is not in run {run.id}'s item table")
    hist, mask = found.dataset.gather_histories(np.array([row]), found.test_ends[[row]],
                                                model.recipe.training.max_history)
    if not wanted or not mask.any():
        return pd.DataFrame(columns=COLUMNS)
    device = found.items.device
    user = torch.as_tensor([row], device=device)
    candidates = found.items[torch.as_tensor([position[i] for i in wanted], device=device)]
    valid = np.flatnonzero(mask[0])
    distinct, inverse = np.unique(hist[0, valid], return_inverse=True)
    method = method_of(model)
    if method == EXACT:
        terms = decompose(model, found.items[to_tensor(hist, device)], to_tensor(mask, device), user, candidates)
        terms = terms.float().cpu().numpy().astype(np.float64)[:, valid]  # [C, valid positions]
        contributions = np.zeros((len(wanted), len(distinct)))
        for c in range(len(wanted)):
            np.add.at(contributions[c], inverse, terms[c])
        scores = terms.sum(axis=1)
    else:
        scores, contributions = occlude(model, found.items, hist, mask, user, candidates, distinct)
    texts = item_lookup(dataset)["text"]
    frames = []
    for c, item in enumerate(wanted):
        top = np.argsort(-contributions[c], kind="stable")[:max(int(k), 0)]
        frames.append(pd.DataFrame({"item_id": item, "rank": np.arange(1, len(top) + 1),
                                    "history_item_id": [found.item_ids[i] for i in distinct[top]],
                                    "contribution": contributions[c, top], "score": scores[c], "method": method}))
    out = pd.concat(frames, ignore_index=True)
    out["item_text"] = out["item_id"].map(texts).fillna(out["item_id"])
    out["history_text"] = out["history_item_id"].map(texts).fillna(out["history_item_id"])
    return out[COLUMNS]


def shorten(text: str, chars: int) -> str:
    text = str(text)
    return text if len(text) <= chars else text[:chars - 1] + "…"


def summary(explanation: pd.DataFrame, chars: int = 60) -> pd.DataFrame:
    """One row per recommended item: item_id, item_text, score and `because` ("title (+0.42) · ..."),
    the compact list the Users page shows (contributions signed)."""
    if explanation.empty:
        return pd.DataFrame(columns=["item_id", "item_text", "score", "because"])

    rows = []
    for item, part in explanation.groupby("item_id", sort=False):
        because = " · ".join(f"{shorten(t, chars)} ({w:+.2f})"
                             for t, w in zip(part["history_text"], part["contribution"]))
        rows.append({"item_id": item, "item_text": part["item_text"].iloc[0], "score": part["score"].iloc[0],
                     "because": because})
    return pd.DataFrame(rows)

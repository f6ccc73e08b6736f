"""Why a user got an item: the history items that contributed most, read from the model itself.

Where the model weighs the clicks, those weights are the explanation: DIN's target attention (it
depends on the recommended item), or the behaviour brick's attention (`history_weights`: additive,
NRMS, poly; a poly brick's K interests are mixed the way the MINER predictor mixes their scores for
that item). Bricks without weights (pooling, GRU, Transformer, Fastformer) get the clicks closest
to the item in the model's item space (cosine), labelled as such: a similarity, not an attention.
The history is the one the Users page's scores use (`recommend.Scorer`); padding never shows.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from lego_core.core.errors import RunError
from lego_core.bricks.model import to_tensor

NEAREST = "nearest in item space"
MAP_STATE = "explanation-on-map"  # st.session_state key: the Users page hands an explanation to Embeddings
COLUMNS = ["item_id", "rank", "history_item_id", "weight", "method", "item_text", "history_text"]
METHOD_NOTES = {
    NEAREST: "cosine similarity of each click to the item in the model's item space (this behaviour "
             "brick does not weigh clicks, so these are the closest clicks, not attention)",
    "din target attention": "DIN's attention of the item over the clicks (unnormalised: the paper keeps "
                            "the intensity of interest)",
}


def describe(method: str) -> str:
    """One sentence on what a method's weights mean, for captions."""
    if method in METHOD_NOTES:
        return METHOD_NOTES[method]
    return f"{method}: the behaviour brick's softmax weights over the clicks (they sum to 1 over the history)"


def _interest_mix(model: Any, interests: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """[C, K] how much each interest counts in each candidate's score: one-hot on the best interest
    (max), uniform (mean) or the predictor's candidate-aware softmax (attention)."""
    predictor = model.predictor
    scores = candidates @ interests.t()  # [C, K]
    aggregate = getattr(predictor, "aggregate", "max")
    if aggregate == "mean":
        return torch.full_like(scores, 1.0 / scores.shape[1])
    if aggregate == "attention" and getattr(predictor, "key", None) is not None:
        return (candidates @ predictor.key(interests).t() * predictor.scale).softmax(dim=-1)
    return torch.nn.functional.one_hot(scores.argmax(dim=1), scores.shape[1]).to(scores.dtype)


@torch.no_grad()
def history_weights(model: Any, history: torch.Tensor, mask: torch.Tensor, user: torch.Tensor,
                    candidates: torch.Tensor) -> tuple[np.ndarray, str]:
    """([C, H] weight of each history position for each candidate, method); history [1, H, D],
    mask [1, H], user [1] row, candidates [C, D]."""
    predictor, behavior = model.predictor, model.behavior
    brick = model.recipe.behavior.name
    if model.needs_history and hasattr(predictor, "attention"):  # DIN: candidate-dependent weights
        weights = predictor.attention(candidates.unsqueeze(0), history, mask)[0]
        return weights.float().cpu().numpy(), f"{model.recipe.predictor.name} target attention"
    if hasattr(behavior, "history_weights"):
        weights = behavior.history_weights(history, mask, user)[0]  # [H] or [K, H]
        if weights.dim() == 1:
            return weights.expand(len(candidates), -1).float().cpu().numpy(), f"{brick} attention"
        interests = model.encode_users(history, mask, user)[0]  # [K, D]
        mix = _interest_mix(model, interests.to(candidates.dtype), candidates)
        return (mix @ weights.to(mix.dtype)).float().cpu().numpy(), f"{brick} attention (interests mixed per item)"
    unit = torch.nn.functional.normalize(history[0].float(), dim=-1)
    cosine = torch.nn.functional.normalize(candidates.float(), dim=-1) @ unit.t()
    return cosine.masked_fill(~mask[0], 0.0).cpu().numpy(), NEAREST


def explain(run: Any, dataset: Any, user_id: Any, items: Iterable[Any], k: int = 3) -> pd.DataFrame:
    """For each recommended item (ids, in the given order), the `k` history items that contributed
    most: item_id, rank (1 = most), history_item_id, weight, method, item_text, history_text.
    `dataset` is the run's dataset (the model is loaded on it). A history item clicked twice counts
    once, with its positions' weights summed."""
    from lego_core.runs import recommend
    from lego_core.explore.frames import item_frame

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
    hist_t, mask_t = to_tensor(hist, device), to_tensor(mask, device)
    candidates = found.items[torch.as_tensor([position[i] for i in wanted], device=device)]
    weights, method = history_weights(model, found.items[hist_t], mask_t, torch.as_tensor([row], device=device),
                                      candidates)
    valid = np.flatnonzero(mask[0])
    clicked = hist[0, valid]
    distinct, inverse = np.unique(clicked, return_inverse=True)
    texts = item_frame(dataset).drop_duplicates("item_id").set_index("item_id")["text"]
    frames = []
    for c, item in enumerate(wanted):
        per_item = np.zeros(len(distinct))
        if method == NEAREST:  # a similarity: the same item twice is as close as once
            per_item[inverse] = weights[c, valid]
        else:
            np.add.at(per_item, inverse, weights[c, valid])
        top = np.argsort(-per_item, kind="stable")[:max(int(k), 0)]
        history_ids = [found.item_ids[i] for i in distinct[top]]
        frames.append(pd.DataFrame({"item_id": item, "rank": np.arange(1, len(top) + 1),
                                    "history_item_id": history_ids, "weight": per_item[top], "method": method}))
    out = pd.concat(frames, ignore_index=True)
    out["item_text"] = out["item_id"].map(texts).fillna(out["item_id"])
    out["history_text"] = out["history_item_id"].map(texts).fillna(out["history_item_id"])
    return out[COLUMNS]


def shorten(text: str, chars: int) -> str:
    text = str(text)
    return text if len(text) <= chars else text[:chars - 1] + "…"


def summary(explanation: pd.DataFrame, chars: int = 60) -> pd.DataFrame:
    """One row per recommended item: item_id, item_text and `because` ("title (0.42) · ..."), the
    compact list the Users page shows."""
    if explanation.empty:
        return pd.DataFrame(columns=["item_id", "item_text", "because"])

    rows = []
    for item, part in explanation.groupby("item_id", sort=False):
        because = " · ".join(f"{shorten(t, chars)} ({w:.2f})" for t, w in zip(part["history_text"], part["weight"]))
        rows.append({"item_id": item, "item_text": part["item_text"].iloc[0], "because": because})
    return pd.DataFrame(rows)

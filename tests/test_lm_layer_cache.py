"""The layer cache is exact: states served from the cache and run through the layers above the
boundary equal the model's own full forward (within float16 storage tolerance), for both default
models, in `top` and `frozen` modes; the cache is reused and never left half written."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lego_core.lm import layer_cache, models
from lego_core.lm.stack import LayerStack
from lego_core.lm.states import tokenize
from lego_core.bricks.base import BuildContext
from lego_core.bricks.content.lm_decoder import LMDecoder
from lego_core.bricks.content.lm_encoder import LMEncoder

TEXTS = ["Title: Toy Story (1995). Genres: Animation Children's Comedy",
         "Title: Heat. Genres: Action",
         "",
         "Title: A very long and winding title about the many adventures of someone (2001). Genres: Drama Romance War",
         "Title: GoldenEye (1995). Genres: Action Adventure Thriller"]
CASES = [(LMEncoder, "minilm", "load_encoder"), (LMDecoder, "smollm2", "load_decoder")]


def _ctx(texts=TEXTS) -> BuildContext:
    return BuildContext(dim=8, num_items=len(texts), num_users=2, item_texts=list(texts))


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Each default model's own forward output (last_hidden_state) for the item texts."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("lm-cache")))
        for cls, name, loader in CASES:
            net, tok = getattr(models, loader)(name)
            ids, mask = tokenize(tok, TEXTS, 32)
            with torch.no_grad():
                base = net.base_model
                hidden = base(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long())
            out[name] = (hidden.last_hidden_state, torch.from_numpy(mask))
    return out


def _assert_close(got: torch.Tensor, want: torch.Tensor, mask: torch.Tensor) -> None:
    """Equal on real tokens up to float16 rounding of the stored states (relative to the scale)."""
    diff = (got - want)[mask].abs().max().item()
    scale = want[mask].abs().max().item()
    assert diff <= 2e-3 * scale, (diff, scale)


@pytest.mark.parametrize("mode", ["top", "frozen"])
@pytest.mark.parametrize("cls,name,loader", CASES, ids=["minilm", "smollm2"])
def test_cached_boundary_equals_full_forward(cls, name, loader, mode, references):
    op = cls(_ctx(), model=name, tuning=mode, top_layers=2, max_length=32, layer_cache=True).eval()
    layers = op.stack.num_layers
    assert op.cache is not None and op.plan.boundary == (layers - 2 if mode == "top" else layers)
    assert op.stack.embed is None and len(op.stack.layers) == layers - op.plan.boundary  # lower layers dropped
    want, mask = references[name]
    ids = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        got, got_mask = op.lm_states(ids)
    length = got.shape[1]
    assert torch.equal(got_mask, mask[ids, :length])
    _assert_close(got, want[ids, :length], got_mask)
    assert not want[ids, length:].numel() or not mask[ids, length:].any()  # only padding was trimmed


def test_uncached_operator_matches_full_forward_exactly(references):
    op = LMEncoder(_ctx(), model="minilm", tuning="top", top_layers=2, max_length=32, layer_cache=False).eval()
    assert op.cache is None and op.stack.embed is not None
    want, mask = references["minilm"]
    with torch.no_grad():
        got, got_mask = op.lm_states(torch.arange(len(TEXTS)))
    assert torch.allclose(got[got_mask], want[: len(TEXTS), : got.shape[1]][got_mask], atol=1e-5)


def test_cache_files_float16_memmap_reused_and_keyed(monkeypatch):
    first = LMEncoder(_ctx(), model="minilm", tuning="top", top_layers=1, max_length=32)
    folder = first.cache.folder
    assert isinstance(first.cache.hidden, np.memmap) and first.cache.hidden.dtype == np.float16
    assert first.cache.hidden.shape[:2] == first.cache.mask.shape and first.cache.mask.dtype == np.bool_
    assert first.cache.hidden.shape[2] == 384

    def boom(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(layer_cache, "_fill", boom)
    again = LMEncoder(_ctx(), model="minilm", tuning="lora", top_layers=1, max_length=32)
    assert again.cache.folder == folder  # same model, texts, length and boundary: same cache
    with pytest.raises(AssertionError, match="reused"):  # another text or boundary: another key
        LMEncoder(_ctx(TEXTS[:-1] + ["something else"]), model="minilm", tuning="top", top_layers=1, max_length=32)
    with pytest.raises(AssertionError, match="reused"):
        LMEncoder(_ctx(), model="minilm", tuning="top", top_layers=2, max_length=32)


def test_crash_while_filling_leaves_no_cache(monkeypatch):
    net, tok = models.load_encoder("minilm")
    stack = LayerStack(net)
    ids, mask = tokenize(tok, TEXTS, 32)
    real_run = stack.run
    calls = {"n": 0}

    def failing_run(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    monkeypatch.setattr(stack, "run", failing_run)
    key = layer_cache.cache_key("test", tok, ids, mask, 3)
    with pytest.raises(KeyboardInterrupt):
        layer_cache.build_or_load(stack, ids, mask, 3, key, batch_size=2)
    root = layer_cache.cache_dir("lm_layers")
    assert list(root.iterdir()) == []  # neither the key folder nor a temp folder remains
    monkeypatch.setattr(stack, "run", real_run)
    cache = layer_cache.build_or_load(stack, ids, mask, 3, key, batch_size=2)
    assert not stack.training  # filling restores the stack's mode
    with torch.no_grad():
        want = stack.run(stack.embed_tokens(torch.from_numpy(ids)), torch.from_numpy(mask), 0, 3)
    m = torch.from_numpy(mask)
    _assert_close(torch.from_numpy(np.asarray(cache.hidden, dtype=np.float32)), want, m)

"""The LM content operators: catalog entries, output shape, which parameters train in each tuning
mode, gradients reaching the projection and the LM, and training actually changing the output."""
from __future__ import annotations

import pytest
import torch

from lego_core.core.errors import RecipeError
from lego_core.bricks import get as get_brick
from lego_core.bricks.base import LM_TOKENS, BuildContext

TEXTS = [f"Title: movie number {i}. Genres: {g}" for i, g in
         enumerate(["Action", "Comedy Drama", "Horror", "Animation Children's", "Sci-Fi", "War Western",
                    "Romance", "Documentary"])]


def _ctx(dim: int = 16) -> BuildContext:
    return BuildContext(dim=dim, num_items=len(TEXTS), num_users=3, item_texts=TEXTS, device="cpu")


def _build(name: str, **params):
    spec = get_brick(name, "content")
    return spec.cls(_ctx(), **spec.validate(params))


def _steps(op, n: int = 3, lr: float = 1e-2) -> None:
    """A few optimizer steps on a dot-product loss that pulls item 0 towards item 1."""
    params = [p for p in op.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    op.train()
    for _ in range(n):
        vec = op(None, None, torch.tensor([0, 1, 2, 3]))
        loss = -(vec[0] * vec[1]).sum() + (vec[0] * vec[2]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_catalog_entries_declare_lm_tokens_and_defaults():
    enc, dec = get_brick("lm_encoder", "content"), get_brick("lm_decoder", "content")
    assert enc.needs == (LM_TOKENS,) and dec.needs == (LM_TOKENS,)
    assert enc.defaults()["model"] == "minilm" and dec.defaults()["model"] == "smollm2"
    assert enc.defaults()["pooling"] == "mean" and dec.defaults()["pooling"] == "last"
    names = {p.name for p in enc.params}
    assert {"model", "max_length", "pooling", "tuning", "top_layers", "lora_rank", "lora_alpha", "lora_dropout",
            "lora_targets", "layer_cache"} <= names
    with pytest.raises(RecipeError, match="tuning"):
        enc.validate({"tuning": "half"})


@pytest.mark.parametrize("pooling", ["mean", "last", "attention"])
def test_encoder_gives_n_by_d_with_gradients_to_projection_and_lm(pooling):
    op = _build("lm_encoder", tuning="top", top_layers=1, pooling=pooling)
    out = op(None, None, torch.tensor([5, 1, 1, 7]))
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert op.proj.weight.grad is not None and op.proj.weight.grad.abs().sum() > 0
    pretrained = op.pretrained_parameters()
    assert pretrained and all(p.grad is not None and p.grad.abs().sum() > 0 for p in pretrained)
    ids = {id(p) for p in pretrained}
    assert id(op.proj.weight) not in ids  # the projection gets the ordinary learning rate


def test_top_mode_trains_only_the_top_layers_and_drops_the_rest():
    op = _build("lm_encoder", tuning="top", top_layers=2, layer_cache=False)
    trainable = {n.split(".")[1] for n, p in op.stack.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5"}  # layers 4 and 5 of MiniLM's 6
    frozen_before = {n: p.detach().clone() for n, p in op.stack.named_parameters() if not p.requires_grad}
    before = op.eval()(None, None, torch.arange(4)).detach()
    _steps(op)
    after = op.eval()(None, None, torch.arange(4)).detach()
    assert not torch.allclose(before, after)
    assert all(torch.equal(p, frozen_before[n]) for n, p in op.stack.named_parameters() if not p.requires_grad)
    cached = _build("lm_encoder", tuning="top", top_layers=2)
    assert cached.stack.first == 4 and len(cached.stack.layers) == 2
    assert sum(p.numel() for p in cached.parameters()) < sum(p.numel() for p in op.parameters()) / 3


def test_frozen_mode_trains_only_pooling_and_projection():
    op = _build("lm_encoder", tuning="frozen", pooling="attention")
    assert op.pretrained_parameters() == []
    trainable = {n.split(".")[0] for n, p in op.named_parameters() if p.requires_grad}
    assert trainable == {"pool", "proj"}
    before = op.eval()(None, None, torch.arange(4)).detach()
    _steps(op)
    assert not torch.allclose(before, op.eval()(None, None, torch.arange(4)).detach())


def test_full_mode_trains_everything_without_a_cache():
    op = _build("lm_encoder", tuning="full")
    assert op.cache is None and op.stack.embed is not None
    assert all(p.requires_grad for p in op.stack.parameters())


def test_bad_top_layers_and_lora_targets_are_recipe_errors():
    with pytest.raises(RecipeError, match="top_layers must be in"):
        _build("lm_encoder", tuning="top", top_layers=7)
    with pytest.raises(RecipeError, match="lora_targets"):
        _build("lm_encoder", tuning="lora", lora_targets="q_proj")


def test_missing_item_texts_is_a_recipe_error():
    spec = get_brick("lm_encoder", "content")
    with pytest.raises(RecipeError, match="item_texts"):
        spec.cls(BuildContext(dim=8, num_items=3, num_users=1), **spec.defaults())


@pytest.mark.parametrize("name,top", [("lm_encoder", 0), ("lm_decoder", 2)])
def test_lora_trains_only_adapters_and_changes_the_output(name, top):
    op = _build(name, tuning="lora", top_layers=top, lora_rank=4, lora_dropout=0.0)
    named = [(n, p) for n, p in op.stack.named_parameters() if p.requires_grad]
    assert named and all("lora_" in n for n, _ in named)
    assert {id(p) for _, p in named} == {id(p) for p in op.pretrained_parameters()}
    if top:  # adapters only on the top layers, the rest served from the layer cache
        layers = op.stack.num_layers
        assert op.cache is not None and op.plan.lora_layers == tuple(range(layers - top, layers))
        assert op.stack.first == layers - top
    else:
        assert op.cache is None and len({n.split(".")[1] for n, _ in named}) == op.stack.num_layers
    base = {n: p.detach().clone() for n, p in op.stack.named_parameters() if "base_layer" in n}
    before = op.eval()(None, None, torch.arange(4)).detach()
    _steps(op, n=3, lr=5e-3)
    after = op.eval()(None, None, torch.arange(4)).detach()
    assert (after - before).abs().max() > 1e-4
    assert all(torch.equal(p, base[n]) for n, p in op.stack.named_parameters() if "base_layer" in n)


@pytest.mark.skipif(not __import__("lego_core.core.devices", fromlist=["cpu_bf16"]).cpu_bf16(),
                    reason="this CPU has no native bfloat16")
def test_amp_on_a_bf16_cpu_runs_the_lm_in_bfloat16_close_to_float32():
    spec = get_brick("lm_encoder", "content")
    params = spec.validate({"tuning": "top", "top_layers": 1})
    torch.manual_seed(0)
    exact = spec.cls(_ctx(), **params)
    ctx = _ctx()
    ctx.amp = True
    fast = spec.cls(ctx, **params)
    fast.load_state_dict(exact.state_dict())
    assert fast.cpu_autocast and not exact.cpu_autocast
    exact.eval(), fast.eval()
    ids = torch.arange(len(TEXTS))
    with torch.no_grad():
        a, b = exact(None, None, ids), fast(None, None, ids)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99


def test_length_groups_give_the_same_vectors_as_one_padded_batch():
    op = _build("lm_encoder", tuning="top", top_layers=1)
    op.eval()
    ids = torch.arange(len(TEXTS)).repeat(10)  # 80 texts: more than one group
    groups = op.length_groups(ids, smallest=16)
    assert len(groups) > 1 and sorted(torch.cat(groups).tolist()) == list(range(len(ids)))
    lengths = [op.text_lengths[ids[g]] for g in groups]
    assert all(a.max() <= b.min() for a, b in zip(lengths, lengths[1:]))  # shortest texts first
    with torch.no_grad():
        torch.testing.assert_close(op(None, None, ids), op.head(op._pooled(ids)), rtol=1e-5, atol=1e-5)

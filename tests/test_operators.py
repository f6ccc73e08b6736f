"""Bricks one by one: catalog metadata, shapes, masks and padding, gradients, pretrained word
vectors, predictor semantics, parameter validation, and a hand-built content -> behaviour ->
predictor chain that overfits a toy task."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lego_core.core.errors import RecipeError
from lego_core.bricks import catalog, get
from lego_core.bricks.base import (ITEM_ID, USER_INTERESTS, USER_VECTOR, WORD_TOKENS, BehaviorOperator,
                                      BuildContext, ContentOperator, Predictor)

D, VOCAB, ITEMS, USERS = 16, 40, 30, 10
CONTENT = ["idembed", "pooling", "cnn", "attention", "fastformer", "transformer"]
WORD_CONTENT = [n for n in CONTENT if n != "idembed"]
BEHAVIOR = ["pooling", "additive", "attention", "gru", "fastformer", "transformer", "poly"]
PREDICTORS = ["dot", "dnn", "dcn", "deepfm", "din", "miner"]
BASES = {"content": ContentOperator, "behavior": BehaviorOperator, "predictor": Predictor}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread avoids OpenMP spin-waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_ctx(word_vectors=None, dim=D) -> BuildContext:
    return BuildContext(dim=dim, num_items=ITEMS, num_users=USERS, vocab_size=VOCAB, word_vectors=word_vectors,
                        max_history=12)


def build(kind: str, name: str, ctx: BuildContext | None = None, **params):
    spec = get(name, kind)
    torch.manual_seed(0)
    return spec.cls(ctx or make_ctx(), **spec.validate(params))


def word_batch(n=6, length=7, seed=0):
    """Left-aligned tokens with varied lengths; row 1 is empty (an item without text)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    lengths[1] = 0
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = torch.randint(1, VOCAB, (n, length), generator=g) * mask
    return tokens, mask, torch.arange(n)


def history_batch(b=4, h=6, seed=0):
    """Random item vectors [B, H, D], left-aligned masks; row 2 has no history."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randn(b, h, D, generator=g)
    lengths = torch.randint(1, h + 1, (b,), generator=g)
    lengths[2] = 0
    mask = torch.arange(h).unsqueeze(0) < lengths.unsqueeze(1)
    return items, mask, torch.arange(b) % USERS


def encode(brick, tokens, mask, ids):
    if brick.input_kind == ITEM_ID:
        return brick(None, None, ids)
    return brick(tokens, mask, ids)


def assert_gradients(module: torch.nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), "a trainable parameter got no gradient"
    assert sum(float(g.abs().sum()) for g in grads) > 0


# ---- catalog ------------------------------------------------------------------------------------
def test_catalog_lists_every_brick_with_metadata():
    expected = {"content": CONTENT, "behavior": BEHAVIOR, "predictor": PREDICTORS}
    for kind, names in expected.items():
        specs = catalog(kind)
        assert set(names) <= set(specs), kind
        for name in names:
            spec = specs[name]
            assert spec.kind == kind and spec.name == name
            assert issubclass(spec.cls, BASES[kind]) and spec.cls.__doc__
            assert spec.description and "\n" not in spec.description
            assert re.search(r"\b(19|20)\d\d\b", spec.paper), spec.paper
            assert spec.validate({}) == spec.defaults()
            for p in spec.params:
                assert p.type in ("int", "float", "bool", "str", "choice") and p.help
                if p.type in ("int", "float"):
                    assert p.low is not None and p.high is not None and p.low <= p.default <= p.high
                if p.type == "choice":
                    assert p.default in p.choices
            assert spec.to_dict()["params"] == [p.to_dict() for p in spec.params]
    # content and behaviour may share a name: both stay registered
    assert get("pooling", "content").cls is not get("pooling", "behavior").cls
    assert {"content/pooling", "behavior/pooling"} <= set(catalog())
    assert get("poly", "behavior").provides == (USER_INTERESTS,)
    assert get("miner", "predictor").needs == (USER_INTERESTS,)
    assert get("din", "predictor").needs == (USER_VECTOR, "history")
    assert get("dnn", "predictor").losses == ("bce", "softmax")
    assert get("dot", "predictor").losses == ("softmax", "bce")
    assert get("idembed", "content").needs == (ITEM_ID,) and get("cnn", "content").needs == (WORD_TOKENS,)


def test_parameter_validation_errors():
    with pytest.raises(RecipeError, match=r"attention\.heads"):
        get("attention", "content").validate({"heads": 0})
    with pytest.raises(RecipeError, match=r"cnn\.dropout"):
        get("cnn", "content").validate({"dropout": 1.5})
    with pytest.raises(RecipeError, match=r"miner\.aggregate"):
        get("miner", "predictor").validate({"aggregate": "median"})
    with pytest.raises(RecipeError, match="no parameter 'filter'"):
        get("cnn", "content").validate({"filter": 3})
    with pytest.raises(RecipeError, match="heads=3 must divide"):
        build("behavior", "attention", heads=3)
    with pytest.raises(RecipeError, match=r"dnn\.hidden"):
        build("predictor", "dnn", hidden="64,x")
    assert get("gru", "behavior").validate({"long_term": "false"})["long_term"] is False


# ---- content ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONTENT)
def test_content_shapes_and_gradients(name):
    brick = build("content", name).train()
    out = encode(brick, *word_batch())
    assert out.shape == (6, D) and torch.isfinite(out).all()
    assert_gradients(brick, out.pow(2).sum())
    if name != "idembed":  # padding row 0 never learns
        assert float(brick.words.embedding.weight.grad[0].abs().sum()) == 0.0


@pytest.mark.parametrize("name", WORD_CONTENT)
def test_content_padding_invariance(name):
    brick = build("content", name).eval()
    tokens, mask, ids = word_batch()
    padded_tokens = F.pad(tokens, (0, 5))
    padded_mask = F.pad(mask, (0, 5))
    with torch.no_grad():
        short, long = brick(tokens, mask, ids), brick(padded_tokens, padded_mask, ids)
        # an item's vector does not depend on the other items in its batch
        alone = brick(tokens[3:4], mask[3:4], ids[3:4])
    assert torch.isfinite(short).all()
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone[0], short[3], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", WORD_CONTENT)
def test_content_handles_text_less_batches(name):
    brick = build("content", name).eval()
    tokens, mask, ids = word_batch()
    with torch.no_grad():
        out = brick(tokens * 0, mask & False, ids)
        none = brick(tokens[:0], mask[:0], ids[:0])
    assert out.shape == (6, D) and torch.isfinite(out).all()
    assert none.shape == (0, D)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
def test_cnn_stream_equals_a_zero_padded_convolution_per_item(window):
    brick = build("content", "cnn", window=window, filters=24).eval()
    tokens, mask, ids = word_batch(n=9, length=8, seed=window)
    with torch.no_grad():
        words = brick.words(tokens) * mask.unsqueeze(-1)
        features = brick.conv(F.pad(words.transpose(1, 2), brick.pad)).relu().transpose(1, 2)
        reference = brick.proj(brick.attention(features, mask))
        torch.testing.assert_close(brick(tokens, mask, ids), reference, atol=1e-5, rtol=1e-4)


def test_packed_sequence_layers_match_their_padded_form():
    from lego_core.bricks.layers import SelfAttention, TokenIndex, TransformerPooler

    torch.manual_seed(0)
    tokens, mask, _ = word_batch(n=12, length=9)
    x = torch.randn(12, 9, D)
    index = TokenIndex(mask)
    assert index.pack(x).shape == (int(mask.sum()), D)
    torch.testing.assert_close(index.unpack(index.pack(x)), x * mask.unsqueeze(-1))
    # rows grouped by length rounded up to a power of two (capped at L = 9)
    expected = {min(2 ** int(np.ceil(np.log2(max(n, 1)))), 9) for n in mask.sum(1).tolist()}
    assert sorted(size for _, size in index.buckets()) == sorted(expected)
    attention = SelfAttention(D, 4).eval()
    with torch.no_grad():
        torch.testing.assert_close(attention.packed(index.pack(x), index), index.pack(attention(x, mask)),
                                   atol=1e-5, rtol=1e-4)
    for pooling in ("mean", "additive"):
        pooler = TransformerPooler(D, 1, 4, 32, 0.0, 16, pooling, 8).eval()
        with torch.no_grad():
            packed, padded = pooler.packed(index.pack(x), index), pooler(x, mask)
        torch.testing.assert_close(packed[mask.any(1)], padded[mask.any(1)], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", WORD_CONTENT)
def test_content_starts_from_word_vectors(name):
    vectors = np.random.default_rng(0).normal(size=(VOCAB, 12)).astype(np.float32)
    brick = build("content", name, make_ctx(word_vectors=vectors), embed_dim=50)
    weight = brick.words.embedding.weight
    assert weight.shape == (VOCAB, 12)  # the vectors' width wins over embed_dim
    np.testing.assert_allclose(weight[1:].detach().numpy(), vectors[1:])
    assert float(weight[0].detach().abs().sum()) == 0.0
    assert brick.pretrained_parameters() == [weight] and weight.requires_grad
    out = brick(*word_batch())
    assert out.shape == (6, D)

    frozen = build("content", name, make_ctx(word_vectors=vectors), freeze_embeddings=True)
    assert frozen.pretrained_parameters() == [] and not frozen.words.embedding.weight.requires_grad
    random_init = build("content", name)
    assert random_init.pretrained_parameters() == [] and random_init.words.embedding.weight.shape == (VOCAB, 50)


def test_idembed_reads_item_ids_only():
    brick = build("content", "idembed").eval()
    ids = torch.tensor([0, 5, 5, 29])
    out = brick(None, None, ids)
    torch.testing.assert_close(out[1], out[2])
    torch.testing.assert_close(out, brick.embedding.weight[ids])


# ---- behaviour ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BEHAVIOR)
def test_behavior_shapes_empty_rows_and_gradients(name):
    brick = build("behavior", name).train()
    items, mask, users = history_batch()
    items.requires_grad_(True)
    out = brick(items, mask, users)
    expected = (4, 4, D) if name == "poly" else (4, D)
    assert out.shape == expected and torch.isfinite(out).all()
    if list(brick.parameters()):
        assert_gradients(brick, out.pow(2).sum())
    else:  # mean pooling has no weights
        out.pow(2).sum().backward()
    assert float(items.grad[0].abs().sum()) > 0  # the history reaches the user vector


@pytest.mark.parametrize("name", BEHAVIOR)
def test_behavior_padding_invariance(name):
    brick = build("behavior", name).eval()
    items, mask, users = history_batch()
    extra = torch.randn(4, 5, D)  # padding positions carry arbitrary vectors: they must be ignored
    with torch.no_grad():
        short = brick(items, mask, users)
        long = brick(torch.cat([items, extra], 1), F.pad(mask, (0, 5)), users)
        changed = brick(torch.where(mask.unsqueeze(-1), items, torch.randn_like(items)), mask, users)
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(changed, short, atol=1e-5, rtol=1e-4)


def test_gru_uses_the_long_term_user_embedding():
    items, mask, _ = history_batch()
    items, mask = items[:1].expand(2, -1, -1), mask[:1].expand(2, -1)
    users = torch.tensor([1, 2])
    long_term = build("behavior", "gru").eval()
    with torch.no_grad():
        out = long_term(items, mask, users)
        empty = long_term(items, torch.zeros_like(mask), users)
    assert not torch.allclose(out[0], out[1])  # same clicks, different users
    torch.testing.assert_close(empty, long_term.users.weight[users])  # no clicks: the long-term vector
    short_only = build("behavior", "gru", long_term=False).eval()
    with torch.no_grad():
        out = short_only(items, mask, users)
    torch.testing.assert_close(out[0], out[1])
    # the state after the last valid click, as a GRU over just those clicks gives
    n = int(mask[0].sum())
    with torch.no_grad():
        _, h = short_only.gru(items[:1, :n])
    torch.testing.assert_close(out[0], h[0, 0])


def test_gru_user_dropout_masks_the_long_term_vector_in_training():
    brick = build("behavior", "gru", user_dropout=1.0).train()
    items, mask, users = history_batch()
    torch.testing.assert_close(brick.initial_state(items, users), torch.zeros(4, D))
    brick.eval()
    torch.testing.assert_close(brick.initial_state(items, users), brick.users.weight[users])


# ---- predictors ---------------------------------------------------------------------------------
def predictor_inputs(name, c, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    user = torch.randn(b, 4, D, generator=g) if name == "miner" else torch.randn(b, D, generator=g)
    candidates = torch.randn(b, c, D, generator=g)
    history, mask, _ = history_batch(b=b, h=6, seed=seed)
    return user, candidates, history, mask


def score(brick, user, candidates, history, mask):
    if brick.needs_history:
        return brick(user, candidates, history, mask)
    return brick(user, candidates)


@pytest.mark.parametrize("name", PREDICTORS)
@pytest.mark.parametrize("c", [5, 50])
def test_predictor_shapes_gradients_and_candidate_independence(name, c):
    brick = build("predictor", name).train()
    user, candidates, history, mask = predictor_inputs(name, c)
    user.requires_grad_(True)
    logits = score(brick, user, candidates, history, mask)
    assert logits.shape == (3, c) and torch.isfinite(logits).all()
    if list(brick.parameters()):
        assert_gradients(brick, logits.pow(2).mean())
    else:  # dot, miner-max/mean have no weights
        logits.pow(2).mean().backward()
    assert float(user.grad.abs().sum()) > 0
    brick.eval()
    with torch.no_grad():  # scoring is vectorised over candidates, never mixing them
        together = score(brick, user, candidates, history, mask)
        alone = score(brick, user, candidates[:, 3:4], history, mask)
    torch.testing.assert_close(alone[:, 0], together[:, 3], atol=1e-5, rtol=1e-4)


def test_din_attends_over_the_history():
    brick = build("predictor", "din").eval()
    user, candidates, history, mask = predictor_inputs("din", 5)
    with torch.no_grad():
        base = brick(user, candidates, history, mask)
        other = brick(user, candidates, history + torch.randn_like(history), mask)
        padding_changed = brick(user, candidates, torch.where(mask.unsqueeze(-1), history, 7.0), mask)
        weights = brick.attention(candidates, history, mask)
    assert not torch.allclose(base[mask.any(1)], other[mask.any(1)])
    torch.testing.assert_close(padding_changed, base)
    assert weights.shape == (3, 5, 6) and float(weights[~mask.unsqueeze(1).expand_as(weights)].abs().sum()) == 0
    # the first attention layer's block split equals the plain MLP on [h, c, h-c, h*c]
    h, cand = history[0, 0], candidates[0, 1]
    with torch.no_grad():
        hidden = brick.attention_act(brick.attention_in(torch.cat([h, cand, h - cand, h * cand])))
        torch.testing.assert_close(weights[0, 1, 0], brick.attention_out(hidden)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("aggregate", ["max", "mean", "attention"])
def test_miner_aggregates_interest_scores(aggregate):
    brick = build("predictor", "miner", aggregate=aggregate).eval()
    user, candidates, _, _ = predictor_inputs("miner", 7)
    per_interest = torch.einsum("bkd,bcd->bck", user, candidates)
    with torch.no_grad():
        out = brick(user, candidates)
    if aggregate == "max":
        torch.testing.assert_close(out, per_interest.max(-1).values)
    elif aggregate == "mean":
        torch.testing.assert_close(out, per_interest.mean(-1))
    else:  # a convex combination of the interests' scores
        assert (out <= per_interest.max(-1).values + 1e-5).all() and (out >= per_interest.min(-1).values - 1e-5).all()


def test_deepfm_second_order_is_the_user_item_inner_product():
    brick = build("predictor", "deepfm").eval()
    user, candidates, _, _ = predictor_inputs("deepfm", 4)
    with torch.no_grad():
        full = brick(user, candidates)
        flat = torch.cat([user.unsqueeze(1).expand_as(candidates), candidates], -1)
        rest = (brick.first_order(flat) + brick.deep(flat)).squeeze(-1)
    torch.testing.assert_close(full - rest, torch.einsum("bd,bcd->bc", user, candidates), atol=1e-4, rtol=1e-4)


# ---- end to end by hand -------------------------------------------------------------------------
def toy_task(seed=0, n_topics=4, per_topic=8, words_per_topic=8):
    """Items whose words come from their topic's vocabulary; a user clicks one topic; the clicked
    candidate shares the history's topic, the 4 negatives do not."""
    g = np.random.default_rng(seed)
    n_items = n_topics * per_topic
    topic = np.repeat(np.arange(n_topics), per_topic)
    tokens = np.zeros((n_items, 6), dtype=np.int64)
    for i in range(n_items):
        length = g.integers(3, 7)
        tokens[i, :length] = 2 + topic[i] * words_per_topic + g.integers(0, words_per_topic, length)
    by_topic = [np.flatnonzero(topic == t) for t in range(n_topics)]

    def batch(b=32):
        user_topic = g.integers(0, n_topics, b)
        history = np.stack([g.choice(by_topic[t], 5, replace=False) for t in user_topic])
        positive = np.array([g.choice(by_topic[t]) for t in user_topic])
        negatives = np.stack([g.choice(np.flatnonzero(topic != t), 4, replace=False) for t in user_topic])
        return (torch.as_tensor(history), torch.ones(b, 5, dtype=torch.bool),
                torch.as_tensor(np.column_stack([positive, negatives])))

    return torch.as_tensor(tokens), n_items, 2 + n_topics * words_per_topic, batch


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_hand_built_chain_overfits_a_toy_task(predictor):
    tokens, n_items, vocab, batch = toy_task()
    ctx = BuildContext(dim=16, num_items=n_items, num_users=8, vocab_size=vocab, max_history=5)
    torch.manual_seed(0)
    content = get("cnn", "content").cls(ctx, **get("cnn", "content").validate({"dropout": 0.0}))
    behavior_name = "poly" if predictor == "miner" else "additive"
    behavior = get(behavior_name, "behavior").cls(ctx, **get(behavior_name, "behavior").defaults())
    spec = get(predictor, "predictor")
    head = spec.cls(ctx, **spec.validate({"dropout": 0.0} if any(p.name == "dropout" for p in spec.params) else {}))
    modules = torch.nn.ModuleList([content, behavior, head])
    optimizer = torch.optim.Adam(modules.parameters(), lr=5e-3)
    loss_kind = spec.losses[0]

    def step(history, history_mask, candidates):
        vectors = content(tokens, tokens > 0, torch.arange(n_items))
        hist, cand = vectors[history], vectors[candidates]
        user = behavior(hist, history_mask, torch.zeros(len(history), dtype=torch.long))
        logits = head(user, cand, hist, history_mask) if head.needs_history else head(user, cand)
        if loss_kind == "softmax":
            return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1
        return F.binary_cross_entropy_with_logits(logits, labels)

    fixed = batch(64)
    with torch.no_grad():
        before = float(step(*fixed))
    for _ in range(30):
        loss = step(*batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(step(*fixed))
    assert after < 0.5 * before, (predictor, before, after)

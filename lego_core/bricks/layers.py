"""Building blocks shared by several bricks (so each brick file stays a few lines of wiring):
masked pooling, packed tokens (TokenIndex), additive attention, word embeddings with GloVe
initialisation, learned positions, self-attention, the Fastformer layer and small MLPs.

Text bricks work on packed tokens: per-token layers see only the real words, and sequence layers
(attention, Transformer) run per length bucket. On MovieLens titles this made NAML/NRMS training
steps several times faster on CPU than running everything on the batch's padded [N, L] layout."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from lego_core.core.errors import RecipeError
from lego_core.bricks.base import BuildContext, ContentOperator, masked_fill_empty
from lego_core.bricks.catalog import Param


# ---- masked pooling ----------------------------------------------------------------------------
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x [N, L, D]` over positions where `mask [N, L]` is True; empty rows give zeros."""
    weights = mask.to(x.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    return torch.bmm((weights / count).unsqueeze(1), x).squeeze(1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to `mask`; rows without any True get all-zero weights
    (finite: the -inf fill spares their first position, see base.masked_fill_empty), so an empty
    history pools to a zero vector whatever its padding holds."""
    weights = scores.masked_fill(~masked_fill_empty(mask), float("-inf")).softmax(dim=-1)
    return weights.masked_fill(~mask, 0.0)


class TokenIndex:
    """Where the real positions of a padded `mask [N, L]` batch sit, so per-token layers
    (embedding, linear, dropout, pooling scores) run on the T real tokens only. Texts padded to the
    longest in the batch waste most of the work otherwise (MovieLens titles: 3 words on average,
    15 at most). `ranks` is each token's position among its row's real tokens."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask
        self.n, self.length = mask.shape
        self.flat = mask.reshape(-1).nonzero().squeeze(1)  # [T] indices into N * L
        self.rows = torch.div(self.flat, self.length, rounding_mode="floor")
        self.lengths = mask.sum(dim=1)
        self.ranks = (mask.cumsum(dim=1) - 1).reshape(-1).index_select(0, self.flat)
        self._plan = None

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """[N, L, ...] -> [T, ...]."""
        return x.reshape(self.n * self.length, *x.shape[2:]).index_select(0, self.flat)

    def unpack(self, y: torch.Tensor) -> torch.Tensor:
        """[T, ...] -> [N, L, ...] with zeros on padding."""
        out = y.new_zeros(self.n * self.length, *y.shape[1:]).index_copy(0, self.flat, y)
        return out.view(self.n, self.length, *y.shape[1:])

    def sum(self, y: torch.Tensor) -> torch.Tensor:
        """Per-row sum [T, ...] -> [N, ...] (zeros for rows without tokens)."""
        return y.new_zeros(self.n, *y.shape[1:]).index_add(0, self.rows, y)

    def buckets(self) -> list[tuple[torch.Tensor, int]]:
        """Rows grouped by their length rounded up to a power of two, as (row ids, padded length):
        a sequence layer run per group pads each row to less than twice its length instead of to
        the batch's longest (attention cost grows with the square of that)."""
        lengths = self.lengths.clamp(min=1)
        rounded = torch.pow(2, torch.ceil(torch.log2(lengths.float()))).long().clamp(max=max(self.length, 1))
        sizes = torch.unique(rounded).tolist() or [1]
        return [((rounded == size).nonzero().squeeze(1), size) for size in sizes]

    def _bucket_plan(self) -> tuple[torch.Tensor, list[tuple[int, int, torch.Tensor]], torch.Tensor]:
        """The padded layout of all buckets back to back, as ids into the packed tokens (T = an
        appended zero row for padding); per bucket (rows, padded length, mask); and where each
        packed token sits in that layout. Computed once per index, reused by every layer."""
        if self._plan is None:
            count, device = len(self.flat), self.mask.device
            position = torch.full((self.n * self.length,), count, dtype=torch.long, device=device)
            position[self.flat] = torch.arange(count, device=device)
            position = position.view(self.n, self.length)
            ids, shapes = [], []
            for rows, size in self.buckets():
                ids.append(position[rows, :size].reshape(-1))
                shapes.append((len(rows), size, self.mask[rows, :size]))
            ids = torch.cat(ids)
            real = (ids < count).nonzero().squeeze(1)
            take = torch.empty(count, dtype=torch.long, device=device)
            take[ids.index_select(0, real)] = real
            self._plan = (ids, shapes, take)
        return self._plan

    def bucketed(self, layer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """Apply a sequence layer `layer(x [n, s, ...], mask [n, s]) -> [n, s, ...]` to packed
        tokens `y [T, ...]` one length bucket at a time -> packed [T, ...]. One gather in, one
        gather out: no [N, L, ...] buffer is built."""
        ids, shapes, take = self._bucket_plan()
        gathered = torch.cat([y, y.new_zeros(1, *y.shape[1:])]).index_select(0, ids)
        pieces = gathered.split([n * size for n, size, _ in shapes])
        outputs = [layer(piece.view(n, size, *y.shape[1:]), valid).flatten(0, 1)
                   for piece, (n, size, valid) in zip(pieces, shapes)]
        return torch.cat(outputs).index_select(0, take)

    def softmax(self, scores: torch.Tensor) -> torch.Tensor:
        """Softmax of `scores [T]` or `[T, h]` within each row (per head)."""
        padded = self.unpack(scores)
        if padded.dim() == 2:
            return self.pack(masked_softmax(padded, self.mask))
        weights = masked_softmax(padded.transpose(1, 2), self.mask.unsqueeze(1))  # [N, h, L]
        return self.pack(weights.transpose(1, 2))


class AdditiveAttention(nn.Module):
    """Additive attention pooling (Bahdanau-style, as in NAML/NRMS): a learned query scores
    `tanh(W x + b)` per position; the output is the softmax-weighted sum of the inputs."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.query(torch.tanh(self.proj(x))).squeeze(-1)

    def weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, L, D], [N, L] -> attention weights [N, L] (zero on padding)."""
        return masked_softmax(self.scores(x), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Padded [N, L, D], [N, L] -> [N, D]."""
        return torch.bmm(self.weights(x, mask).unsqueeze(1), x).squeeze(1)

    def pool(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        """Packed tokens [T, D] -> [N, D]."""
        return index.sum(index.softmax(self.scores(y)).unsqueeze(-1) * y)


# ---- embeddings --------------------------------------------------------------------------------
class WordEmbedding(nn.Module):
    """Word-vocabulary embedding with padding index 0. Starts from `ctx.word_vectors` (e.g. GloVe
    50d) when given, so `embed_dim` is then the vectors' width; otherwise random of `embed_dim`."""

    def __init__(self, ctx: BuildContext, embed_dim: int, freeze: bool = False):
        super().__init__()
        vectors = ctx.word_vectors
        self.pretrained = vectors is not None
        if self.pretrained:
            weight = torch.tensor(np.asarray(vectors), dtype=torch.float32)
            if weight.ndim != 2 or (ctx.vocab_size and weight.shape[0] != ctx.vocab_size):
                raise ValueError(f"word_vectors has shape {tuple(weight.shape)}, expected "
                                 f"[vocab_size={ctx.vocab_size}, E]")
            weight[0] = 0.0  # padding row: contributes nothing and gets no gradient
            self.embedding = nn.Embedding.from_pretrained(weight, freeze=freeze, padding_idx=0)
        else:
            if ctx.vocab_size < 2:
                raise RecipeError("this content brick reads word tokens but the dataset has no word "
                                  "vocabulary; pick 'idembed' or an LM brick, or give the items a text field")
            self.embedding = nn.Embedding(ctx.vocab_size, embed_dim, padding_idx=0)
            self.embedding.weight.requires_grad_(not freeze)
        self.dim = self.embedding.embedding_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The weight when it came from pretrained vectors and is trainable (own learning rate)."""
        weight = self.embedding.weight
        return [weight] if self.pretrained and weight.requires_grad else []


class WordContentOperator(ContentOperator):
    """Base of the word-token content bricks: holds `self.words` and exposes its pretrained weight."""

    words: WordEmbedding

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return self.words.pretrained_parameters()


class LearnedPositions(nn.Module):
    """Learned absolute position embeddings; positions beyond `max_positions` reuse the last one
    (so long inputs never crash)."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(max(int(max_positions), 1), dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Padded [N, L, D]: add position l to column l."""
        length = x.shape[1]
        if length <= self.table.num_embeddings:
            return x + self.table.weight[:length]
        return x + self.table(torch.arange(length, device=x.device).clamp(max=self.table.num_embeddings - 1))

    def packed(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        """Packed [T, D]: add each token's rank within its row."""
        return y + self.table(index.ranks.clamp(max=self.table.num_embeddings - 1))


# ---- attention layers --------------------------------------------------------------------------
def check_heads(dim: int, heads: int, brick: str) -> None:
    """Multi-head bricks split D into `heads` equal parts."""
    if dim % heads:
        raise RecipeError(f"{brick}.heads={heads} must divide the model width training.dim={dim}; "
                          f"pick a divisor of {dim}")


class SelfAttention(nn.Module):
    """Multi-head self-attention (NRMS) with padding keys ignored. Built on
    F.scaled_dot_product_attention (fused kernels; about twice as fast as nn.MultiheadAttention
    on CPU); the input/output projections can run on packed tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def _attend(self, qkv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, width = qkv.shape
        q, k, v = qkv.view(n, length, 3, self.heads, width // (3 * self.heads)).permute(2, 0, 3, 1, 4)
        keep = masked_fill_empty(mask).view(n, 1, 1, length)
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # [N, h, L, d]
        return out.transpose(1, 2).reshape(n, length, width // 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Padded [N, L, D] -> [N, L, D]."""
        return self.out(self._attend(self.qkv(x), mask))

    def packed(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        """Packed [T, D] -> [T, D]: only the attention itself runs on a padded layout, per length
        bucket."""
        return self.out(index.bucketed(self._attend, self.qkv(y)))


class FastformerAttention(nn.Module):
    """Fastformer additive attention (Wu et al. 2021) on packed tokens: a global query is the
    additive-attention sum of the queries; it multiplies every key element-wise; a global key is
    the additive sum of those; it multiplies every value; a linear output plus the query gives each
    position's result. Linear in the sequence length, so it needs no padded layout at all."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.query_score = nn.Linear(dim, heads)  # one additive-attention score per head
        self.key_score = nn.Linear(dim, heads)
        self.out = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def _global(self, y: torch.Tensor, scores: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        """Per-row, per-head weighted sum of y [T, D] with softmax(scores [T, h]) -> [T, D] (each
        token gets its row's global vector)."""
        weights = index.softmax(scores * self.scale)  # [T, h]
        weighted = (y.reshape(-1, self.heads, self.head_dim) * weights.unsqueeze(-1)).flatten(1)
        return index.sum(weighted).index_select(0, index.rows)

    def forward(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        q, k, v = self.qkv(y).chunk(3, dim=-1)
        p = k * self._global(q, self.query_score(q), index)
        return self.out(v * self._global(p, self.key_score(p), index)) + q


class FastformerLayer(nn.Module):
    """One Fastformer block: additive attention and a feed-forward part, each with a residual
    connection and post-LayerNorm (as in the BERT-style reference implementation)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attention = FastformerAttention(dim, heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        y = self.norm1(y + self.dropout(self.attention(y, index)))
        return self.norm2(y + self.dropout(self.ff(y)))


class FastformerEncoder(nn.Module):
    """Learned positions, `layers` Fastformer blocks, then additive attention pooling: packed
    tokens [T, D] -> [N, D]."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 max_positions: int, attention_dim: int):
        super().__init__()
        self.positions = LearnedPositions(max_positions, dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(FastformerLayer(dim, heads, ff_dim, dropout) for _ in range(layers))
        self.pool = AdditiveAttention(dim, attention_dim)

    def forward(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        y = self.dropout(self.positions.packed(y, index))
        for layer in self.layers:
            y = layer(y, index)
        return self.pool.pool(y, index)


class TransformerPooler(nn.Module):
    """Learned positions + nn.TransformerEncoder (pre-norm) + mean or additive pooling -> [N, D],
    from a padded sequence or from packed tokens (run per length bucket)."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 max_positions: int, pooling: str, attention_dim: int):
        super().__init__()
        self.positions = LearnedPositions(max_positions, dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.pool = AdditiveAttention(dim, attention_dim) if pooling == "additive" else None

    def _encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=~masked_fill_empty(mask))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Padded [N, L, D], [N, L] -> [N, D]."""
        x = self._encode(self.dropout(self.positions(x)), mask)
        return masked_mean(x, mask) if self.pool is None else self.pool(x, mask)

    def packed(self, y: torch.Tensor, index: TokenIndex) -> torch.Tensor:
        """Packed [T, D] -> [N, D]."""
        y = index.bucketed(self._encode, self.dropout(self.positions.packed(y, index)))
        if self.pool is None:
            return index.sum(y) / index.lengths.clamp(min=1).unsqueeze(1).to(y.dtype)
        return self.pool.pool(y, index)


# ---- MLPs --------------------------------------------------------------------------------------
def parse_sizes(value: str | list | tuple, brick: str, param: str = "hidden") -> list[int]:
    """Hidden layer sizes from "256,128" (or a list); RecipeError naming the field when malformed."""
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(" ", "").split(",")
    try:
        sizes = [int(p) for p in parts if str(p) != ""]
    except ValueError:
        sizes = []
    if not sizes or any(s < 1 or s > 8192 for s in sizes):
        raise RecipeError(f"{brick}.{param} must be comma-separated layer sizes in [1, 8192] like "
                          f"'128,64', got {value!r}")
    return sizes


def mlp(in_dim: int, sizes: list[int], dropout: float, out_dim: int | None = 1,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear -> activation -> dropout per hidden size, then a final Linear to `out_dim` (if any)."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), activation(), nn.Dropout(dropout)]
        in_dim = size
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


# ---- shared parameter declarations -------------------------------------------------------------
def word_params(dropout: float = 0.2) -> list[Param]:
    """Parameters every word-embedding content brick takes."""
    return [
        Param("embed_dim", "int", 50, low=8, high=1024,
              help="word embedding width when no pretrained vectors are given (GloVe sets it to 50)"),
        Param("freeze_embeddings", "bool", False, help="keep the word embeddings fixed during training"),
        Param("dropout", "float", dropout, low=0.0, high=0.9, help="dropout on word embeddings and layers"),
    ]

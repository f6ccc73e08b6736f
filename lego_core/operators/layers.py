"""Building blocks shared by several bricks (so each brick file stays a few lines of wiring):
masked pooling, additive attention, word embeddings with GloVe initialisation, learned positions,
the Fastformer layer and small MLPs."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lego_core.errors import RecipeError
from lego_core.operators.base import BuildContext, ContentOperator, masked_fill_empty


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


class AdditiveAttention(nn.Module):
    """Additive attention pooling (Bahdanau-style, as in NAML/NRMS): a learned query scores
    `tanh(W x + b)` per position; the output is the softmax-weighted sum of the inputs."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)

    def weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, L, D], [N, L] -> attention weights [N, L] (zero on padding)."""
        return masked_softmax(self.query(torch.tanh(self.proj(x))).squeeze(-1), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, L, D], [N, L] -> [N, D]."""
        return torch.bmm(self.weights(x, mask).unsqueeze(1), x).squeeze(1)


class SequencePooling(nn.Module):
    """`mean` (masked mean) or `additive` (additive attention) pooling of a sequence to one vector."""

    def __init__(self, kind: str, dim: int, hidden: int):
        super().__init__()
        self.attention = AdditiveAttention(dim, hidden) if kind == "additive" else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(x, mask) if self.attention is None else self.attention(x, mask)


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
    """Learned absolute position embeddings added to a left-aligned sequence; positions beyond
    `max_positions` reuse the last one (so long inputs never crash)."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(max(int(max_positions), 1), dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length <= self.table.num_embeddings:
            return x + self.table.weight[:length]
        index = torch.arange(length, device=x.device).clamp(max=self.table.num_embeddings - 1)
        return x + self.table(index)


# ---- attention layers --------------------------------------------------------------------------
def check_heads(dim: int, heads: int, brick: str) -> None:
    """Multi-head bricks split D into `heads` equal parts."""
    if dim % heads:
        raise RecipeError(f"{brick}.heads={heads} must divide the model width training.dim={dim}; "
                          f"pick a divisor of {dim}")


class SelfAttention(nn.Module):
    """Multi-head self-attention over a masked sequence (NRMS), padding keys ignored."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ignore = ~masked_fill_empty(mask)
        return self.mha(x, x, x, key_padding_mask=ignore, need_weights=False)[0]


class FastformerAttention(nn.Module):
    """Fastformer additive attention (Wu et al. 2021): a global query is the additive-attention
    sum of the queries; it multiplies every key element-wise; a global key is the additive sum of
    those; it multiplies every value; a linear output plus the query gives each position's result.
    Linear in the sequence length."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.query_score = nn.Linear(dim, heads)  # one additive-attention score per head
        self.key_score = nn.Linear(dim, heads)
        self.out = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def _pool(self, x: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [N, L, D], scores [N, L, heads] -> per-head weighted sum [N, 1, D]."""
        n, length, dim = x.shape
        weights = masked_softmax((scores * self.scale).transpose(1, 2), mask.unsqueeze(1))  # [N, h, L]
        heads = x.view(n, length, self.heads, self.head_dim).transpose(1, 2)  # [N, h, L, d]
        return torch.matmul(weights.unsqueeze(2), heads).reshape(n, 1, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        global_query = self._pool(q, self.query_score(q), mask)
        p = k * global_query
        global_key = self._pool(p, self.key_score(p), mask)
        return self.out(v * global_key) + q


class FastformerLayer(nn.Module):
    """One Fastformer block: additive attention and a feed-forward part, each with a residual
    connection and post-LayerNorm (as in the BERT-style reference implementation)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attention = FastformerAttention(dim, heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x, mask)))
        return self.norm2(x + self.dropout(self.ff(x)))


class FastformerEncoder(nn.Module):
    """Learned positions, `layers` Fastformer blocks, then additive attention pooling -> [N, D]."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 max_positions: int, attention_dim: int):
        super().__init__()
        self.positions = LearnedPositions(max_positions, dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(FastformerLayer(dim, heads, ff_dim, dropout) for _ in range(layers))
        self.pool = AdditiveAttention(dim, attention_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.positions(x))
        for layer in self.layers:
            x = layer(x, mask)
        return self.pool(x, mask)


class TransformerPooler(nn.Module):
    """Learned positions + nn.TransformerEncoder (pre-norm) + mean or additive pooling -> [N, D]."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 max_positions: int, pooling: str, attention_dim: int):
        super().__init__()
        self.positions = LearnedPositions(max_positions, dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.pool = SequencePooling(pooling, dim, attention_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.dropout(self.positions(x)), src_key_padding_mask=~masked_fill_empty(mask))
        return self.pool(x, mask)


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
def word_params(dropout: float = 0.2) -> list:
    """Parameters every word-embedding content brick takes."""
    from lego_core.operators.catalog import Param

    return [
        Param("embed_dim", "int", 50, low=8, high=1024,
              help="word embedding width when no pretrained vectors are given (GloVe sets it to 50)"),
        Param("freeze_embeddings", "bool", False, help="keep the word embeddings fixed during training"),
        Param("dropout", "float", dropout, low=0.0, high=0.9, help="dropout on word embeddings and layers"),
    ]

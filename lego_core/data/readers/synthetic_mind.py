"""Write MIND-format folders of any size (train/ and dev/, each news.tsv + behaviors.tsv) for scale
benchmarks: MIND-large itself cannot be shipped, but its shape can.

`synthetic.generate` builds a Dataset in memory and caps its arrays well below MIND-large (81M
train candidates), so this writes files instead, in chunks of rows, with every string built by
pyarrow kernels (no Python loop per row): a line's text is the data buffer of one joined array.
Topics carry a weak signal (history and clicked candidates lean to a user's topic) so a model
trained on it is not meaningless, but the point is the shape and the byte volume.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lego_core.data.readers.synthetic import pseudo_words, topic_names

CHUNK_ROWS = 100_000
_EMPTY = pa.scalar("", pa.large_string())
START = pd.Timestamp("2019-11-09")  # MIND-large spans 11/9 - 11/15 2019


def _cat(*parts, sep: str = "") -> pa.Array:
    """Element-wise concatenation of large_string arrays/scalars with `sep` between them."""
    return pc.binary_join_element_wise(*parts, pa.scalar(sep, pa.large_string()))


def _joined(tokens: pa.Array, sizes: np.ndarray, sep: str = " ") -> pa.Array:
    """Per row: its `sizes[i]` consecutive tokens joined by `sep` (empty rows give '')."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), tokens)
    return pc.binary_join(lists, pa.scalar(sep, pa.large_string()))


def _text(columns: list[pa.Array]) -> memoryview:
    """Rows of tab-separated columns, each line ended by a newline, as one buffer."""
    lines = _cat(_cat(*columns, sep="\t"), _EMPTY, sep="\n")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]]


def write_mind_folder(root: str | Path, n_news: int = 160_000, n_users: int = 1_000_000,
                      n_train: int = 2_200_000, n_dev: int = 370_000, candidates: int = 37, history: int = 33,
                      n_topics: int = 18, seed: int = 0) -> Path:
    """Write `root`/train and `root`/dev like MIND-large (defaults: its sizes). Impressions hold
    2..2*candidates-2 candidates (mean `candidates`), histories 0..2*history (mean `history`);
    train and dev news overlap like the real release's."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    topic_of = rng.integers(0, n_topics, n_news)
    words = pa.array(pseudo_words(n_topics * 40 + 200, rng).astype(object), type=pa.large_string())
    ids = _cat(pa.scalar("N", pa.large_string()),
               pa.array(np.arange(1, n_news + 1).astype(str), type=pa.large_string()))
    topics = topic_names(n_topics)
    by_topic = np.argsort(topic_of, kind="stable")
    starts = np.searchsorted(topic_of[by_topic], np.arange(n_topics))
    counts = np.bincount(topic_of, minlength=n_topics)

    def news_rows(rows: np.ndarray) -> bytes:
        n = len(rows)
        title_words = topic_of[rows, None] * 40 + rng.integers(0, 40, (n, 10))
        abstract_words = n_topics * 40 + rng.integers(0, 200, (n, 24))
        title = _joined(words.take(pa.array(title_words.reshape(-1))), np.full(n, 10))
        abstract = _joined(words.take(pa.array(abstract_words.reshape(-1))), np.full(n, 24))
        cat = pa.array(topics[topic_of[rows]], type=pa.large_string())
        sub = _cat(cat, pa.array((rows % 7).astype(str), type=pa.large_string()), sep="-")
        url = _cat(pa.scalar("https://example.org/news/", pa.large_string()),
                                          ids.take(pa.array(rows)), sep="")
        empty = pa.array(np.full(n, "[]", dtype=object), type=pa.large_string())
        return _text([ids.take(pa.array(rows)), cat, sub, title, abstract, url, empty, empty])

    user_topic = rng.integers(0, n_topics, n_users)
    hist_sizes = rng.integers(0, 2 * history + 1, n_users)
    owner = np.repeat(np.arange(n_users), hist_sizes)
    hist_topic = np.where(rng.random(len(owner)) < 0.8, user_topic[owner], rng.integers(0, n_topics, len(owner)))
    hist_items = by_topic[starts[hist_topic] + (rng.random(len(owner)) * counts[hist_topic]).astype(np.int64)]
    histories = _joined(ids.take(pa.array(hist_items)), hist_sizes)
    del owner, hist_topic, hist_items
    user_ids = _cat(pa.scalar("U", pa.large_string()),
                                           pa.array(np.arange(1, n_users + 1).astype(str), type=pa.large_string()), sep="")
    minutes = pa.array(pd.Series(START + pd.to_timedelta(np.arange(7 * 24 * 60 * 60), unit="s"))
                       .dt.strftime("%m/%d/%Y %I:%M:%S %p").to_numpy(dtype=object), type=pa.large_string())
    minus = pa.array(["-0", "-1"], type=pa.large_string())

    def behavior_rows(first_id: int, n: int, news_lo: int, news_hi: int) -> bytes:
        users = rng.integers(0, n_users, n)
        sizes = rng.integers(2, 2 * candidates - 1, n)
        row = np.repeat(np.arange(n), sizes)
        clicked = rng.random(len(row)) < 0.03
        clicked[np.cumsum(sizes) - sizes] = True  # first slot clicked, last not: every row has both
        clicked[np.cumsum(sizes) - 1] = False
        topic = np.where(clicked, user_topic[users[row]], rng.integers(0, n_topics, len(row)))
        items = by_topic[starts[topic] + (rng.random(len(row)) * counts[topic]).astype(np.int64)]
        items = np.where((items >= news_lo) & (items < news_hi), items, rng.integers(news_lo, news_hi, len(row)))
        tokens = _cat(ids.take(pa.array(items)), minus.take(pa.array(clicked.astype(np.int8))), sep="")
        imps = _joined(tokens, sizes)
        stamp = minutes.take(pa.array(rng.integers(0, len(minutes), n)))
        number = pa.array(np.arange(first_id, first_id + n).astype(str), type=pa.large_string())
        return _text([number, user_ids.take(pa.array(users)), stamp, histories.take(pa.array(users)), imps])

    news_split = {"train": (0, int(n_news * 0.65)), "dev": (int(n_news * 0.45), n_news)}
    for folder, n_rows in (("train", n_train), ("dev", n_dev)):
        lo, hi = news_split[folder]
        (root / folder).mkdir(parents=True, exist_ok=True)
        with open(root / folder / "news.tsv", "wb") as out:
            for start in range(lo, hi, CHUNK_ROWS):
                out.write(news_rows(np.arange(start, min(start + CHUNK_ROWS, hi))))
        with open(root / folder / "behaviors.tsv", "wb") as out:
            for start in range(0, n_rows, CHUNK_ROWS):
                out.write(behavior_rows(start + 1, min(CHUNK_ROWS, n_rows - start), lo, hi))
    return root

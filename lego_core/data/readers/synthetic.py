"""Synthetic news-like data with a planted signal, for tests and benchmarks (any size up to MIND).

Each of `n_topics` topics has its own vocabulary of pseudo-words; an item belongs to one topic
(its `category`) and its title mostly uses that topic's words, plus some shared filler words.
Each user prefers 1-2 topics: ~90% of the user's history clicks are items of those topics. Every
impression mixes preferred-topic and other-topic candidates; preferred ones are clicked with high
probability, others rarely, and each impression has at least one click and one non-click. A
content model that matches candidate words to history words can therefore reach a high AUC.

Like MIND, a user's sequence is a fixed history and every impression sees all of it. Everything
is vectorized numpy, so MIND scale (50k items, 50k users, 70k+ impressions) takes seconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lego_core.data.arrays import offsets_from_sizes
from lego_core.data.processed import fingerprint
from lego_core.data.options import Option, check_all
from lego_core.data.schema import Dataset, Impressions
from lego_core.core.errors import DataError

TOPIC_NAMES = ("sports", "music", "finance", "travel", "science", "health", "politics", "food", "movies",
               "technology", "fashion", "gaming", "education", "weather", "autos", "books", "art", "history",
               "nature", "space")
_CONSONANTS = list("bdfgklmnprstvz")
_VOWELS = list("aeiou")
PREFERRED_SHARE = 0.9  # share of history clicks on preferred topics
CLICK_PREFERRED, CLICK_OTHER = 0.8, 0.03  # click probability of a candidate by topic
PREFERRED_CANDIDATES = 0.4  # share of (non-forced) candidates drawn from preferred topics
MAX_ROWS = 20_000_000  # cap on generated rows per array (candidates, history clicks, title words): memory
# `generate`'s options with their ranges: its declaration (the app and `check` read it)
OPTIONS = (Option("n_items", "int", 2000, 2, 2_000_000, "items (at least n_topics)"),
           Option("n_users", "int", 500, 1, 2_000_000, "users"),
           Option("n_topics", "int", 8, 2, 1_000, "topics, each with its own vocabulary"),
           Option("history_len", "int", 20, 1, 1_000, "history clicks per user"),
           Option("n_impressions", "int", 2000, 1, 10_000_000, "train impressions"),
           Option("impression_size", "int", 10, 2, 1_000, "candidates per impression"),
           Option("seed", "int", 0, 0, 2**63 - 1, "random seed"),
           Option("n_eval_impressions", "int", None, 0, 10_000_000, "valid and test impressions each "
                  "(default n_impressions // 4, at least 1)"),
           Option("words_per_topic", "int", 30, 1, 10_000, "vocabulary per topic"),
           Option("title_len", "int", 8, 1, 200, "words per title"),
           Option("name", "str", "synthetic", help="the dataset's name"))


def pseudo_words(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct 3-syllable pseudo-words like 'tokavi' (no real-word meaning)."""
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    s = len(syllables)
    if count > s ** 3:
        raise DataError(f"synthetic: too many words requested ({count}); lower n_topics or words_per_topic")
    codes = rng.choice(s ** 3, size=count, replace=False)
    return np.char.add(np.char.add(syllables[codes // (s * s)], syllables[(codes // s) % s]), syllables[codes % s])


def topic_names(n_topics: int) -> np.ndarray:
    """Readable topic names ('sports', ..., 'sports1' past the list), one per topic."""
    names = [TOPIC_NAMES[t % len(TOPIC_NAMES)] + (str(t // len(TOPIC_NAMES)) if t >= len(TOPIC_NAMES) else "")
             for t in range(n_topics)]
    return np.array(names, dtype=object)


def check_options(options: dict) -> dict:
    """`generate`'s options (defaults filled in) as checked ints, or a DataError naming the option;
    recipes check them before any run exists, `generate` before any array is made."""
    checked = check_all(OPTIONS, {**{o.name: o.default for o in OPTIONS}, **options}, "synthetic")
    if not checked["name"].strip():
        raise DataError(f"synthetic option name must be a non-empty string, got {checked['name']!r}")
    if checked["n_items"] < checked["n_topics"]:
        raise DataError(f"synthetic: n_items ({checked['n_items']}) must be >= n_topics ({checked['n_topics']})")
    n_impressions = checked["n_impressions"]
    if checked["n_eval_impressions"] is None:
        checked["n_eval_impressions"] = max(1, n_impressions // 4)
    for what, size in (("(n_impressions + 2 * n_eval_impressions) * impression_size",
                        (n_impressions + 2 * checked["n_eval_impressions"]) * checked["impression_size"]),
                       ("n_users * history_len", checked["n_users"] * checked["history_len"]),
                       ("n_items * title_len", checked["n_items"] * checked["title_len"])):
        if size > MAX_ROWS:
            raise DataError(f"synthetic: {what} = {size:,} exceeds {MAX_ROWS:,}; lower these options")
    return checked


def generate(n_items: int = 2000, n_users: int = 500, n_topics: int = 8, history_len: int = 20,
             n_impressions: int = 2000, impression_size: int = 10, seed: int = 0,
             n_eval_impressions: int | None = None, words_per_topic: int = 30, title_len: int = 8,
             name: str = "synthetic") -> Dataset:
    """A synthetic Dataset: `n_impressions` train impressions and `n_eval_impressions` (default
    n_impressions // 4, at least 1) each for valid and test, of `impression_size` candidates."""
    options = check_options(dict(n_items=n_items, n_users=n_users, n_topics=n_topics, history_len=history_len,
                                 n_impressions=n_impressions, impression_size=impression_size, seed=seed,
                                 n_eval_impressions=n_eval_impressions, words_per_topic=words_per_topic,
                                 title_len=title_len, name=name))
    name = options.pop("name")
    n_items, n_users, n_topics, history_len, n_impressions, impression_size, seed, n_eval, words_per_topic, \
        title_len = options.values()
    rng = np.random.default_rng(seed)

    # Items: a topic each (every topic used), titles mostly from the topic's vocabulary.
    n_common = max(20, words_per_topic)
    words = pseudo_words(n_topics * words_per_topic + n_common, rng).astype(object)
    item_topic = rng.permutation(np.arange(n_items) % n_topics)
    own = item_topic[:, None] * words_per_topic + rng.integers(0, words_per_topic, (n_items, title_len))
    common = n_topics * words_per_topic + rng.integers(0, n_common, (n_items, title_len))
    word_idx = np.where(rng.random((n_items, title_len)) < 0.75, own, common)
    word_idx[:, 0] = own[:, 0]  # every title has at least one topic word
    titles = [" ".join(row) for row in words[word_idx]]
    topics = topic_names(n_topics)
    width = len(str(n_items - 1))
    items = pd.DataFrame({"item_id": [f"S{i:0{width}d}" for i in range(n_items)], "title": titles,
                          "category": topics[item_topic]})
    by_topic = np.argsort(item_topic, kind="stable")
    topic_size = np.bincount(item_topic, minlength=n_topics)
    topic_start = offsets_from_sizes(topic_size)[:-1]

    def pick(topic: np.ndarray) -> np.ndarray:
        """A uniformly random item of each given topic."""
        return by_topic[topic_start[topic] + (rng.random(topic.shape) * topic_size[topic]).astype(np.int64)]

    # Users: 1-2 preferred topics (pref[:, 1] == pref[:, 0] for one-topic users).
    first = rng.integers(0, n_topics, n_users)
    second = (first + 1 + rng.integers(0, n_topics - 1, n_users)) % n_topics
    two = (rng.random(n_users) < 0.5) & (n_topics > 2)
    pref = np.stack([first, np.where(two, second, first)], axis=1)

    lengths = rng.integers(max(1, history_len // 2), history_len + 1, n_users)
    owner = np.repeat(np.arange(n_users), lengths)
    topic = np.where(rng.random(len(owner)) < PREFERRED_SHARE, pref[owner, rng.integers(0, 2, len(owner))],
                     rng.integers(0, n_topics, len(owner)))
    seq_items = pick(topic).astype(np.int64)
    seq_offsets = offsets_from_sizes(lengths)

    splits = {}
    next_id = 0
    for split, m in (("train", n_impressions), ("valid", n_eval), ("test", n_eval)):
        splits[split] = _impressions(m, impression_size, n_users, n_topics, pref, lengths, pick, rng, next_id)
        next_id += m
    info = {"reader": "synthetic", "options": options, "fingerprint": fingerprint("synthetic", [], options),
            "note": "planted signal: users prefer 1-2 topics; titles use topic vocabularies"}
    return Dataset(name=name, items=items, users=np.array([f"U{u}" for u in range(n_users)], dtype=object),
                   seq_offsets=seq_offsets, seq_items=seq_items, splits=splits, text_fields=["title"],
                   category_field="category", info=info)


def _other_topics(pref: np.ndarray, n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random topic per row that is not among the row's preferred topics."""
    lo, hi = np.minimum(pref[:, 0], pref[:, 1]), np.maximum(pref[:, 0], pref[:, 1])
    n_pref = 1 + (lo != hi)
    t = (rng.random(len(pref)) * (n_topics - n_pref)).astype(np.int64)
    t = t + (t >= lo)  # skip the preferred topics in increasing order
    t = t + ((t >= hi) & (lo != hi))
    return t


def _impressions(m: int, size: int, n_users: int, n_topics: int, pref: np.ndarray, lengths: np.ndarray,
                 pick, rng: np.random.Generator, first_id: int) -> Impressions:
    users = rng.integers(0, n_users, m)
    p = np.repeat(pref[users], size, axis=0)  # [m*size, 2]
    preferred = rng.random(m * size) < PREFERRED_CANDIDATES
    preferred.reshape(m, size)[:, 0] = True  # slot 0: a preferred-topic click
    preferred.reshape(m, size)[:, 1] = False  # slot 1: an other-topic non-click
    topic = np.where(preferred, p[np.arange(m * size), rng.integers(0, 2, m * size)], _other_topics(p, n_topics, rng))
    cands = pick(topic).reshape(m, size)
    clicked = rng.random(m * size) < np.where(preferred, CLICK_PREFERRED, CLICK_OTHER)
    labels = clicked.reshape(m, size).astype(np.int8)
    labels[:, 0], labels[:, 1] = 1, 0
    perm = np.argsort(rng.random((m, size)), axis=1)
    cands, labels = np.take_along_axis(cands, perm, axis=1), np.take_along_axis(labels, perm, axis=1)
    ids = np.arange(first_id, first_id + m, dtype=np.int64)
    return Impressions(ids=ids, users=users.astype(np.int64), times=1_600_000_000 + ids, history_end=lengths[users],
                       offsets=np.arange(0, m * size + 1, size, dtype=np.int64), items=cands.reshape(-1).astype(np.int64),
                       labels=labels.reshape(-1))

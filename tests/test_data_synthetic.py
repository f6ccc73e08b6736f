"""Synthetic generator: sizes, planted signal, determinism, MIND scale."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lego_core.data import datasets
from lego_core.data.cache import check_dataset
from lego_core.data.readers.synthetic import generate
from lego_core.core.errors import DataError


def test_sizes_and_schema(synthetic_dataset):
    d = synthetic_dataset
    check_dataset(d)
    assert (d.num_items, d.num_users) == (300, 120)
    assert [len(d.splits[s]) for s in ("train", "valid", "test")] == [240, 60, 60]
    assert all(np.all(d.splits[s].sizes == 8) for s in d.splits)
    lengths = np.diff(d.seq_offsets)
    assert lengths.min() >= 6 and lengths.max() <= 12
    assert d.items["category"].nunique() == 6 and d.category_field == "category" and d.text_fields == ["title"]
    for imps in d.splits.values():
        per_row = imps.labels.reshape(-1, 8).sum(axis=1)
        assert np.all((per_row >= 1) & (per_row <= 7))  # each impression has a click and a non-click
        assert np.array_equal(imps.history_end, lengths[imps.users])


def test_titles_use_topic_vocabularies(synthetic_dataset):
    d = synthetic_dataset
    words_by_topic = {}
    for title, topic in zip(d.items["title"], d.items["category"]):
        words_by_topic.setdefault(topic, []).extend(title.split())
    # a topic's most frequent words are its own: the top word of a topic is rare elsewhere
    for topic, words in words_by_topic.items():
        top = max(set(words), key=words.count)
        elsewhere = sum(w.count(top) for t, w in words_by_topic.items() if t != topic)
        assert words.count(top) > 3 * elsewhere


def test_clicks_concentrate_in_preferred_topics(synthetic_dataset):
    d = synthetic_dataset
    topic = d.items["category"].to_numpy()
    shares = []
    for u in range(d.num_users):
        _, counts = np.unique(topic[d.history(u)], return_counts=True)
        shares.append(np.sort(counts)[-2:].sum() / counts.sum())
    assert np.mean(shares) > 0.85  # ~90% of clicks on the user's 1-2 topics; 6 topics uniform would be 1/3


def test_a_simple_content_model_reaches_high_auc():
    """Score = overlap between a candidate's title words and the user's history words."""
    d = generate(n_items=600, n_users=300, n_topics=8, n_impressions=400, seed=1)
    titles = [set(t.split()) for t in d.items["title"]]
    imps = d.splits["test"]
    scores = []
    for m in range(len(imps)):
        history_words = {}
        for item in d.history(imps.users[m], imps.history_end[m]):
            for w in titles[item]:
                history_words[w] = history_words.get(w, 0) + 1
        for item in imps.items[imps.offsets[m]:imps.offsets[m + 1]]:
            scores.append(sum(history_words.get(w, 0) for w in titles[item]))
    assert roc_auc_score(imps.labels, scores) >= 0.85


def test_seeded_and_validated():
    a, b, c = generate(n_items=50, n_users=20, seed=3), generate(n_items=50, n_users=20, seed=3), \
        generate(n_items=50, n_users=20, seed=4)
    assert a.items.equals(b.items) and np.array_equal(a.seq_items, b.seq_items)
    assert np.array_equal(a.splits["test"].items, b.splits["test"].items)
    assert not a.items["title"].equals(c.items["title"])
    assert a.info["fingerprint"] == b.info["fingerprint"] != c.info["fingerprint"]
    with pytest.raises(DataError, match="n_topics must be >= 2"):
        generate(n_topics=1)
    with pytest.raises(DataError, match="takes options"):
        datasets.load("synthetic", colour="red")


def test_mind_scale_generation():
    d = datasets.load("synthetic", n_items=50_000, n_users=50_000, n_impressions=70_000, seed=0)
    assert (d.num_items, d.num_users, len(d.splits["train"])) == (50_000, 50_000, 70_000)
    assert d.items["item_id"].is_unique and len(d.splits["valid"]) == 17_500
    assert d.seq_items.max() < 50_000

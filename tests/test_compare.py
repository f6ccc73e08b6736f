"""Comparing two runs' item spaces: Procrustes aligns a rotated, scaled, shifted copy of a map back
onto it; neighbour overlap is 1 for identical spaces and low for a shuffled one; the neighbour search
never holds an N x N matrix."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from lego_core import runs
from lego_core.explore import compare


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_a_rotated_scaled_shifted_map_aligns_to_itself():
    xy = np.random.default_rng(0).normal(size=(200, 2))
    moved = 3.5 * xy @ _rotation(1.1).T + np.array([10.0, -4.0])
    first, second, disparity = compare.align_xy(xy, moved)
    assert disparity == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(first, second, atol=1e-6)
    _, _, noisy = compare.align_xy(xy, xy + np.random.default_rng(1).normal(scale=0.5, size=xy.shape))
    assert noisy > 0.05


def test_align_maps_matches_items_by_id_in_the_first_maps_order():
    xy = np.random.default_rng(2).normal(size=(50, 2))
    ids = [f"i{i}" for i in range(50)]
    first = pd.DataFrame({"item_id": ids, "x": xy[:, 0], "y": xy[:, 1], "category": "a"})
    turned = -2 * xy @ _rotation(0.3).T
    second = pd.DataFrame({"item_id": ids, "x": turned[:, 0], "y": turned[:, 1]}).iloc[::-1]  # other order
    second = pd.concat([second, pd.DataFrame({"item_id": ["extra"], "x": [99.0], "y": [99.0]})])
    a, b, disparity = compare.align_maps(first, second)
    assert a["item_id"].tolist() == ids == b["item_id"].tolist()
    assert disparity == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy(), atol=1e-6)
    assert "category" in a.columns


def test_identical_spaces_overlap_fully_and_a_permuted_space_does_not():
    vectors = np.random.default_rng(3).normal(size=(400, 16)).astype(np.float32)
    ids = [f"i{i}" for i in range(400)]
    same = compare.compare_spaces(ids, vectors, ids[::-1], vectors[::-1], k=10)  # same space, other order
    assert same.overlap == 1.0 and np.all(same.moved == 0) and same.common == 400
    shuffled = vectors[np.random.default_rng(4).permutation(400)]  # every item gets another's vector
    other = compare.compare_spaces(ids, vectors, ids, shuffled, k=10)
    assert other.overlap < 0.1 and other.moved.mean() > 0.9
    assert len(compare.compare_spaces(ids, vectors, ids, shuffled, k=10, max_items=50).moved) == 50


def test_neighbours_match_a_dense_reference():
    vectors = np.random.default_rng(5).normal(size=(300, 8)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    dense = unit @ unit.T
    np.fill_diagonal(dense, -np.inf)
    expected = np.argsort(-dense, axis=1)[:, :5]
    found = compare.nearest_neighbours(vectors, 5)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(compare.nearest_neighbours(vectors, 5, queries=np.array([7, 3])), expected[[7, 3]])


def test_big_catalogue_without_an_n_by_n_matrix():
    n = 20_000
    vectors = np.random.default_rng(6).normal(size=(n, 8)).astype(np.float32)
    tracemalloc.start()
    try:
        found = compare.nearest_neighbours(vectors, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.shape == (n, 10)
    assert peak < n * n * 4 / 10, f"peak {peak / 2**20:.0f} MB: close to a dense {n}x{n} matrix"


def test_compare_runs_reads_the_saved_tables_and_caches(tmp_path):
    vectors = np.random.default_rng(7).normal(size=(60, 8)).astype(np.float32)
    made = []
    for table in (vectors, vectors * 2):
        run = runs.create({"name": "hand", "dataset": {"name": "tiny"}, "content": {"name": "cnn"},
                           "behavior": {"name": "additive"}, "predictor": {"name": "dot"}}, root=tmp_path)
        run.save_embeddings([f"i{i}" for i in range(60)], table)
        made.append(run)
    found = compare.compare_runs(made[0], made[1], k=5)
    assert found.overlap == 1.0 and found.frame().columns.tolist() == ["item_id", "moved"]
    assert compare.compare_runs(made[0], made[1], k=5) is found

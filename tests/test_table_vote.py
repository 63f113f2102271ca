"""The fast path's neighbour search: the true nearest rows, and for each row the same answer alone as in a batch,
duplicates and ties included."""

from __future__ import annotations

import numpy as np
import pytest

from portal.segmentation.table_vote import EXACT_SEARCH_ROWS, GridNeighbours, weighted_vote


def _data(rows: int, width: int, seed: int) -> np.ndarray:
    """Continuous columns plus one-hot-like columns, a fifth of the rows repeated exactly (ties)."""
    rng = np.random.default_rng(seed)
    data = np.hstack([rng.normal(size=(rows, width - 3)), np.eye(3)[rng.integers(0, 3, rows)] * 0.7])
    repeats = rng.choice(rows, size=rows // 5)
    data[rng.choice(rows, size=rows // 5, replace=False)] = data[repeats]
    return data.astype(np.float32)


@pytest.mark.parametrize("width", [4, 30])
def test_the_nearest_rows_are_the_true_nearest_ones(width):
    data = _data(600, width, 1)
    queries = np.random.default_rng(2).normal(size=(200, width)).astype(np.float32)
    distances, indices = GridNeighbours(data).kneighbors(queries, 7)
    true = np.sqrt(((queries[:, None, :].astype(float) - data[None].astype(float)) ** 2).sum(axis=2))
    kth = np.sort(true, axis=1)[:, 6]
    assert np.all(np.take_along_axis(true, indices, axis=1) <= kth[:, None] + 1e-4)
    assert np.allclose(distances, np.take_along_axis(true, indices, axis=1), atol=1e-4)
    assert np.all(np.diff(distances, axis=1) >= 0)


@pytest.mark.parametrize("discrete", [False, True])
def test_a_row_alone_gets_what_it_gets_in_a_batch_ties_included(discrete):
    """Continuous rows with exact repeats, and rows of a few small integers (most neighbours tied at the k-th)."""
    rng = np.random.default_rng(4)
    data = rng.integers(0, 3, (800, 12)).astype(np.float32) if discrete else _data(800, 12, 3)
    # queries on top of fitted rows (many equally near rows), near them, and far away
    queries = np.vstack([data[rng.choice(800, 150)], data[rng.choice(800, 100)] + rng.normal(0, 0.05, (100, 12)),
                         rng.normal(0, 30, (50, 12))]).astype(np.float32)
    assert len(queries) > EXACT_SEARCH_ROWS
    index = GridNeighbours(data)
    batch_d, batch_i = index.kneighbors(queries, 15)
    for row in range(len(queries)):
        d, i = index.kneighbors(queries[row:row + 1], 15)
        assert d[0].tobytes() == batch_d[row].tobytes() and i[0].tolist() == batch_i[row].tolist()
    again_d, again_i = GridNeighbours(data).kneighbors(queries[::-1], 15)
    assert np.array_equal(again_i[::-1], batch_i) and np.array_equal(again_d[::-1], batch_d)


def test_the_vote_follows_the_nearest_labels():
    rng = np.random.default_rng(5)
    data = np.vstack([rng.normal(0, 0.3, (100, 3)), rng.normal(5, 0.3, (100, 3))]).astype(np.float32)
    labels = np.r_[np.full(100, 4), np.full(100, 9)]
    noise = np.zeros(200, bool)
    noise[100:] = True
    placed = weighted_vote(GridNeighbours(data), np.array([[0, 0, 0], [5, 5, 5]], np.float32), 10, labels, noise,
                           [9, 4])
    assert placed.cluster_id.tolist() == [4, 9]
    assert placed.reassigned.tolist() == [False, True]
    assert placed.confidence[0] == 1.0 and placed.confidence[1] < 1.0


@pytest.mark.parametrize("seed", [6, 7])
def test_a_large_batch_gets_the_exact_searchs_answer_on_wide_tied_data(seed):
    """A few thousand rows of 44 columns, half of them discrete (ties at the k-th everywhere), queried in one batch
    and in slices small enough for the exact search: the same neighbours, distances and vote for every row."""
    rng = np.random.default_rng(seed)
    fitted = np.hstack([rng.normal(size=(3000, 22)), rng.integers(0, 2, (3000, 22)) * 0.5]).astype(np.float32)
    fitted[rng.choice(3000, 600, replace=False)] = fitted[rng.choice(3000, 600)]
    queries = np.vstack([fitted[rng.choice(3000, 1500)],
                         fitted[rng.choice(3000, 1500)] + rng.normal(0, 0.01, (1500, 44)),
                         rng.normal(0, 25, (200, 44))]).astype(np.float32)
    index = GridNeighbours(fitted)
    batch_d, batch_i = index.kneighbors(queries, 15)
    slices = [index.kneighbors(queries[s:s + EXACT_SEARCH_ROWS], 15) for s in range(0, len(queries), EXACT_SEARCH_ROWS)]
    assert np.array_equal(np.vstack([i for _, i in slices]), batch_i)
    assert np.vstack([d for d, _ in slices]).tobytes() == batch_d.tobytes()
    labels, noise = rng.integers(0, 4, 3000), rng.random(3000) < 0.1
    batch = weighted_vote(index, queries, 15, labels, noise, [0, 1, 2, 3])
    alone = [weighted_vote(index, queries[s:s + EXACT_SEARCH_ROWS], 15, labels, noise, [0, 1, 2, 3])
             for s in range(0, len(queries), EXACT_SEARCH_ROWS)]
    assert np.array_equal(np.concatenate([p.cluster_id for p in alone]), batch.cluster_id)
    assert np.concatenate([p.confidence for p in alone]).tobytes() == batch.confidence.tobytes()
    assert np.array_equal(np.concatenate([p.reassigned for p in alone]), batch.reassigned)

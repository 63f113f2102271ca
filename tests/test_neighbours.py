"""UMAP runs on an exact neighbour graph and transforms new rows through the same exact search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from portal.segmentation.library_workarounds.neighbours import ExactNeighbourIndex, umap_with_exact_neighbours


def _blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], dtype=float)
    return np.vstack([c + rng.normal(size=(120, 3)) for c in centres]).astype(np.float32)


def test_query_returns_the_true_nearest_rows_nearest_first():
    data = _blobs()
    queries = np.random.default_rng(1).normal(scale=4, size=(25, 3)).astype(np.float32)
    indices, distances = ExactNeighbourIndex(data).query(queries, k=7)
    brute = np.linalg.norm(queries[:, None, :] - data[None, :, :], axis=2)
    assert indices.dtype == np.int32 and distances.dtype == np.float32
    assert np.array_equal(indices, np.argsort(brute, axis=1)[:, :7])
    assert np.allclose(distances, np.sort(brute, axis=1)[:, :7], atol=1e-4)


def test_every_training_row_is_its_own_nearest_neighbour():
    data = _blobs()
    indices, distances = ExactNeighbourIndex(data).neighbour_graph(5)
    assert np.array_equal(indices[:, 0], np.arange(len(data)))
    assert np.all(distances[:, 0] == 0)


def test_identical_rows_are_at_distance_zero_and_the_next_row_at_its_true_distance():
    data = np.repeat(_blobs()[:40], 6, axis=0) + np.float32(1e3)  # six copies of each row, far from 0
    indices, distances = ExactNeighbourIndex(data).neighbour_graph(10)
    assert np.array_equal(indices[:, 0], np.arange(len(data)))
    assert np.all(distances[:, :6] == 0)
    copies = indices[:, :6] // 6
    assert np.all(copies == (np.arange(len(data)) // 6)[:, None])
    brute = np.linalg.norm(data[::6, None, :].astype(np.float64) - data[None, ::6, :], axis=2)
    brute[brute == 0] = np.inf
    assert np.allclose(distances[::6, 6], brute.min(axis=1), rtol=1e-6)


def test_umap_transform_works_and_places_rows_beside_their_neighbours():
    data = _blobs()
    with warnings.catch_warnings():
        # the "transform will be unavailable" and the seeded "n_jobs overridden" warnings are handled
        warnings.simplefilter("error", UserWarning)
        model, embedding = umap_with_exact_neighbours(data, n_neighbors=15, min_dist=0.0, n_components=2,
                                                      random_state=3)
    assert embedding.shape == (len(data), 2)
    blob = np.repeat(np.arange(3), 120)
    new_rows = _blobs(seed=5)[::40]  # fresh draws from the same three blobs
    placed = model.transform(new_rows)
    assert np.all(np.isfinite(placed))
    centres = np.array([embedding[blob == b].mean(axis=0) for b in range(3)])
    nearest_centre = np.linalg.norm(placed[:, None, :] - centres[None], axis=2).argmin(axis=1)
    assert np.array_equal(nearest_centre, blob[::40])


def test_a_saved_model_transforms_like_the_original_without_the_fit_time_graph(tmp_path):
    import joblib

    data = _blobs()
    model, _ = umap_with_exact_neighbours(data, n_neighbors=15, min_dist=0.0, n_components=2, random_state=3)
    joblib.dump(model, tmp_path / "umap.pkl")
    restored = joblib.load(tmp_path / "umap.pkl")
    assert restored.precomputed_knn[0] is None and restored.knn_indices is None and restored._knn_indices is None
    new_rows = _blobs(seed=7)[::30]
    assert np.allclose(restored.transform(new_rows), model.transform(new_rows))


@pytest.mark.parametrize("width", [14, 50, 300])
def test_wide_data_and_far_queries_still_get_their_true_nearest_rows(width):
    """An integer key that overflowed returned the farthest rows as the nearest for 24+ columns."""
    rng = np.random.default_rng(width)
    data = rng.normal(size=(2000, width)).astype(np.float32)
    queries = np.vstack([rng.normal(size=(20, width)), rng.normal(size=(10, width)) * 4]).astype(np.float32)
    _, distances = ExactNeighbourIndex(data).query(queries, k=15)
    brute = np.sort(np.linalg.norm(queries[:, None, :].astype(np.float64) - data[None], axis=2), axis=1)[:, :15]
    assert np.allclose(distances, brute, rtol=1e-5, atol=1e-5)


def test_ties_are_not_decided_by_row_order():
    """Ranking ties by row index sent every equidistant query to the rows that come first in the file
    (files are often sorted, e.g. by branch): bundled sample ARI 0.68 against 0.90."""
    data = np.vstack([np.repeat([[1.0, 0.0]], 50, axis=0), np.repeat([[-1.0, 0.0]], 50, axis=0)]).astype(np.float32)
    indices, distances = ExactNeighbourIndex(data).query(np.zeros((1, 2), np.float32), k=20)
    assert np.allclose(distances, 1.0)
    from_first_half = int((indices < 50).sum())
    assert 5 <= from_first_half <= 15
    again, _ = ExactNeighbourIndex(data).query(np.zeros((1, 2), np.float32), k=20)
    assert np.array_equal(indices, again)  # deterministic all the same

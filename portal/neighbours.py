"""Exact euclidean nearest neighbours for UMAP, in place of pynndescent's approximate index.

UMAP fits on at most a few thousand customers (``SegmentationParams.umap_max_fit_rows``), where an
exact search with scikit-learn takes a fraction of a second. pynndescent's index, which UMAP builds
above 4,096 rows, spends about 14 s of every fresh process compiling numba code that numba cannot
cache (``nn_descent`` takes its distance function as an argument), and adds its search graph to the
pickle. So the neighbour graph is computed here and handed to UMAP as ``precomputed_knn``, and this
index answers ``UMAP.transform``'s neighbour queries.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: UMAP warns that transform is unavailable when the index it is given is not pynndescent's.
_NOT_NNDESCENT_WARNING = r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent object"
_CHUNK_ROWS = 1000


class ExactNeighbourIndex:
    """Brute-force euclidean k-NN over the rows UMAP was fitted on; answers UMAP's ``query`` calls."""

    #: read by UMAP.transform to pick a search accuracy; exact search ignores it.
    _angular_trees = False

    def __init__(self, data: np.ndarray) -> None:
        self._data = np.asarray(data, np.float32)
        self._search = NearestNeighbors(algorithm="brute", metric="euclidean").fit(self._data)

    def neighbour_graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest training rows of every training row, the row itself in column 0 (UMAP's
        ``smooth_knn_dist`` skips column 0 as the point itself)."""
        indices, distances = self.query(self._data, k)
        rows = np.arange(len(indices))
        is_self = indices == rows[:, None]
        # a row with more than k identical copies may not find itself; any copy at distance 0 makes way
        where = np.where(is_self.any(axis=1), is_self.argmax(axis=1), 0)
        indices[rows, where], distances[rows, where] = indices[:, 0], distances[:, 0]
        indices[:, 0], distances[:, 0] = rows, 0.0
        return indices, distances

    def query(self, query_data: np.ndarray, k: int = 10, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Indices (int32) and distances (float32) of the k nearest training rows, nearest first.

        scikit-learn's brute force ranks by |a|² - 2a·b + |b|², which leaves rounding noise (~1e-7) where
        the distance is 0; UMAP takes the first non-zero distance as each point's local scale, so the
        distances to the candidates are recomputed exactly and re-sorted.
        """
        queries = np.asarray(query_data, np.float32)
        indices = np.empty((len(queries), k), np.int32)
        distances = np.empty((len(queries), k), np.float32)
        for start in range(0, len(queries), _CHUNK_ROWS):
            chunk = queries[start:start + _CHUNK_ROWS]
            candidates = self._search.kneighbors(chunk, n_neighbors=k, return_distance=False)
            exact = np.linalg.norm(chunk[:, None, :].astype(np.float64) - self._data[candidates], axis=2)
            order = np.argsort(exact, axis=1, kind="stable")
            indices[start:start + len(chunk)] = np.take_along_axis(candidates, order, axis=1)
            distances[start:start + len(chunk)] = np.take_along_axis(exact, order, axis=1)
        return indices, distances


def umap_with_exact_neighbours(X: np.ndarray, **umap_params: object) -> tuple[object, np.ndarray]:
    """Fit ``umap.UMAP(**umap_params)`` on X with an exact neighbour graph; returns (model, embedding)."""
    import umap

    metric = umap_params.get("metric", "euclidean")
    if metric != "euclidean":
        raise ValueError(f"UMAP metric {metric!r} is not supported: the exact neighbour index is euclidean.")
    index = ExactNeighbourIndex(X)
    indices, distances = index.neighbour_graph(int(umap_params["n_neighbors"]))
    model = umap.UMAP(precomputed_knn=(indices, distances, index), **umap_params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_NNDESCENT_WARNING)
        embedding = model.fit_transform(X)
    # The neighbour graph is fit-time input only (transform queries the index; only UMAP.update, which
    # is never used, reads it again). joblib writes every reference to it as its own copy: 8 MB each at
    # 5,000 rows.
    model.precomputed_knn = (None, None, index)
    model.knn_indices = model.knn_dists = model._knn_indices = model._knn_dists = None
    return model, embedding

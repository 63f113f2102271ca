"""Exact nearest neighbours for UMAP, in place of pynndescent's approximate index.

UMAP fits on at most a few thousand customers (``SegmentationParams.umap_max_fit_rows``), where an
exact search with scikit-learn takes a fraction of a second. pynndescent's index, which UMAP builds
above 4,096 rows, spends about 14 s of every fresh process compiling numba code that numba cannot
cache (``nn_descent`` takes its distance function as an argument), and adds its search graph to the
pickle. So the neighbour graph is computed here and handed to UMAP as ``precomputed_knn``, and this
index answers ``UMAP.transform``'s neighbour queries, exactly, with the same distances.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: UMAP warns that transform is unavailable when the index it is given is not pynndescent's.
_NOT_NNDESCENT_WARNING = r"precomputed_knn\[2\] \(knn_search_index\) is not an NNDescent object"


class ExactNeighbourIndex:
    """Brute-force k-NN over the rows UMAP was fitted on; answers UMAP's ``query`` calls."""

    #: read by UMAP.transform to pick a search accuracy; exact search ignores it.
    _angular_trees = False

    def __init__(self, data: np.ndarray, metric: str = "euclidean") -> None:
        self._data = np.asarray(data, np.float32)
        self._search = NearestNeighbors(algorithm="brute", metric=metric).fit(self._data)

    def neighbour_graph(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest training rows of every training row (itself included), as UMAP expects."""
        return self.query(self._data, k)

    def query(self, query_data: np.ndarray, k: int = 10, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Indices (int32) and distances (float32) of the k nearest training rows, nearest first."""
        distances, indices = self._search.kneighbors(np.asarray(query_data, np.float32), n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)


def umap_with_exact_neighbours(X: np.ndarray, **umap_params: object) -> tuple[object, np.ndarray]:
    """Fit ``umap.UMAP(**umap_params)`` on X with an exact neighbour graph; returns (model, embedding)."""
    import umap

    index = ExactNeighbourIndex(X, metric=str(umap_params.get("metric", "euclidean")))
    indices, distances = index.neighbour_graph(int(umap_params["n_neighbors"]))
    model = umap.UMAP(precomputed_knn=(indices, distances, index), **umap_params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_NNDESCENT_WARNING)
        embedding = model.fit_transform(X)
    # The neighbour graph handed in is fit-time input only (transform queries the index); keeping it
    # in the constructor parameter would put another copy of it in every pickle (8 MB at 5,000 rows).
    model.precomputed_knn = (None, None, index)
    model.knn_indices = model.knn_dists = None
    return model, embedding

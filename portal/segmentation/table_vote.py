"""The learned-schema fast path: a distance-weighted vote of the nearest fitted rows, exact on an integer grid,
so a row gets the same segment and confidence placed alone (the smart form) as inside any upload.

scikit-learn's brute search rounds distances by whichever BLAS kernel the batch shape picks and breaks
ties between equally near rows by chunk order, so a row alone and the same row in a batch could differ in
the last bits and, between duplicate fitted rows, in which labels vote. Here features are snapped to
``ExactNeighbourIndex``'s integer grid (about 1e-6 of each column's range), where every squared distance
is an exact integer whatever computes it. A large batch asks scikit-learn for each row's k + 1 nearest
(fast, threaded); a row whose k-th and (k+1)-th are equally far, and every row of a small batch, is
settled by an exact search whose ties go by a fixed ranking of the fitted rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from portal.segmentation.library_workarounds.neighbours import ExactNeighbourIndex
from portal.segmentation.model import REASSIGNED_CONFIDENCE_CAP, Placement

#: Batches up to this many rows skip scikit-learn's search (its thread start-up costs more than it saves).
EXACT_SEARCH_ROWS = 64
_CHUNK_ROWS = 512


class GridNeighbours(ExactNeighbourIndex):
    """Nearest fitted rows on the integer grid, the same for a row whatever batch it is in."""

    def __init__(self, data: np.ndarray, tie_seed: int = 0) -> None:
        super().__init__(data, tie_seed)
        self._search = NearestNeighbors(algorithm="brute").fit(self._data)

    def kneighbors(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances (feature units, on the grid) and indices of each row's k nearest, ordered by distance and
        then by the fixed ranking."""
        grid = self._snap(X)
        k = min(k, len(self._data))
        roots = np.empty((len(grid), k))
        indices = np.empty((len(grid), k), dtype=np.intp)
        exact = np.ones(len(grid), dtype=bool)
        if len(grid) > EXACT_SEARCH_ROWS and k < len(self._data):
            # sqrt of an exact integer is exact and monotone: k-th < (k+1)-th means the k nearest are one set
            found, near = self._search.kneighbors(grid, n_neighbors=k + 1)
            exact = ~(found[:, k - 1] < found[:, k])
            roots[~exact], indices[~exact] = found[~exact, :k], near[~exact, :k]
        for start in range(0, int(exact.sum()), _CHUNK_ROWS):
            rows = np.flatnonzero(exact)[start:start + _CHUNK_ROWS]
            chunk = grid[rows]
            squared = chunk @ self._data.T
            squared *= -2.0
            squared += np.einsum("ij,ij->i", chunk, chunk)[:, None]
            squared += self._norms
            chosen = self._k_smallest(squared, k)
            roots[rows], indices[rows] = np.sqrt(np.take_along_axis(squared, chosen, axis=1)), chosen
        order = np.lexsort((self._tie_ranks[indices], roots), axis=1)
        return np.take_along_axis(roots, order, axis=1) * self._unit, np.take_along_axis(indices, order, axis=1)


def weighted_vote(index: GridNeighbours, X: np.ndarray, k: int, labels: np.ndarray, noise: np.ndarray,
                  cluster_ids: list[int]) -> Placement:
    """Distance-weighted vote of the k nearest fitted rows: the segment, its vote share as the confidence, and
    reassigned when most of the vote comes from rows that were noise in the fit."""
    distances, neighbours = index.kneighbors(X, k)
    weights = 1.0 / (distances + 1e-6)
    weights /= weights.sum(axis=1, keepdims=True)
    ids = np.sort(np.asarray(cluster_ids))
    codes = np.searchsorted(ids, labels)[neighbours]
    votes = np.column_stack([(weights * (codes == c)).sum(axis=1) for c in range(len(ids))])
    winner = votes.argmax(axis=1)
    share = votes[np.arange(len(X)), winner]
    reassigned = (weights * noise[neighbours]).sum(axis=1) > 0.5
    confidence = np.where(reassigned, share * REASSIGNED_CONFIDENCE_CAP, share)
    return Placement(ids[winner], np.round(confidence, 4), reassigned)


__all__ = ["EXACT_SEARCH_ROWS", "GridNeighbours", "weighted_vote"]

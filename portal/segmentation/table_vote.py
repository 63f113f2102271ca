"""The learned-schema fast path: a distance-weighted vote of the nearest fitted rows, exact on an integer grid,
so a row gets the same segment and confidence placed alone (the smart form) as inside any upload.

scikit-learn's brute search rounds distances by whichever BLAS kernel the batch shape picks and breaks
ties between equally near rows by chunk order, so a row alone and the same row in a batch could differ in
the last bits and, between duplicate fitted rows, in which labels vote. Here features are snapped to
``ExactNeighbourIndex``'s integer grid (about 1e-6 of each column's range), where every squared distance
is an exact integer whatever computes it. A large batch is screened by one float32 product per chunk of
rows ([q, 1] · [-2x, |x|²], about twice as fast as float64 and with no pass to add the norms), whose error
is bounded per query; only the fitted rows that can still be among a row's k nearest under that bound
(about k of them) are measured exactly, and ties go by a fixed ranking of the fitted rows, as in the exact
search that settles every row of a small batch. Both give the same k rows and the same distances.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from portal.segmentation.library_workarounds.neighbours import ExactNeighbourIndex
from portal.segmentation.model import REASSIGNED_CONFIDENCE_CAP, Placement

#: Batches up to this many rows skip the float32 screening (its set-up costs more than it saves).
EXACT_SEARCH_ROWS = 64
_CHUNK_ROWS = 512
#: Rows per float32 screening pass (its block of distances stays near 20 MB), groups of fitted rows whose
#: minima bound each query's k-th distance (at least four per neighbour asked for, else the exact search serves),
#: and |x|² of the padding rows (far beyond any distance on the grid, yet finite in float32).
_SCREEN_CHUNK_ROWS = 1024
_GROUPS = 256
_GROUPS_PER_NEIGHBOUR = 4
_FAR = 1e37
_LARGE_SEARCH = threading.Lock()


class GridNeighbours(ExactNeighbourIndex):
    """Nearest fitted rows on the integer grid, the same for a row whatever batch it is in."""

    def __init__(self, data: np.ndarray, tie_seed: int = 0) -> None:
        super().__init__(data, tie_seed)
        rows = len(self._data)
        self._size = -(-rows // _GROUPS) if rows else 1
        self._groups = -(-rows // self._size) if rows else 0
        # [-2x, |x|²] per fitted row, padded to whole groups with rows farther than any query; grid values are
        # integers below 2^24 in magnitude (queries are clipped at 8 times 2^20), exact in float32
        padded = np.zeros((self._groups * self._size, self._data.shape[1] + 1), dtype=np.float32)
        padded[:, -1] = _FAR
        padded[:rows, :-1], padded[:rows, -1] = self._data * -2.0, self._norms
        self._screen = padded
        self._data32 = self._data.astype(np.float32)
        self._largest_norm = float(np.sqrt(self._norms.max())) if rows else 0.0

    def kneighbors(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances (feature units, on the grid) and indices of each row's k nearest, ordered by distance and
        then by the fixed ranking."""
        grid = self._snap(X)
        k = min(k, len(self._data))
        roots = np.empty((len(grid), k))
        indices = np.empty((len(grid), k), dtype=np.intp)
        screened = len(grid) > EXACT_SEARCH_ROWS and k * _GROUPS_PER_NEIGHBOUR <= self._groups
        chunk_rows = _SCREEN_CHUNK_ROWS if screened else _CHUNK_ROWS

        def search(start: int) -> None:
            chunk = grid[start:start + chunk_rows]
            if screened:
                squared, chosen = self._screened(chunk, k)
            else:
                squared = chunk @ self._data.T
                squared *= -2.0
                squared += np.einsum("ij,ij->i", chunk, chunk)[:, None]
                squared += self._norms
                chosen = self._k_smallest(squared, k)
                squared = np.take_along_axis(squared, chosen, axis=1)
            roots[start:start + len(chunk)], indices[start:start + len(chunk)] = np.sqrt(squared), chosen

        starts = range(0, len(grid), chunk_rows)
        workers = min(len(starts), os.cpu_count() or 1)
        if workers > 1:
            # chunks side by side, each on one BLAS thread: BLAS's own threads spin-wait between calls and,
            # on a busy machine, slowed every step after the product. The limit is process-wide, so one large
            # search at a time (two interleaved ones could restore each other's limit of 1 for good).
            with _LARGE_SEARCH, threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
                list(pool.map(search, starts))
        else:
            for start in starts:
                search(start)
        order = np.lexsort((self._tie_ranks[indices], roots), axis=1)
        return np.take_along_axis(roots, order, axis=1) * self._unit, np.take_along_axis(indices, order, axis=1)

    def _screened(self, chunk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact squared distances and indices of each row's k nearest (by distance, then rank): one float32
        product bounds every distance within a proven error, and only rows that can still be among the k
        nearest are measured exactly.

        Every approximate |x|² - 2q·x is within e (``_screen_error``) of the exact one (a query's own |q|² is
        the same for all its candidates). Fitted row j sits in group j mod G; the k-th smallest group minimum is
        at least the k-th smallest approximate value, itself at least the true k-th less e. So a row among the
        true k nearest (ties at the k-th included) is approximately at most that bound plus 2e, and it can
        only be in a group whose minimum is within the bound."""
        queries = np.ones((len(chunk), chunk.shape[1] + 1), dtype=np.float32)
        queries[:, :-1] = chunk
        approx = (queries @ self._screen.T).reshape(len(chunk), self._size, self._groups)
        minima = approx.min(axis=1)
        bound = np.partition(minima, k - 1, axis=1)[:, k - 1].astype(np.float64)
        bound = _up(bound + 2.0 * self._screen_error(chunk))
        rows, groups = np.nonzero(minima <= bound[:, None])
        pairs, offsets = np.nonzero(approx[rows, :, groups] <= bound[rows, None])
        rows, columns = rows[pairs], offsets * self._groups + groups[pairs]
        # float32 differences of grid values are exact (below 9 * 2^20), their squares summed in float64 too
        difference = queries[rows, :-1] - self._data32[columns]
        exact = np.einsum("ij,ij->i", difference, difference, dtype=np.float64)
        # most queries have exactly k candidates (kept as found, in row order; ``kneighbors`` orders each row);
        # the others keep their k nearest by distance, then rank
        counts = np.bincount(rows, minlength=len(chunk))
        more = counts[rows] > k
        if more.any():
            order = np.lexsort((self._tie_ranks[columns[more]], exact[more], rows[more]))
            picked = np.flatnonzero(more)[order]
            first = np.searchsorted(rows[picked], np.arange(len(chunk)))
            picked = picked[np.arange(len(picked)) - first[rows[picked]] < k]
            keep = ~more
            keep[picked] = True
            columns, exact = columns[keep], exact[keep]
        return exact.reshape(len(chunk), k), columns.reshape(len(chunk), k)

    def _screen_error(self, chunk: np.ndarray) -> np.ndarray:
        """Per query, a bound on |float32 (|x|² - 2q·x) - exact| over every fitted row x: each float32 rounding
        (the products, the sum of the dot product, |x|² stored in float32) errs by at most 2^-24 of a magnitude
        below (|q| + |x|)²; twice that count of roundings."""
        terms = chunk.shape[1] + 4
        return 2.0 * terms * 2.0 ** -24 * (np.sqrt(np.einsum("ij,ij->i", chunk, chunk)) + self._largest_norm) ** 2


def _up(bound: np.ndarray) -> np.ndarray:
    """The float32 at or above each float64 bound, so that no float32 value below the bound compares above it."""
    rounded = bound.astype(np.float32)
    return np.where(rounded.astype(np.float64) < bound, np.nextafter(rounded, np.float32(np.inf)), rounded)


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

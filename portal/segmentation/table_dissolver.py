"""After the splits: a segment whose only own trait is one column's values is dissolved into the segments its
other columns point to.

Customers who live in areas no group favours (a loyalty list's "elsewhere" members), or a hotel group's guests
from a few countries, share values that nobody else has; UMAP puts them on an island, and HDBSCAN makes it a
segment although every other column says they belong to several groups. Such a segment is recognised by what
is left when that one block is set aside: its rows are then explained better (lower BIC) as a mixture of the
other segments than by shares of their own, and no single other segment takes ``MIXTURE_SHARE`` of them or more.
The last condition keeps pairs that differ in one column only (the real mall list's high spenders of low and of
high income) apart: whether those are one group the columns cannot tell, and this stage does not guess. Its
share is taken over the segment's own rows: rows another segment explains better on every block, the one set
aside included, are ones the clusterer misplaced, and they must not make a pair look like a mixture (an
overlapping loyalty file's group that differs from another by its cities alone, a 72/28 mixture with a third
group's members, was dissolved into the other: ARI 0.76, 0.84 when kept).

Measured in ``bench/schemas.py`` (refinement): a loyalty file's "elsewhere" segment (ARI 0.79 -> 0.90), a hotel
file's guests of a few countries (0.76 -> 0.89); a 0.8 or 0.95 bound chose the same segments everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from portal.segmentation.table_refiner import SegmentRefiner

#: A segment explained as a mixture of others is dissolved only when none of them takes this share or more.
MIXTURE_SHARE = 0.8
#: Segments never dissolved below this many.
MIN_SEGMENTS = 2
MIXTURE_ITERATIONS = 50
MIXTURE_TOLERANCE = 1e-4


class MixedSegmentDissolver(BaseEstimator):
    """Dissolves segments that, one block aside, are a mixture of the others.

    ``fit(X, y, keep)`` takes the model-ready rows, their segments and ids never to dissolve (segments split
    into others) and sets ``labels_``, ``dissolved_`` (old id -> the segment that took most of its rows) and
    ``dissolutions_``.
    """

    def __init__(self, blocks: list[list[int]], mixture_share: float = MIXTURE_SHARE,
                 min_segments: int = MIN_SEGMENTS) -> None:
        self.blocks = blocks
        self.mixture_share = mixture_share
        self.min_segments = min_segments

    def fit(self, X: np.ndarray, y: np.ndarray, keep: set[int] | None = None) -> MixedSegmentDissolver:
        codes = SegmentRefiner(self.blocks).block_codes(np.asarray(X))
        labels = np.asarray(y).copy()
        self.dissolved_: dict[int, int] = {}
        self.dissolutions_: list[dict[str, Any]] = []
        while len(np.unique(labels)) > self.min_segments:
            found = self._most_mixed(codes, labels, keep or set())
            if found is None:
                break
            segment, block, gain, moved_to = found
            values, counts = np.unique(moved_to, return_counts=True)
            most = int(values[counts.argmax()])
            self.dissolved_ = {old: (most if new == segment else new) for old, new in self.dissolved_.items()}
            self.dissolved_[segment] = most
            self.dissolutions_.append({"segment": segment, "block_set_aside": block, "bic_gain": round(gain, 1),
                                       "rows": len(moved_to)})
            labels[labels == segment] = moved_to
        self.labels_ = labels
        return self

    def _most_mixed(self, codes: list[np.ndarray], labels: np.ndarray,
                    keep: set[int]) -> tuple[int, int, float, np.ndarray] | None:
        """(segment, block set aside, BIC gain, where its rows go) of the segment that is most clearly a mixture
        of the others (gain per row), or None."""
        segments = [int(s) for s in np.unique(labels)]
        log_shares = {s: [np.log((np.bincount(code[labels == s], minlength=int(code.max()) + 1) + 1.0)
                                 / (np.sum(labels == s) + int(code.max()) + 1)) for code in codes]
                      for s in segments}
        best: tuple[float, int, int, float, np.ndarray] | None = None
        for segment in segments:
            if segment in keep:
                continue
            rows = np.flatnonzero(labels == segment)
            others = [s for s in segments if s != segment]
            per_block = {s: np.array([shares[code[rows]] for shares, code in zip(log_shares[s], codes, strict=True)])
                         for s in segments}
            # rows another segment explains better on every block, the one set aside included, are ones the
            # clusterer misplaced (the refiner moves them anyway): they do not make the segment a mixture
            whole = np.column_stack([per_block[s].sum(axis=0) for s in others])
            core = per_block[segment].sum(axis=0) >= whole.max(axis=1)
            for block in range(len(codes)):
                own = float(per_block[segment].sum() - per_block[segment][block].sum())
                scores = np.column_stack([per_block[s].sum(axis=0) - per_block[s][block] for s in others])
                weights, mixed = _mixture(scores)
                shares = _mixture(scores[core])[0] if core.any() else weights
                if shares.max() >= self.mixture_share:
                    continue
                own_shares = sum(int(code.max()) for b, code in enumerate(codes) if b != block)
                gain = 2 * (mixed - own) + (own_shares - (len(others) - 1)) * float(np.log(len(rows)))
                if gain > 0 and (best is None or gain / len(rows) > best[0]):
                    moved_to = np.asarray(others)[(scores + np.log(weights)).argmax(axis=1)]
                    best = (gain / len(rows), segment, block, gain, moved_to)
        return None if best is None else best[1:]

    def describe(self, block_names: list[str]) -> dict[str, Any]:
        """What the manifest records of this stage."""
        check_is_fitted(self, "labels_")
        return {"method": "segments that are a mixture of the others once one block is set aside are dissolved",
                "mixture_share": self.mixture_share,
                "dissolved": [{**d, "block_set_aside": block_names[d["block_set_aside"]]}
                              for d in self.dissolutions_]}


def _mixture(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Mixing weights of the columns' segments (log-likelihood per row and segment) by EM, and the mixture's
    log-likelihood."""
    likelihood = np.exp(scores - scores.max(axis=1, keepdims=True))  # per row, up to a factor
    weights = np.full(scores.shape[1], 1 / scores.shape[1])
    for _ in range(MIXTURE_ITERATIONS):
        joint = likelihood * weights
        updated = (joint / joint.sum(axis=1, keepdims=True)).mean(axis=0) + 1e-12
        converged = np.abs(updated - weights).max() < MIXTURE_TOLERANCE
        weights = updated
        if converged:
            break
    return weights, float(np.sum(np.log((likelihood * weights).sum(axis=1)) + scores.max(axis=1)))


__all__ = ["MIXTURE_SHARE", "MixedSegmentDissolver"]

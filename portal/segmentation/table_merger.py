"""Right after the clusterer: segments that are only cells of a few-valued column's values are merged back.

UMAP puts every combination of a few discrete values (a gender, a tier) on an island of its own, and HDBSCAN
may take such islands for segments: in a loyalty file of three groups (60/30/10%) it cut the largest group
into "Gold or Platinum", "Silver, male" and "Silver, female", alike in every other column (ARI 0.39 against
the planted groups). The latent-class model cannot undo that: two classes that differ in one block and
nowhere else explain the rows exactly as well as one class (the block's shares mix), so BIC has no say, and
merging by BIC merged real groups too (an eight-group file 0.80 -> 0.35, the real mall and telco files from 5
segments to 2).

So the witness is the shape of the difference. Two segments are merged when every block in which they
differ (total variation distance of the block's values of at least ``difference``) is one where one of them
holds a single value for ``purity`` of its members. Such a pair differs only by a value a marketer can filter
on, not by a group the columns show together. Groups that differ by a region (several cities on each side)
or by any spread-out column are kept apart. Measured in ``bench/schemas.py`` (refinement): only that loyalty
file changed (6 -> 4 segments, ARI 0.79); 0.1-0.3 and 0.9-0.99 chose the same merges on every file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from portal.segmentation.table_refiner import SegmentRefiner

#: Two segments differ in a block when its values' total variation distance between them is at least this.
DIFFERENCE = 0.2
#: A segment holds a single value of a block when that value has at least this share of its members.
PURITY = 0.95
#: Merging stops at this many segments.
MIN_SEGMENTS = 2


class ValueCellMerger(BaseEstimator):
    """Merges segments that differ only in blocks where one of them holds a single value.

    ``fit(X, y)`` takes the model-ready rows and the clusterer's segment of each (noise reassigned) and sets
    ``labels_``, ``merged_into_`` (old id -> the id it now has, for every merged segment) and ``merges_``.
    """

    def __init__(self, blocks: list[list[int]], difference: float = DIFFERENCE, purity: float = PURITY,
                 min_segments: int = MIN_SEGMENTS) -> None:
        self.blocks = blocks
        self.difference = difference
        self.purity = purity
        self.min_segments = min_segments

    def fit(self, X: np.ndarray, y: np.ndarray) -> ValueCellMerger:
        codes = SegmentRefiner(self.blocks).block_codes(np.asarray(X))
        labels = np.asarray(y).copy()
        self.merges_: list[dict[str, Any]] = []
        self.merged_into_: dict[int, int] = {}
        while len(np.unique(labels)) > self.min_segments:
            pair = self._closest_cells(codes, labels)
            if pair is None:
                break
            kept, merged, differing = pair
            labels[labels == merged] = kept
            self.merged_into_ = {old: (kept if new == merged else new) for old, new in self.merged_into_.items()}
            self.merged_into_[merged] = kept
            self.merges_.append({"segment": merged, "merged_into": kept, "differing_blocks": differing})
        self.labels_ = labels
        return self

    def _closest_cells(self, codes: list[np.ndarray], labels: np.ndarray) -> tuple[int, int, list[int]] | None:
        """The pair of segments that differ only where one of them holds a single value, most alike in the
        other blocks; None when no pair does."""
        segments = [int(s) for s in np.unique(labels)]
        shares = {s: [np.bincount(code[labels == s], minlength=int(code.max()) + 1) / np.sum(labels == s)
                      for code in codes] for s in segments}
        best: tuple[float, int, int, list[int]] | None = None
        for i, a in enumerate(segments):
            for b in segments[i + 1:]:
                distance = [0.5 * float(np.abs(pa - pb).sum()) for pa, pb in zip(shares[a], shares[b], strict=True)]
                differing = [k for k, d in enumerate(distance) if d >= self.difference]
                if not all(max(shares[a][k].max(), shares[b][k].max()) >= self.purity for k in differing):
                    continue
                rest = max((d for k, d in enumerate(distance) if k not in differing), default=0.0)
                if best is None or rest < best[0]:
                    best = (rest, a, b, differing)
        return None if best is None else best[1:]

    def describe(self, block_names: list[str]) -> dict[str, Any]:
        """What the manifest records of this stage."""
        check_is_fitted(self, "labels_")
        return {"method": "segments differing only where one holds a single value are merged",
                "difference": self.difference, "purity": self.purity,
                "merges": [{"segment": m["segment"], "merged_into": m["merged_into"],
                            "differing": [block_names[k] for k in m["differing_blocks"]]} for m in self.merges_]}


__all__ = ["DIFFERENCE", "PURITY", "ValueCellMerger"]

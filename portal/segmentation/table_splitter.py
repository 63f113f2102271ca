"""Between the clusterer and the refining stage: a segment is split in two while the columns say it holds two
groups.

HDBSCAN on the UMAP embedding merges groups that overlap in every single column but differ across many of
them (means one standard deviation apart, shared category mixes): on a second, independently written
generator it found 2-5 segments where 3-7 were planted. A latent-class model over the feature blocks sees
such groups, because each column adds its little evidence; the Bayesian information criterion (BIC) of that
model says whether one more segment explains the table better than it costs.

Naive Bayes assumes the columns independent within a segment, and real tables break that: orders, total
spend and tenure rise together inside every group, and BIC then buys extra segments to model that
correlation (with every block weighed on its own it split the 14 planted retail and order files' four
groups into up to nine). So blocks linked *within* segments (normalised mutual information of their bands,
less its small-sample bias, of ``local_dependence`` or more) are represented by one of them when a split is
weighed, and each candidate split is judged with the links as they would be once it is made. A link that
only comes from two groups in one segment is weak in each pair of columns and vanishes when they are apart
(0.01-0.08 in the second generator's merged segments, under 0.01 inside its planted groups); a correlation
inside a group stays (0.10-0.40 between orders, spend and dates inside the planted retail groups). So a
segment is split for groups, not for correlations. Measured in ``bench/schemas.py`` (refinement).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from portal.segmentation.table_refiner import UPSTREAM_ODDS, SegmentRefiner

#: Two blocks this dependent within the segments (normalised mutual information of their bands, less its
#: small-sample bias, averaged over segments by size) are weighed as one when a split is considered. It sits in
#: the gap between the links two merged groups leave (0.01-0.08 in the second generator's merged segments) and
#: correlations inside a group (0.10-0.40 in the planted retail groups). At 0.05 a leftover link of 0.051 tied
#: a SaaS table's last-login date (the column that told its dormant accounts apart) to its seat count, and the
#: dormant group stayed merged (ARI 0.69 against 0.86 at 0.1). On the 14 planted retail and order files 0.05 and
#: 0.1 split none of the four groups (ARI 0.99); 0.2 split some (0.89, 10 of 14 >= 0.8).
LOCAL_DEPENDENCE = 0.1
#: A split's smaller half holds at least this share of the fitted rows (and ``MIN_SPLIT_ROWS``).
MIN_SPLIT_SHARE = 0.02
MIN_SPLIT_ROWS = 20
#: Random starts of the two-class model that proposes each segment's halves (beside one from k-means).
RANDOM_STARTS = 3
#: Splitting stops at this many segments (the most a campaign team can use, as the upload contract says).
MAX_SEGMENTS = 12


class SegmentSplitter(BaseEstimator):
    """Splits segments while the latent-class model's BIC improves; records which segment each new one left.

    ``fit(X, y)`` takes the model-ready fitted rows and the clusterer's segment of each (noise reassigned) and
    sets ``labels_`` (the old ids, plus ``max(y) + 1``, ... for each new segment), ``parents_`` (new id -> the
    clusterer's segment it was split from), ``representatives_`` (the blocks weighed) and ``splits_``.
    """

    def __init__(self, blocks: list[list[int]], local_dependence: float = LOCAL_DEPENDENCE,
                 min_split_share: float = MIN_SPLIT_SHARE, min_split_rows: int = MIN_SPLIT_ROWS,
                 max_segments: int = MAX_SEGMENTS, upstream_odds: float = UPSTREAM_ODDS,
                 random_state: int = 0) -> None:
        self.blocks = blocks
        self.upstream_odds = upstream_odds
        self.local_dependence = local_dependence
        self.min_split_share = min_split_share
        self.min_split_rows = min_split_rows
        self.max_segments = max_segments
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> SegmentSplitter:
        X, labels = np.asarray(X), np.asarray(y).copy()
        codes = SegmentRefiner(self.blocks).block_codes(X)
        smallest = max(self.min_split_rows, int(self.min_split_share * len(X)))
        self.parents_: dict[int, int] = {}
        self.splits_: list[dict[str, Any]] = []
        while len(np.unique(labels)) < self.max_segments:
            best = self._best_split(codes, X, labels, smallest)
            if best is None:
                break
            gain, labels, parent, child, weighed = best
            self.parents_[child] = self.parents_.get(parent, parent)
            # the split was chosen on the weighed blocks; every block then places the rows (as the refining
            # stage will), so the next round starts from segments as they will be served (unless that would
            # empty a segment: then the split's own placement stays)
            placed = self._latent_classes(range(len(codes)), codes, labels, self.upstream_odds,
                                          self.parents_).labels_
            if np.array_equal(np.unique(placed), np.unique(labels)):
                labels = placed
            self.splits_.append({"segment": parent, "new_segment": child, "bic_gain": round(gain, 1),
                                 "blocks_weighed": weighed})
        self.representatives_ = representative_blocks(within_segment_dependence(codes, labels),
                                                      self.local_dependence)
        self.labels_ = labels
        return self

    def _latent_classes(self, blocks: Iterable[int], codes: list[np.ndarray], labels: np.ndarray,
                        odds: float = 1.0, families: dict[int, int] | None = None) -> SegmentRefiner:
        """The latent-class model over some blocks' codes, by EM from ``labels`` (odds 1: the columns alone)."""
        picked = list(blocks)
        return SegmentRefiner([self.blocks[b] for b in picked], upstream_odds=odds).fit_codes(
            [codes[b] for b in picked], labels, families)

    def _best_split(self, codes: list[np.ndarray], X: np.ndarray, labels: np.ndarray,
                    smallest: int) -> tuple[float, np.ndarray, int, int, int] | None:
        """The split of one segment in two (then EM over every row) that lowers BIC most, if any does.

        Each candidate is judged on the blocks as they would be linked with it made: dependence that came from
        two groups in one segment is gone once they are apart, a correlation inside a group stays."""
        best: tuple[float, np.ndarray, int, int, int] | None = None
        child = int(labels.max()) + 1
        segments, sizes = np.unique(labels, return_counts=True)
        per_segment = {int(c): segment_dependence(codes, labels == c) for c in segments}
        overall = sum(per_segment[int(c)] * (n / len(labels)) for c, n in zip(segments, sizes, strict=True))
        unsplit: dict[tuple[int, ...], float] = {}  # BIC of the segments as they are, by the blocks weighed
        for segment, size in zip(segments, sizes, strict=True):
            rows = np.flatnonzero(labels == segment)
            if size < 2 * smallest:
                continue
            before = per_segment[int(segment)]
            inner = [code[rows] for code in codes]
            for halves in self._halves(X[rows], inner, representative_blocks(before, self.local_dependence)):
                inside = within_segment_dependence(inner, halves)
                if not self._two_inside(inner, halves, representative_blocks(inside, self.local_dependence)):
                    continue
                trial = labels.copy()
                trial[rows[halves == 1]] = child
                chosen = tuple(representative_blocks(overall + (inside - before) * (size / len(labels)),
                                                     self.local_dependence))
                refit = self._latent_classes(chosen, codes, trial)
                counts = np.unique(refit.labels_, return_counts=True)[1]
                if len(counts) <= len(segments) or counts.min() < smallest:
                    continue  # a segment emptied, or a half too small to be one
                if chosen not in unsplit:
                    unsplit[chosen] = self._latent_classes(chosen, codes, labels).fitted_bic_
                gain = unsplit[chosen] - refit.fitted_bic_
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, refit.labels_, int(segment), child, len(chosen))
        return best

    def _two_inside(self, inner: list[np.ndarray], halves: np.ndarray, representatives: list[int]) -> bool:
        """Whether two classes explain one segment's rows better than one (BIC on those rows alone): a cheap
        first test before the split is weighed on the whole table."""
        one = self._latent_classes(representatives, inner, np.zeros(len(halves), int)).fitted_bic_
        return bool(self._latent_classes(representatives, inner, halves).fitted_bic_ < one)

    def _halves(self, rows: np.ndarray, inner: list[np.ndarray], representatives: list[int]) -> list[np.ndarray]:
        """Ways to halve one segment's rows: k-means halves, and a two-class latent-class model from each of a
        few random halves (k-means alone missed groups that differ a little in many columns and not in the
        feature space's widest blocks)."""
        rng = np.random.default_rng(self.random_state)
        with warnings.catch_warnings():
            # rows all alike give one cluster: a candidate without a second half, which is then skipped
            warnings.simplefilter("ignore", ConvergenceWarning)
            candidates = [KMeans(2, n_init=1, random_state=self.random_state).fit_predict(rows)]
        for _ in range(RANDOM_STARTS):
            halves = self._latent_classes(representatives, inner, rng.integers(0, 2, len(rows))).labels_
            if len(np.unique(halves)) == 2:
                candidates.append(halves)
        return candidates

    def describe(self) -> dict[str, Any]:
        """What the manifest records of this stage."""
        check_is_fitted(self, "labels_")
        return {"method": "BIC of a latent-class model over the feature blocks, locally dependent blocks weighed "
                          "as one", "local_dependence": self.local_dependence,
                "blocks_weighed": len(self.representatives_), "blocks": len(self.blocks), "splits": self.splits_}


def normalised_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of two code vectors (small non-negative integers), less its small-sample bias
    (Miller-Madow: (ka - 1)(kb - 1) / 2n for ka and kb values seen), over the mean of their entropies; 0 when
    either is constant. Without the correction a block of 30 categories looked linked to every other block in
    segments of a few hundred rows."""
    return _corrected_nmi(a, b, _entropy(a), _entropy(b))


def _entropy(code: np.ndarray) -> tuple[float, int]:
    """Entropy (nats) of a code vector and how many values it shows."""
    counts = np.bincount(code)
    shares = counts[counts > 0] / len(code)
    return float(-np.sum(shares * np.log(shares))), len(shares)


def _corrected_nmi(a: np.ndarray, b: np.ndarray, of_a: tuple[float, int], of_b: tuple[float, int]) -> float:
    (ha, ka), (hb, kb) = of_a, of_b
    if ha <= 0 or hb <= 0:
        return 0.0
    joint, _ = _entropy(a * (int(b.max()) + 1) + b)
    mutual = ha + hb - joint - (ka - 1) * (kb - 1) / (2 * len(a))
    return float(max(mutual, 0.0) / ((ha + hb) / 2))


def segment_dependence(codes: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Each pair of blocks' normalised mutual information among ``rows`` (a mask)."""
    n = len(codes)
    picked = [code[rows] for code in codes]
    entropies = [_entropy(code) for code in picked]
    dependence = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            dependence[i, j] = _corrected_nmi(picked[i], picked[j], entropies[i], entropies[j])
    return dependence + dependence.T


def within_segment_dependence(codes: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Each pair of blocks' normalised mutual information inside the segments, weighted by segment size."""
    return sum((segment_dependence(codes, labels == segment) * np.mean(labels == segment)
                for segment in np.unique(labels)), np.zeros((len(codes), len(codes))))


def representative_blocks(dependence: np.ndarray, threshold: float) -> list[int]:
    """One block per group of blocks linked by dependence >= ``threshold`` (the one most dependent on the rest
    of its group), in block order."""
    _, group = connected_components(sparse.csr_matrix(dependence >= threshold), directed=False)
    members = [np.flatnonzero(group == g) for g in np.unique(group)]
    return sorted(int(max(blocks, key=lambda b: (dependence[b, blocks].sum(), -b))) for blocks in members)


__all__ = ["LOCAL_DEPENDENCE", "SegmentSplitter", "normalised_mutual_information", "representative_blocks",
           "segment_dependence", "within_segment_dependence"]

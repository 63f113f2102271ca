"""The last stage of the learned-schema pipeline: every customer goes to the segment whose column values
explain theirs best, with the clusterer's answer as one more piece of evidence.

HDBSCAN on the UMAP embedding finds the segments, but places some customers by the island UMAP put them
on: on planted files, a group's members who live in another group's city (or share another group's
channel) sat with that group although every other column said otherwise. A latent-class model (naive
Bayes over each feature block, read as a few bands or categories) weighs every column's evidence
additively instead. It starts from the clusterer's segments and keeps their number; expectation-
maximisation then refits each segment's value shares from its members. The segment the clusterer (or,
serving, the fast path that stands for it) gave a row counts ``upstream_odds`` times as likely as any
other, so a row moves only when its columns say so. Measured in ``bench/schemas.py`` (refinement).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

#: Bands a one-column block (a number, a date, a rank) is read in: quantiles of the fitted rows, or the
#: midpoints between its values when it has this many or fewer.
BANDS = 10
#: The segment the clusterer gave a row counts this many times as likely as any other. Measured on the
#: bundled loyalty sample (four seeds), 14 planted retail and order files, two other loyalty structures and a
#: second generator's eight files: 1.5 and 2 gave nearly the same (bundled ARI 0.909-0.941 against 0.85-0.86
#: without this stage); at 4 the stage moved too few rows to matter on half of them (bundled 0.889-0.911).
#: 2 kept the real files closest to the clusterer's segments (mall_customers 97%, telco 99.6% by ARI).
UPSTREAM_ODDS = 2.0
#: Each segment's value shares are smoothed toward the whole table's as if it had this many more members
#: per value of the block, so a value unseen in a segment is unlikely there but never impossible.
SMOOTHING = 1.0
MAX_ITERATIONS = 30


class SegmentRefiner(BaseEstimator):
    """Latent-class assignment over the feature blocks, started from (and leaning to) the clusterer's labels.

    ``blocks`` lists each feature block's column indices in the model-ready rows. A block of one column is
    read in bands; a wider one (a one-hot code, a member profile) by which of its fitted rows' patterns it
    repeats. A value no fitted row had (an unseen category) is no evidence either way.
    """

    def __init__(self, blocks: list[list[int]], bands: int = BANDS, upstream_odds: float = UPSTREAM_ODDS,
                 smoothing: float = SMOOTHING, max_iterations: int = MAX_ITERATIONS) -> None:
        self.blocks = blocks
        self.bands = bands
        self.upstream_odds = upstream_odds
        self.smoothing = smoothing
        self.max_iterations = max_iterations

    # -- reading blocks as values --------------------------------------------------------------
    def block_codes(self, X: np.ndarray) -> list[np.ndarray]:
        """Fit the bands and patterns on ``X`` and return each block's value code per row."""
        return self._fit_codes(np.asarray(X))

    def _fit_codes(self, X: np.ndarray) -> list[np.ndarray]:
        self.edges_: list[np.ndarray | None] = []
        self.patterns_: list[np.ndarray | None] = []
        for columns in self.blocks:
            values = X[:, columns]
            if len(columns) == 1:
                distinct = np.unique(values[:, 0])
                if len(distinct) <= self.bands:
                    edges = (distinct[1:] + distinct[:-1]) / 2
                else:
                    edges = np.unique(np.quantile(values[:, 0], np.linspace(0, 1, self.bands + 1)[1:-1]))
                self.edges_.append(edges)
                self.patterns_.append(None)
            else:
                self.edges_.append(None)
                self.patterns_.append(pd.unique(_row_keys(values)))
        return self._codes(X)

    def _codes(self, X: np.ndarray) -> list[np.ndarray]:
        """Each block's value code per row; a block's last code (one past its values) is 'not seen'."""
        codes = []
        for block, (columns, edges) in enumerate(zip(self.blocks, self.edges_, strict=True)):
            if edges is not None:
                codes.append(np.searchsorted(edges, X[:, columns[0]], side="right"))
            else:
                index = self._pattern_index(block)
                found = index.get_indexer(_row_keys(X[:, columns]))
                codes.append(np.where(found < 0, len(index), found))
        return codes

    def _pattern_index(self, block: int) -> pd.Index:
        """A hash index of a wide block's fitted patterns, built once per loaded model (not saved)."""
        built = self.__dict__.setdefault("_indexes", {})
        if block not in built:
            built[block] = pd.Index(self.patterns_[block])
        return built[block]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_indexes", None)
        state.pop("_stacked_shares", None)
        return state

    # -- the latent-class model ----------------------------------------------------------------
    @staticmethod
    def _design(codes: list[np.ndarray], widths: np.ndarray) -> sparse.csr_matrix:
        """Rows by every block's values, one-hot (block ``b`` in ``widths[b]`` columns, its last one 'not
        seen'): sums over blocks become one sparse product per EM step."""
        offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
        columns = np.column_stack([offset + np.minimum(code, width - 1)
                                   for code, offset, width in zip(codes, offsets, widths, strict=True)])
        rows, blocks = columns.shape
        return sparse.csr_matrix((np.ones(rows * blocks), columns.ravel(), np.arange(0, rows * blocks + 1, blocks)),
                                 shape=(rows, int(widths.sum())))

    def _stacked(self) -> np.ndarray:
        """Every block's log shares in one array, rows in ``_design`` order (built once per loaded model)."""
        cached = self.__dict__.get("_stacked_shares")
        if cached is None or cached[0] is not self.log_shares_:
            cached = (self.log_shares_, np.vstack(self.log_shares_))
            self._stacked_shares = cached
        return cached[1]

    def _maximise(self, by_value: sparse.csr_matrix, widths: np.ndarray, responsibility: np.ndarray) -> None:
        """Each segment's prior and share of every value, smoothed toward the whole table's (``by_value``: the
        design transposed)."""
        sizes = responsibility.sum(axis=0)
        self.log_prior_ = np.log(np.maximum(sizes, 1e-12) / sizes.sum())
        counts = np.asarray(by_value @ responsibility)
        overall = counts.sum(axis=1) / sizes.sum()
        values = np.repeat(widths - 1, widths).astype(float)[:, None]  # each row's block's number of values
        shares = (counts + self.smoothing * values * overall[:, None]) / (sizes + self.smoothing * values)
        stacked = np.log(np.maximum(shares, 1e-300))
        last = np.cumsum(widths) - 1
        stacked[last] = 0.0  # a value no fitted row had: no evidence for any segment
        self.log_shares_ = np.split(stacked, last[:-1] + 1)
        self._stacked_shares = (self.log_shares_, stacked)

    def _log_joint(self, design: sparse.csr_matrix, upstream: np.ndarray | None) -> np.ndarray:
        """Log prior plus each block's log share (plus the upstream odds: a position per row, or a 0/1 mask of
        the segments a row's upstream answer allows) for every row and segment."""
        scores = np.asarray(design @ self._stacked()) + self.log_prior_
        if upstream is not None and upstream.ndim == 1:
            scores[np.arange(len(upstream)), upstream] += np.log(self.upstream_odds)
        elif upstream is not None:
            scores += upstream * np.log(self.upstream_odds)
        return scores

    def _log_posterior(self, design: sparse.csr_matrix, upstream: np.ndarray) -> np.ndarray:
        scores = self._log_joint(design, upstream)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def _served_design(self, X: np.ndarray) -> sparse.csr_matrix:
        return self._design(self._codes(np.asarray(X)), np.array([len(ls) for ls in self.log_shares_]))

    def _positions(self, labels: np.ndarray) -> np.ndarray:
        order = np.argsort(self.classes_)
        return order[np.searchsorted(self.classes_[order], labels)]

    def fit(self, X: np.ndarray, y: np.ndarray, families: dict[int, int] | None = None) -> SegmentRefiner:
        """EM from the clusterer's labels ``y`` (every row in a segment): sets ``labels_`` for the fitted rows.

        ``families`` (segment -> the clusterer's segment it was split from, ``table_splitter``): the odds go to
        every segment of a row's family, and among them the columns alone decide."""
        return self.fit_codes(self._fit_codes(np.asarray(X)), y, families)

    def fit_codes(self, codes: list[np.ndarray], y: np.ndarray,
                  families: dict[int, int] | None = None) -> SegmentRefiner:
        """``fit`` on rows already read as value codes (``block_codes`` of another fit, here or on more rows):
        the splitter's many trial fits. Sets ``fitted_bic_``, the BIC on those rows; such a fit keeps no bands,
        so it places no new rows."""
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.families_ = dict(families or {})
        widths = np.array([int(code.max()) + 2 for code in codes])
        design = self._design(codes, widths)
        by_value = design.T.tocsr()
        start = self._positions(y)
        upstream = self._upstream(y)
        assigned = start
        responsibility = np.eye(len(self.classes_))[start]
        self.n_iter_ = 0
        while self.n_iter_ < self.max_iterations:
            self.n_iter_ += 1
            self._maximise(by_value, widths, responsibility)
            responsibility = self._log_posterior(design, upstream)
            previous, assigned = assigned, responsibility.argmax(axis=1)
            if np.array_equal(previous, assigned):
                break
        self.labels_ = self.classes_[assigned]
        self.moved_share_ = float(np.mean(self.labels_ != y))
        seen = np.asarray(by_value.sum(axis=1)).ravel() > 0  # values shown by the fitted rows, per block
        self.free_shares_ = int(seen.sum()) - len(widths)
        self.fitted_bic_ = self._bic(design)
        return self

    def _upstream(self, labels: np.ndarray) -> np.ndarray:
        """The upstream answers as the odds need them: each row's segment position, or (segments split) a 0/1
        mask of the segments of each row's family."""
        families = self.__dict__.get("families_") or {}  # a stage saved before splits existed has none
        if not families:
            return self._positions(labels)
        family = np.array([families.get(int(c), int(c)) for c in self.classes_])
        given = family[self._positions(labels)]  # every answer is a segment (a clusterer's is one too)
        return (family[None, :] == given[:, None]).astype(float)

    def predict(self, X: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's segment given the segment the clusterer or fast path gave it, and that segment's
        posterior probability."""
        check_is_fitted(self, "log_shares_")
        posterior = self._log_posterior(self._served_design(X), self._upstream(np.asarray(upstream)))
        best = posterior.argmax(axis=1)
        return self.classes_[best], posterior[np.arange(len(best)), best]

    def _bic(self, design: sparse.csr_matrix) -> float:
        """Bayesian information criterion of the fitted model on the design's rows (upstream answers aside):
        lower explains the rows better for its number of free value shares."""
        scores = self._log_joint(design, None)
        peak = scores.max(axis=1)
        log_likelihood = float(np.sum(peak + np.log(np.exp(scores - peak[:, None]).sum(axis=1))))
        k = len(self.classes_)
        # one free share per value each block showed in the fitted rows, less one, per segment
        free = k - 1 + k * self.free_shares_
        return -2 * log_likelihood + free * float(np.log(design.shape[0]))

    def relabel(self, mapping: dict[int, int]) -> None:
        """Answer ``mapping[id]`` for every segment id (the stable ids of ``segment_ids``)."""
        self.classes_ = np.array([mapping[int(c)] for c in self.classes_])
        families = self.__dict__.get("families_", {})
        self.families_ = {mapping[child]: mapping[parent] for child, parent in families.items()}
        if hasattr(self, "labels_"):
            self.labels_ = np.array([mapping[int(c)] for c in self.labels_])

    def describe(self) -> dict[str, Any]:
        """What the manifest records of this stage."""
        check_is_fitted(self, "log_shares_")
        return {"method": "latent-class assignment (naive Bayes over feature blocks, EM from the clusterer's "
                          "segments)", "upstream_odds": self.upstream_odds, "bands": self.bands,
                "iterations": self.n_iter_, "moved_share": round(self.moved_share_, 4)}


def _row_keys(values: np.ndarray) -> np.ndarray:
    """One key per row of a block: its exact float32 bits as one fixed-width byte string, so equal patterns share
    a code (numpy drops trailing zero bytes of such strings, which keeps two keys of one width apart only when
    their bits differ, as wanted)."""
    rows = np.ascontiguousarray(values, dtype=np.float32)
    return rows.view(f"S{rows.shape[1] * 4}").ravel()


__all__ = ["SegmentRefiner", "UPSTREAM_ODDS"]

"""The reducer and clusterer stages, each a scikit-learn estimator that ``SegmentationModel`` takes as a
plug-in (as BERTopic takes ``umap_model=`` and ``hdbscan_model=``).

Any object with the same methods fits: a reducer has ``fit_transform``/``transform``; a clusterer has
``fit`` (setting ``labels_``, ``probabilities_`` and ``cluster_ids_``), ``predict_with_strength``,
``membership`` and ``training_membership``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from portal.segmentation.library_workarounds.hdbscan_prediction import LabelledHDBSCAN
from portal.segmentation.library_workarounds.neighbours import umap_with_exact_neighbours


class Reducer(Protocol):
    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray: ...

    def transform(self, X: np.ndarray) -> np.ndarray: ...


class Clusterer(Protocol):
    labels_: np.ndarray
    probabilities_: np.ndarray
    cluster_ids_: list[int]

    def fit(self, X: np.ndarray, y: Any = None) -> Clusterer: ...

    def predict_with_strength(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def membership(self, X: np.ndarray) -> np.ndarray: ...

    def training_membership(self) -> np.ndarray: ...


class ExactNeighbourUMAP(TransformerMixin, BaseEstimator):
    """UMAP on an exact neighbour graph (see ``library_workarounds.neighbours``), euclidean only.

    300 layout epochs with 3 negative samples (UMAP's defaults are 500 and 5) halve the fit time at
    equal or better planted-group recovery on the files measured (``make bench``). ``neighbours_share`` makes the
    neighbourhood a share of the fitted rows (learned schemas: 5%, between 30 and 100).
    """

    def __init__(self, n_neighbors: int = 200, min_dist: float = 0.0, n_components: int = 5,
                 n_epochs: int | None = 300, negative_sample_rate: int = 3, random_state: int = 42,
                 neighbours_share: float | None = None, min_neighbors: int = 15) -> None:
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_components = n_components
        self.n_epochs = n_epochs
        self.negative_sample_rate = negative_sample_rate
        self.random_state = random_state
        self.neighbours_share = neighbours_share
        self.min_neighbors = min_neighbors

    def neighbours_for(self, rows: int) -> int:
        """The neighbourhood on ``rows`` fitted rows: ``n_neighbors``, or with ``neighbours_share`` that share of
        the rows between ``min_neighbors`` and ``n_neighbors``; never more than the other rows."""
        wanted = self.n_neighbors
        if self.neighbours_share is not None:
            wanted = min(self.n_neighbors, max(self.min_neighbors, int(round(self.neighbours_share * rows))))
        return max(1, min(wanted, rows - 1))

    def fit_transform(self, X: np.ndarray, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit on X and return its embedding (UMAP's own, not a second transform of X)."""
        #: the neighbourhood these rows came to, for the manifest
        self.fitted_neighbours_ = self.neighbours_for(len(X))
        self.umap_, embedding = umap_with_exact_neighbours(
            X, n_neighbors=self.fitted_neighbours_, min_dist=self.min_dist,
            n_components=self.n_components, metric="euclidean", random_state=self.random_state,
            n_epochs=self.n_epochs, negative_sample_rate=self.negative_sample_rate)
        return np.asarray(embedding)

    def fit(self, X: np.ndarray, y: Any = None) -> ExactNeighbourUMAP:
        self.fit_transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "umap_")
        return np.asarray(self.umap_.transform(X))


class ShareScaledHDBSCAN(ClusterMixin, BaseEstimator):
    """HDBSCAN whose minimum segment is a share of the rows it is fitted on, able to place new points.

    The seed used 400 of 5,000 rows; a share keeps that meaning at any size. The density smoothing
    (``min_samples``) scales the same way: a fixed 50 (1% of a 5,000-row fit) merged two planted groups
    in smaller files (1,000 rows: ARI 0.83 → 0.95 at 1%; 1,500 rows, seed 3: 0.72 → 0.95) and changed
    nothing on the other 1,500- and 2,500-row files measured; fits of 5,000 rows are unchanged. The
    ``hdbscan`` package is kept because scikit-learn's own HDBSCAN cannot place new points.

    ``max_noise_share`` (off by default): when the minimum segment leaves more of the rows as noise, the
    planted-size groups it would need are smaller than it, so HDBSCAN is refitted with each of
    ``smaller_shares`` in turn and the first that leaves at most that share is kept (the least noisy one when
    none does). The density smoothing is the same at every share, so only the segment selection changes.
    """

    def __init__(self, min_cluster_share: float = 0.08, min_cluster_floor: int = 50,
                 min_samples_share: float = 0.01, min_samples_floor: int = 10,
                 cluster_selection_method: str = "eom", max_noise_share: float | None = None,
                 smaller_shares: tuple[float, ...] = ()) -> None:
        self.min_cluster_share = min_cluster_share
        self.max_noise_share = max_noise_share
        self.smaller_shares = smaller_shares
        self.min_cluster_floor = min_cluster_floor
        self.min_samples_share = min_samples_share
        self.min_samples_floor = min_samples_floor
        self.cluster_selection_method = cluster_selection_method

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A clusterer pickled in a release saved before the noise fallback existed loads with it off."""
        state.setdefault("max_noise_share", None)
        state.setdefault("smaller_shares", ())
        super().__setstate__(state)

    def min_cluster_size(self, rows: int, share: float | None = None) -> int:
        return max(self.min_cluster_floor, int(round((share or self.min_cluster_share) * rows)))

    def min_samples(self, rows: int) -> int:
        return min(self.min_cluster_size(rows), max(self.min_samples_floor, int(round(self.min_samples_share * rows))))

    def fit(self, X: np.ndarray, y: Any = None) -> ShareScaledHDBSCAN:
        min_samples = self.min_samples(len(X))
        limit = self.max_noise_share
        fits: list[tuple[float, float, Any]] = []  # (noise share, min cluster share, fitted HDBSCAN)
        for share in (self.min_cluster_share, *(self.smaller_shares if limit is not None else ())):
            fitted = LabelledHDBSCAN(min_cluster_size=self.min_cluster_size(len(X), share), min_samples=min_samples,
                                     cluster_selection_method=self.cluster_selection_method,
                                     prediction_data=True).fit(X)
            fits.append((float(np.mean(fitted.labels_ < 0)), share, fitted))
            if limit is None or fits[-1][0] <= limit:
                break
        # the first fit under the limit is the least noisy one (every fit before it was over); else the least noisy
        _, share, self.hdbscan_ = min(fits, key=lambda fit: fit[0])
        #: what the shares came to on these rows (and the noise each share tried left), for the manifest
        self.fitted_sizes_: dict[str, Any] = {"min_cluster_size": self.min_cluster_size(len(X), share),
                                              "min_samples": min_samples}
        if len(fits) > 1:
            self.fitted_sizes_.update(min_cluster_share=share,
                                      noise_by_share={f"{s:g}": round(n, 4) for n, s, _ in fits})
        self.labels_ = self.hdbscan_.labels_
        self.probabilities_ = self.hdbscan_.probabilities_
        self.cluster_ids_ = sorted(set(self.labels_.tolist()) - {-1})
        return self

    def predict_with_strength(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment (-1 for noise) and membership strength of new points, without refitting."""
        import hdbscan

        check_is_fitted(self, "hdbscan_")
        labels, strengths = hdbscan.approximate_predict(self.hdbscan_, X)
        return np.asarray(labels), np.asarray(strengths)

    def membership(self, X: np.ndarray) -> np.ndarray:
        """Soft membership of new points in each segment (columns in ``cluster_ids_`` order)."""
        import hdbscan

        check_is_fitted(self, "hdbscan_")
        return np.atleast_2d(hdbscan.membership_vector(self.hdbscan_, X))

    def training_membership(self) -> np.ndarray:
        """Soft membership of every fitted point, noise included."""
        import hdbscan

        check_is_fitted(self, "hdbscan_")
        return np.atleast_2d(hdbscan.all_points_membership_vectors(self.hdbscan_))

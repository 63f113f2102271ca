"""The segmentation pipeline: encoder → scaler → UMAP → HDBSCAN; fitted offline, placing rows online.

Placement never refits. Rows are reduced to their placement key (see ``features``); keys seen in
training answer from a table built at fit time (the fitted label of that key), other keys go through
``UMAP.transform`` + ``hdbscan.approximate_predict`` once per distinct key and are remembered.
Noise rows get their most likely segment from HDBSCAN's soft-membership vector, flagged as
reassigned with a low confidence, so every customer has a persona.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from portal.errors import TrainingError
from portal.features import (
    KEY_COLUMNS,
    FeatureWeights,
    feature_frame,
    fit_encoder_and_scaler,
    placement_keys,
)
from portal.neighbours import umap_with_exact_neighbours
from portal.numba_cache import cache_umap_kernels
from schemas import TIER_ORDER

log = logging.getLogger(__name__)

#: numba's workqueue threading layer (the one numba falls back to without TBB or OpenMP) aborts the whole
#: process when two threads run parallel code at once, so placements that reach UMAP take turns.
NUMBA_LOCK = threading.Lock()
#: Confidence given to noise rows reassigned to their most likely segment is scaled by this.
REASSIGNED_CONFIDENCE_CAP = 0.5
MAX_REMEMBERED_KEYS = 200_000
#: Above this many location × tier × month combinations the table is not precomputed.
MAX_DOMAIN_ROWS = 150_000
UNKNOWN_LOCATION = "\x00unknown location"


@dataclass(frozen=True)
class SegmentationParams:
    """Every tunable of the pipeline; recorded in the release manifest.

    Defaults were chosen against customer files with planted groups (``make bench``): every stage is
    fitted on at most ``umap_max_fit_rows`` customers (more rows fragment the embedding of these
    low-cardinality features into islands), a minimum segment of 8% of them, and the rest of the
    customers are placed with the fitted models like any upload. 300 layout epochs with 3 negative
    samples (UMAP's defaults are 500 and 5) halve the fit time at equal or better planted-group
    recovery on the files measured.
    """

    umap_n_neighbors: int = 200
    umap_min_dist: float = 0.0
    umap_n_components: int = 5
    umap_metric: str = "euclidean"
    umap_n_epochs: int | None = 300
    umap_negative_sample_rate: int = 3
    umap_max_fit_rows: int = 5_000
    random_state: int = 42
    hdbscan_min_cluster_share: float = 0.08
    hdbscan_min_cluster_floor: int = 50
    hdbscan_min_samples: int = 50
    hdbscan_selection: str = "eom"
    weights: FeatureWeights = field(default_factory=FeatureWeights)

    def min_cluster_size(self, rows: int) -> int:
        """Scale the minimum segment size with the data (the seed used 400 on 5,000 rows)."""
        return max(self.hdbscan_min_cluster_floor, int(round(self.hdbscan_min_cluster_share * rows)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Placement:
    """Where each row landed."""

    cluster_id: np.ndarray
    confidence: np.ndarray
    reassigned: np.ndarray

    @property
    def reassigned_count(self) -> int:
        return int(self.reassigned.sum())


Progress = Callable[[str], None]


class SegmentationModel:
    """Fitted encoder, scaler, UMAP and HDBSCAN plus the key → segment table."""

    def __init__(self, params: SegmentationParams | None = None) -> None:
        self.params = params or SegmentationParams()
        self._lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        """Drop what placement remembered about keys outside the fitted tables."""
        #: feature row -> answer computed through UMAP.transform + approximate_predict
        self._remembered: dict[bytes, tuple[int, float, bool]] = {}
        #: placement key -> answer, so a repeated key outside ``key_table_`` skips the encoder too
        self._answered: dict[tuple, tuple[int, float, bool]] = {}

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, customers: pd.DataFrame, progress: Progress | None = None) -> SegmentationModel:
        """Fit every stage on canonical customer rows; sets ``labels_`` for the training rows."""
        from portal.hdbscan_prediction import LabelledHDBSCAN

        cache_umap_kernels()

        say = progress or (lambda message: log.info("%s", message))
        p = self.params
        if len(customers) < max(50, 2 * p.hdbscan_min_cluster_floor):
            raise TrainingError(f"{len(customers)} usable customers is too few to find segments; need at least "
                                f"{max(50, 2 * p.hdbscan_min_cluster_floor)}.")
        keys = placement_keys(customers)
        months = keys["join_year"] * 12 + keys["join_month"] - 1
        self.reference_month_ = int(months.max())
        self.max_tenure_ = int(self.reference_month_ - months.min())
        self.defaults_ = {column: keys[column].mode().iloc[0] for column in KEY_COLUMNS}
        self.defaults_ = {k: (int(v) if k.startswith("join_") else str(v)) for k, v in self.defaults_.items()}
        self.locations_ = sorted(set(keys["location"].astype(str)))
        frame = feature_frame(keys, self.reference_month_, self.max_tenure_)
        rng = np.random.default_rng(p.random_state)
        fit_rows = np.arange(len(frame))
        if len(frame) > p.umap_max_fit_rows:
            fit_rows = np.sort(rng.choice(len(frame), size=p.umap_max_fit_rows, replace=False))
        say("encoding features")
        # Every stage is fitted on the same sample. With the encoder fitted on all rows of a large file and
        # UMAP on the sample, the planted groups fragmented (50k rows: ARI 0.45 with 20% noise, against
        # 0.90 and 0% with the encoder fitted on the sample).
        self.encoder_, self.scaler_ = fit_encoder_and_scaler(frame.iloc[fit_rows], p.weights)
        X = self.scaler_.transform(self.encoder_.transform(frame))

        say(f"fitting UMAP on {len(fit_rows)} of {len(X)} rows")
        started = time.perf_counter()
        self.umap_, embedding_fit = umap_with_exact_neighbours(
            X[fit_rows], n_neighbors=min(p.umap_n_neighbors, len(fit_rows) - 1), min_dist=p.umap_min_dist,
            n_components=p.umap_n_components, metric=p.umap_metric, random_state=p.random_state,
            n_epochs=p.umap_n_epochs, negative_sample_rate=p.umap_negative_sample_rate)
        self.timings_ = {"umap_fit_s": round(time.perf_counter() - started, 2)}

        min_cluster = p.min_cluster_size(len(fit_rows))
        say(f"fitting HDBSCAN (min_cluster_size={min_cluster})")
        started = time.perf_counter()
        min_samples = min(p.hdbscan_min_samples, min_cluster)
        self.hdbscan_ = LabelledHDBSCAN(min_cluster_size=min_cluster, min_samples=min_samples,
                                        cluster_selection_method=p.hdbscan_selection,
                                        prediction_data=True).fit(embedding_fit)
        self.timings_["hdbscan_fit_s"] = round(time.perf_counter() - started, 2)
        labels_fit = self.hdbscan_.labels_
        segments = sorted(set(labels_fit.tolist()) - {-1})
        if len(segments) < 1:
            raise TrainingError("HDBSCAN found no segment in this data (everything is noise).")
        self.cluster_ids_ = segments

        strengths_fit = self.hdbscan_.probabilities_
        soft_fit = self._soft_assign_training(len(fit_rows))
        self.embedding_sample_ = embedding_fit[: min(len(embedding_fit), 5000)]
        self.embedding_sample_labels_ = labels_fit[: len(self.embedding_sample_)]
        self.noise_share_ = float(np.mean(labels_fit == -1))
        self.table_ = self._build_table(X[fit_rows], labels_fit, strengths_fit, soft_fit)
        started = time.perf_counter()
        domain = self._precompute_domain(keys)
        self.key_table_ = self._answers_for_keys(pd.concat([keys, domain], ignore_index=True).drop_duplicates())
        self.timings_["table_s"] = round(time.perf_counter() - started, 2)
        say(f"placement table: {len(self.table_)} feature rows, {len(self.key_table_)} keys")

        labels, strengths = np.full(len(X), -1), np.zeros(len(X))
        labels[fit_rows], strengths[fit_rows] = labels_fit, strengths_fit
        rest = np.setdiff1d(np.arange(len(X)), fit_rows)
        if len(rest):
            say(f"placing the other {len(rest)} training rows")
            placed = self.place_keys(keys.iloc[rest])
            labels[rest], strengths[rest] = placed.cluster_id, placed.confidence
        self.labels_ = labels
        self.fit_rows_ = fit_rows
        self.fitted_labels_ = labels_fit
        return self

    def _soft_assign_training(self, rows: int) -> np.ndarray:
        """Most likely segment of every training row, noise included (soft clustering)."""
        import hdbscan

        if rows == 0:
            return np.zeros(0, dtype=int)
        vectors = np.atleast_2d(hdbscan.all_points_membership_vectors(self.hdbscan_))
        return np.asarray(self.cluster_ids_)[vectors.argmax(axis=1)] if vectors.shape[1] else \
            np.full(rows, self.cluster_ids_[0])

    def _build_table(self, X: np.ndarray, labels: np.ndarray, strengths: np.ndarray,
                     soft: np.ndarray) -> dict[bytes, tuple[int, float, bool]]:
        """Feature row → (segment, confidence, reassigned) from the fitted labels (majority per row)."""
        frame = pd.DataFrame({"row": _row_keys(X), "label": labels, "strength": strengths, "soft": soft})
        table: dict[bytes, tuple[int, float, bool]] = {}
        for row, group in frame.groupby("row", sort=False):
            clustered = group[group["label"] >= 0]
            if len(clustered) * 2 >= len(group) and len(clustered):
                label = int(clustered["label"].mode().iloc[0])
                confidence = float(clustered.loc[clustered["label"] == label, "strength"].mean())
                table[row] = (label, round(confidence, 4), False)
            else:
                table[row] = (int(group["soft"].mode().iloc[0]), REASSIGNED_CONFIDENCE_CAP * 0.5, True)
        return table

    def _precompute_domain(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Place every (known location or an unknown one) × gender × tier × joining month once, at training
        time, so uploads answer from the table instead of paying ~1 ms per new row in UMAP.transform.
        Returns the domain's placement keys."""
        locations = sorted(set(keys["location"])) + [UNKNOWN_LOCATION]
        genders = sorted(set(keys["gender"]) | {"Unknown"})
        months = np.arange(self.reference_month_ - self.max_tenure_, self.reference_month_ + 1)
        size = len(locations) * len(genders) * len(TIER_ORDER) * len(months)
        if size > MAX_DOMAIN_ROWS:
            log.info("placement domain of %d rows is too large to precompute; new rows are placed on demand", size)
            return keys.iloc[:0]
        grid = pd.MultiIndex.from_product([locations, genders, list(TIER_ORDER), months],
                                          names=["location", "gender", "tier", "m"])
        domain = grid.to_frame(index=False).assign(join_year=lambda f: f["m"] // 12,
                                                   join_month=lambda f: f["m"] % 12 + 1)[list(KEY_COLUMNS)]
        X = self._vectors(domain)
        rows = _row_keys(X)
        new = {}
        for i, row in enumerate(rows):
            if row not in self.table_ and row not in new:
                new[row] = i
        if new:
            answers = self._place_vectors(X[list(new.values())])
            self.table_.update(zip(new.keys(), answers))
        return domain

    # -- placing -------------------------------------------------------------------------------
    def known_locations(self) -> list[str]:
        """Locations of the training customers (the smart form's dropdown), including those only in rows
        outside the fitted sample, which are placed with the fitted sample's average area profile."""
        return list(self.locations_)

    def place(self, customers: pd.DataFrame) -> Placement:
        """Segment, confidence and reassigned flag for canonical customer rows (order kept)."""
        return self.place_keys(placement_keys(customers))

    def place_keys(self, keys: pd.DataFrame) -> Placement:
        if keys.empty:
            return Placement(np.zeros(0, int), np.zeros(0), np.zeros(0, bool))
        codes, uniques = pd.MultiIndex.from_frame(keys[list(KEY_COLUMNS)]).factorize()
        answers: list[tuple[int, float, bool] | None] = [self.key_table_.get(k) or self._answered.get(k)
                                                         for k in uniques]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            unknown = uniques[missing].to_frame(index=False, name=list(KEY_COLUMNS))
            computed = self._answers_for_keys(unknown)
            with self._lock:
                if len(self._answered) > MAX_REMEMBERED_KEYS:
                    self._answered.clear()
                self._answered.update(computed)
            for i, answer in zip(missing, computed.values()):
                answers[i] = answer
        label_of = np.array([a[0] for a in answers])
        conf_of = np.array([a[1] for a in answers])
        flag_of = np.array([a[2] for a in answers])
        return Placement(label_of[codes], conf_of[codes], flag_of[codes])

    def _answers_for_keys(self, keys: pd.DataFrame) -> dict[tuple, tuple[int, float, bool]]:
        """Key → answer through the feature-row table; rows it lacks take the full path once."""
        keys = keys.drop_duplicates()
        rows = _row_keys(self._vectors(keys))
        answers = [self.table_.get(r) or self._remembered.get(r) for r in rows]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            computed = self._place_unseen(keys.iloc[missing])
            with self._lock:
                if len(self._remembered) > MAX_REMEMBERED_KEYS:
                    self._remembered.clear()
                for i, answer in zip(missing, computed):
                    answers[i] = answer
                    self._remembered[rows[i]] = answer
        return dict(zip(map(tuple, keys.itertuples(index=False, name=None)), answers))

    def _vectors(self, keys: pd.DataFrame) -> np.ndarray:
        """Model-ready feature rows for placement keys (encoder → scaler)."""
        frame = feature_frame(keys, self.reference_month_, self.max_tenure_)
        return np.ascontiguousarray(self.scaler_.transform(self.encoder_.transform(frame)))

    def _place_unseen(self, keys: pd.DataFrame) -> list[tuple[int, float, bool]]:
        """Full path for keys the table does not know: transform + approximate_predict."""
        return self._place_vectors(self._vectors(keys))

    def _place_vectors(self, X: np.ndarray, batch: int = 5000) -> list[tuple[int, float, bool]]:
        out: list[tuple[int, float, bool]] = []
        with NUMBA_LOCK:
            for start in range(0, len(X), batch):
                out.extend(self._place_batch(X[start:start + batch]))
        return out

    def _place_batch(self, X: np.ndarray) -> list[tuple[int, float, bool]]:
        import hdbscan

        embedded = self.umap_.transform(X)
        labels, strengths = hdbscan.approximate_predict(self.hdbscan_, embedded)
        noise = labels < 0
        if noise.any():
            vectors = np.atleast_2d(hdbscan.membership_vector(self.hdbscan_, embedded[noise]))
            labels = labels.copy()
            labels[noise] = np.asarray(self.cluster_ids_)[vectors.argmax(axis=1)]
            strengths = strengths.copy()
            strengths[noise] = vectors.max(axis=1) * REASSIGNED_CONFIDENCE_CAP
        return [(int(lab), round(float(s), 4), bool(n)) for lab, s, n in zip(labels, strengths, noise)]

    def warm_up(self) -> float:
        """Compile numba's transform path now, so the first real request does not pay for it."""
        started = time.perf_counter()
        probe = pd.DataFrame([("Warm-up Town", "Unknown", "Silver", 2000, 1)], columns=KEY_COLUMNS)
        self._place_unseen(probe)
        return time.perf_counter() - started


def _row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable identity of each feature row: rows with equal features share one placement."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [row.tobytes() for row in X]


def metrics_of(model: SegmentationModel, sample: int = 2000) -> dict[str, Any]:
    """Cluster count, noise share, DBCV and silhouette (in the embedding, on a sample)."""
    from hdbscan.validity import validity_index
    from sklearn.metrics import silhouette_score

    embedding = model.embedding_sample_
    labels = model.embedding_sample_labels_
    rng = np.random.default_rng(0)
    idx = rng.choice(len(embedding), size=min(sample, len(embedding)), replace=False)
    emb, lab = embedding[idx].astype(np.float64), labels[idx]
    clustered = lab >= 0
    out: dict[str, Any] = {"clusters": len(model.cluster_ids_), "noise_share": round(model.noise_share_, 4),
                           "dbcv": None, "silhouette": None}
    if len(set(lab[clustered])) >= 2:
        out["silhouette"] = round(float(silhouette_score(emb[clustered], lab[clustered])), 4)
        try:
            out["dbcv"] = round(float(validity_index(emb, lab)), 4)
        except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
            log.warning("DBCV could not be computed: %s", exc)
    return out


__all__ = ["Placement", "SegmentationModel", "SegmentationParams", "metrics_of"]

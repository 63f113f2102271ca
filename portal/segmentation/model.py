"""The segmentation pipeline: encoder → scaler → reducer (UMAP) → clusterer (HDBSCAN); fitted offline,
placing rows online, saving and loading itself.

Placement never refits. Rows are reduced to their placement key (see ``features``); keys seen in
training answer from a table built at fit time (the fitted label of that key), other keys go through
the reducer's ``transform`` + the clusterer's prediction once per distinct key and are remembered.
Noise rows get their most likely segment from HDBSCAN's soft-membership vector, flagged as
reassigned with a low confidence, so every customer has a persona.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone

from portal.errors import TrainingError
from portal.segmentation.features import (
    KEY_COLUMNS,
    FeatureWeights,
    feature_frame,
    fit_encoder_and_scaler,
    placement_keys,
)
from portal.segmentation.library_workarounds.numba_cache import cache_umap_kernels
from portal.segmentation.stages import Clusterer, ExactNeighbourUMAP, Reducer, ShareScaledHDBSCAN
from schemas import TIER_ORDER

log = logging.getLogger(__name__)

#: numba's workqueue threading layer (the one numba falls back to without TBB or OpenMP) aborts the whole
#: process when two threads run parallel code at once, so placements that reach UMAP take turns.
NUMBA_LOCK = threading.Lock()
#: Confidence given to noise rows reassigned to their most likely segment is scaled by this.
REASSIGNED_CONFIDENCE_CAP = 0.5
MAX_REMEMBERED_KEYS = 200_000
UNKNOWN_LOCATION = "\x00unknown location"
#: Fitted state, by the file it is saved in; the seed's artifact names are kept for the four stages.
STAGE_FILES = {"encoder.pkl": "encoder_", "scaler.pkl": "scaler_", "umap.pkl": "reducer_",
               "hdbscan.pkl": "clusterer_"}
STATE_FILE = "placement_table.pkl"
#: What placement remembers between requests: rebuilt on load, never saved.
_REMEMBERED = ("_lock", "_remembered", "_answered", "counters")
#: Fewer usable customers than this cannot be segmented.
MIN_TRAINING_ROWS = 100
SERVING_STATE = ("params", "table_", "key_table_", "cluster_ids_", "reference_month_", "max_tenure_",
                 "noise_share_", "defaults_", "locations_", "relabel_")

Answer = tuple[int, float, bool]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SegmentationParams:
    """Tunables of the pipeline around its stages; recorded in the release manifest.

    Every stage is fitted on at most ``max_fit_rows`` customers (more rows fragment the embedding of
    these low-cardinality features into islands; 10k rows fitted whole: ARI 0.58 against 0.78 with the
    cap) and the rest of the customers are placed with the fitted models like any upload.
    """

    max_fit_rows: int = 5_000
    random_state: int = 42
    #: Above this many location × gender × tier × month combinations the table is not precomputed.
    max_domain_rows: int = 150_000
    weights: FeatureWeights = field(default_factory=FeatureWeights)

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


@dataclass
class PlacementCounters:
    """How placements were answered since the model was loaded or last told to ``forget``."""

    keys_encoded: int = 0
    rows_through_reducer: int = 0


class SegmentationModel:
    """Fitted encoder, scaler, reducer and clusterer plus the key → segment table."""

    def __init__(self, params: SegmentationParams | None = None, reducer: Reducer | None = None,
                 clusterer: Clusterer | None = None) -> None:
        self.params = params or SegmentationParams()
        self.reducer = reducer if reducer is not None else ExactNeighbourUMAP(random_state=self.params.random_state)
        self.clusterer = clusterer if clusterer is not None else ShareScaledHDBSCAN()
        self._lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        """Drop what placement remembered about keys outside the fitted tables, and zero the counters."""
        #: feature row -> answer computed through the reducer and clusterer
        self._remembered: dict[bytes, Answer] = {}
        #: placement key -> answer, so a repeated key outside ``key_table_`` skips the encoder too
        self._answered: dict[tuple, Answer] = {}
        self.counters = PlacementCounters()

    # -- saving --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the lock and what placement remembered (rebuilt on load)."""
        return {k: v for k, v in self.__dict__.items() if k not in _REMEMBERED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.forget()

    def save(self, folder: Path) -> list[str]:
        """Write the fitted stages and the placement state into ``folder``; returns the file names."""
        for name, attribute in STAGE_FILES.items():
            joblib.dump(getattr(self, attribute), folder / name)
        joblib.dump({name: getattr(self, name) for name in SERVING_STATE}, folder / STATE_FILE)
        return [*STAGE_FILES, STATE_FILE]

    @classmethod
    def load(cls, folder: Path) -> SegmentationModel:
        """The model ``save`` wrote, ready to place rows (fit-time-only attributes are not kept)."""
        cache_umap_kernels()
        state = joblib.load(folder / STATE_FILE)
        stages = {attribute: joblib.load(folder / name) for name, attribute in STAGE_FILES.items()}
        model = cls(state["params"], reducer=stages["reducer_"], clusterer=stages["clusterer_"])
        model.__dict__.update({**state, **stages})
        return model

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, customers: pd.DataFrame, progress: Progress | None = None) -> SegmentationModel:
        """Fit every stage on canonical customer rows; sets ``labels_`` for the training rows."""
        cache_umap_kernels()
        say = progress or (lambda message: log.info("%s", message))
        p = self.params
        if len(customers) < MIN_TRAINING_ROWS:
            raise TrainingError(f"{len(customers)} usable customers is too few to find segments; need at least "
                                f"{MIN_TRAINING_ROWS}.")
        keys = placement_keys(customers)
        months = keys["join_year"] * 12 + keys["join_month"] - 1
        self.reference_month_ = int(months.max())
        self.max_tenure_ = int(self.reference_month_ - months.min())
        modes = {column: keys[column].mode().iloc[0] for column in KEY_COLUMNS}
        self.defaults_: dict[str, Any] = {k: (int(v) if k.startswith("join_") else str(v)) for k, v in modes.items()}
        self.locations_ = sorted(set(keys["location"].astype(str)))
        frame = feature_frame(keys, self.reference_month_, self.max_tenure_)
        rng = np.random.default_rng(p.random_state)
        fit_rows = np.arange(len(frame))
        if len(frame) > p.max_fit_rows:
            fit_rows = np.sort(rng.choice(len(frame), size=p.max_fit_rows, replace=False))
        say("encoding features")
        # Every stage is fitted on the same sample. With the encoder fitted on all rows of a large file and
        # UMAP on the sample, the planted groups fragmented (50k rows: ARI 0.45 with 20% noise, against
        # 0.90 and 0% with the encoder fitted on the sample).
        self.encoder_, self.scaler_ = fit_encoder_and_scaler(frame.iloc[fit_rows], p.weights)
        X = self._scaled(frame)

        say(f"fitting the reducer on {len(fit_rows)} of {len(X)} rows")
        started = time.perf_counter()
        self.reducer_ = clone(self.reducer)
        embedding_fit = self.reducer_.fit_transform(X[fit_rows])
        self.timings_ = {"umap_fit_s": round(time.perf_counter() - started, 2)}

        say("fitting the clusterer")
        started = time.perf_counter()
        self.clusterer_ = clone(self.clusterer).fit(embedding_fit)
        self.timings_["hdbscan_fit_s"] = round(time.perf_counter() - started, 2)
        say(f"clusterer fitted: {getattr(self.clusterer_, 'fitted_sizes_', {})}")
        labels_fit = self.clusterer_.labels_
        self.cluster_ids_ = list(self.clusterer_.cluster_ids_)
        if not self.cluster_ids_:
            raise TrainingError("The clusterer found no segment in this data (everything is noise).")
        self.relabel_ = {c: c for c in self.cluster_ids_}

        strengths_fit = self.clusterer_.probabilities_
        self.embedding_sample_ = embedding_fit[: min(len(embedding_fit), 5000)]
        self.embedding_sample_labels_ = labels_fit[: len(self.embedding_sample_)]
        self.noise_share_ = float(np.mean(labels_fit == -1))
        self.table_ = self._build_table(X[fit_rows], labels_fit, strengths_fit, self._soft_assign_training())
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

    def relabel(self, mapping: dict[int, int]) -> SegmentationModel:
        """Give the segments other ids (the stable ids of ``segment_ids``): every stored label and every later
        placement answers ``mapping[id]``; noise (-1) stays noise."""
        self.relabel_ = {raw: mapping[current] for raw, current in self.relabel_.items()}
        self.cluster_ids_ = [mapping[c] for c in self.cluster_ids_]
        for name in ("table_", "key_table_"):
            answers = getattr(self, name)
            setattr(self, name, {k: (mapping[label], conf, flag) for k, (label, conf, flag) in answers.items()})
        for name in ("labels_", "fitted_labels_", "embedding_sample_labels_"):
            if hasattr(self, name):  # fit-time labels are not kept in a saved release
                setattr(self, name, relabelled(getattr(self, name), mapping))
        self.forget()
        return self

    def _soft_assign_training(self) -> np.ndarray:
        """Most likely segment of every training row, noise included (soft clustering)."""
        vectors = self.clusterer_.training_membership()
        if vectors.shape[1] == 0:
            return np.full(len(self.clusterer_.labels_), self.cluster_ids_[0])
        return np.asarray(self.cluster_ids_)[vectors.argmax(axis=1)]

    def _build_table(self, X: np.ndarray, labels: np.ndarray, strengths: np.ndarray,
                     soft: np.ndarray) -> dict[bytes, Answer]:
        """Feature row → (segment, confidence, reassigned) from the fitted labels (majority per row)."""
        frame = pd.DataFrame({"row": _row_keys(X), "label": labels, "strength": strengths, "soft": soft})
        table: dict[bytes, Answer] = {}
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
        if size > self.params.max_domain_rows:
            log.info("placement domain of %d rows is too large to precompute; new rows are placed on demand", size)
            return keys.iloc[:0]
        grid = pd.MultiIndex.from_product([locations, genders, list(TIER_ORDER), months],
                                          names=["location", "gender", "tier", "m"])
        domain = grid.to_frame(index=False).assign(join_year=lambda f: f["m"] // 12,
                                                   join_month=lambda f: f["m"] % 12 + 1)[list(KEY_COLUMNS)]
        X = self._vectors(domain)
        new: dict[bytes, int] = {}
        for i, row in enumerate(_row_keys(X)):
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
        """``place`` for rows already reduced to placement keys."""
        if keys.empty:
            return Placement(np.zeros(0, int), np.zeros(0), np.zeros(0, bool))
        codes, uniques = pd.MultiIndex.from_frame(keys[list(KEY_COLUMNS)]).factorize()
        answers: list[Answer | None] = [self.key_table_.get(k) or self._answered.get(k) for k in uniques]
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
        resolved = cast(list[Answer], answers)
        label_of = np.array([a[0] for a in resolved])
        conf_of = np.array([a[1] for a in resolved])
        flag_of = np.array([a[2] for a in resolved])
        return Placement(label_of[codes], conf_of[codes], flag_of[codes])

    def place_through_reducer(self, keys: pd.DataFrame) -> list[Answer]:
        """The reference path, ignoring every table: reducer ``transform`` + clusterer prediction."""
        return self._place_vectors(self._vectors(keys))

    def _answers_for_keys(self, keys: pd.DataFrame) -> dict[tuple, Answer]:
        """Key → answer through the feature-row table; rows it lacks take the full path once."""
        keys = keys.drop_duplicates()
        rows = _row_keys(self._vectors(keys))
        answers = [self.table_.get(r) or self._remembered.get(r) for r in rows]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            computed = self.place_through_reducer(keys.iloc[missing])
            with self._lock:
                if len(self._remembered) > MAX_REMEMBERED_KEYS:
                    self._remembered.clear()
                for i, answer in zip(missing, computed):
                    answers[i] = answer
                    self._remembered[rows[i]] = answer
        return dict(zip(map(tuple, keys.itertuples(index=False, name=None)), cast(list[Answer], answers)))

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        return np.ascontiguousarray(self.scaler_.transform(self.encoder_.transform(frame)), dtype=np.float32)

    def _vectors(self, keys: pd.DataFrame) -> np.ndarray:
        """Model-ready feature rows for placement keys (encoder → scaler)."""
        with self._lock:
            self.counters.keys_encoded += len(keys)
        return self._scaled(feature_frame(keys, self.reference_month_, self.max_tenure_))

    def _place_vectors(self, X: np.ndarray, batch: int = 5000) -> list[Answer]:
        out: list[Answer] = []
        with NUMBA_LOCK:
            self.counters.rows_through_reducer += len(X)
            for start in range(0, len(X), batch):
                out.extend(self._place_batch(X[start:start + batch]))
        return out

    def _place_batch(self, X: np.ndarray) -> list[Answer]:
        embedded = self.reducer_.transform(X)
        labels, strengths = self.clusterer_.predict_with_strength(embedded)
        labels = relabelled(labels, self.relabel_)
        noise = labels < 0
        if noise.any():
            vectors = self.clusterer_.membership(embedded[noise])
            labels = labels.copy()
            labels[noise] = np.asarray(self.cluster_ids_)[vectors.argmax(axis=1)]
            strengths = strengths.copy()
            strengths[noise] = vectors.max(axis=1) * REASSIGNED_CONFIDENCE_CAP
        return [(int(lab), round(float(s), 4), bool(n)) for lab, s, n in zip(labels, strengths, noise)]

    def warm_up(self) -> float:
        """Compile numba's transform path now, so the first real request does not pay for it."""
        started = time.perf_counter()
        probe = pd.DataFrame([("Warm-up Town", "Unknown", "Silver", 2000, 1)], columns=list(KEY_COLUMNS))
        self.place_through_reducer(probe)
        return time.perf_counter() - started


def relabelled(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``labels`` with each id replaced by ``mapping[id]``; ids the mapping lacks (noise) are kept."""
    labels = np.asarray(labels)
    if not len(labels) or not mapping:
        return labels.copy()
    keys = np.array(sorted(mapping))
    values = np.array([mapping[k] for k in keys])
    at = np.clip(np.searchsorted(keys, labels), 0, len(keys) - 1)
    return np.where(keys[at] == labels, values[at], labels).astype(labels.dtype)


def _row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable identity of each feature row: rows with equal features share one placement."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [row.tobytes() for row in X]


__all__ = ["Placement", "PlacementCounters", "SegmentationModel", "SegmentationParams", "relabelled"]

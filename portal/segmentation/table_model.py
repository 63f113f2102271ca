"""The learned-schema pipeline: schema features → scaler → reducer (UMAP) → clusterer (HDBSCAN), for any
customer table; fitted offline, placing rows online, saving and loading itself.

Continuous columns make the loyalty model's key table impossible, so serving answers from a
nearest-neighbour vote in the scaled feature space over the fitted rows and their final labels (noise
rows carry their most likely segment; ``table_vote``). The reducer ``transform`` + ``approximate_predict``
path stays the reference: at training time the fast path's agreement with it on held-out rows is
measured, recorded (``fast_path_agreement``) and used as a release gate. A few rows (the smart form) are
read and encoded by ``table_small_batch`` from the same fitted state, with the same answers as in a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

from portal.errors import TrainingError
from portal.ingestion.roles import TableSchema
from portal.segmentation.library_workarounds.numba_cache import cache_umap_kernels
from portal.segmentation.model import (
    MIN_TRAINING_ROWS,
    NUMBA_LOCK,
    REASSIGNED_CONFIDENCE_CAP,
    Placement,
    relabelled,
)
from portal.segmentation.stages import Clusterer, ExactNeighbourUMAP, Reducer, ShareScaledHDBSCAN
from portal.segmentation.table_dissolver import MixedSegmentDissolver
from portal.segmentation.table_features import (
    BLOCK_BUDGET,
    CATEGORY_DISTANCE,
    DEPENDENCE_FLOOR,
    DEPENDENCE_POWER,
    DEPENDENCE_REFERENCE,
    PROFILE_FROM_CATEGORIES,
    TableFeatures,
)
from portal.segmentation.table_merger import ValueCellMerger
from portal.segmentation.table_refiner import UPSTREAM_ODDS, SegmentRefiner
from portal.segmentation.table_small_batch import SMALL_BATCH_ROWS, SmallBatchEncoder, small_batch_encoder
from portal.segmentation.table_splitter import LOCAL_DEPENDENCE, SegmentSplitter
from portal.segmentation.table_vote import GridNeighbours, weighted_vote

log = logging.getLogger(__name__)
KIND = "table"
#: Fitted state, by the file it is saved in.
TABLE_STAGE_FILES = {"features.pkl": "features_", "umap.pkl": "reducer_", "hdbscan.pkl": "clusterer_",
                     "neighbours.pkl": "neighbours_"}
TABLE_STATE_FILE = "table_state.pkl"
TABLE_REQUIRED_FILES = (*TABLE_STAGE_FILES, TABLE_STATE_FILE)
#: The refining stage's file: releases trained before it existed place rows as the clusterer and fast path do.
REFINER_FILE = "refiner.pkl"
#: UMAP neighbourhood for learned schemas: 5% of the fitted rows, between 30 and 100. The loyalty model's 200
#: suits its few distinct rows; on continuous tables it blurred segments into a continuum (marketing_campaign:
#: fast-path agreement 74%, noise 13%; order export: stability across seeds 0.69). A fixed 30 left small pockets
#: of customers (a group's members who live in another group's city) as islands of their own, which split or
#: mislabelled planted groups. With categories of ten values or more described by their members, 100 gave ARI
#: 0.89-1.00 on 14 planted retail and order files with two seeds each (27 of the 28 fits found exactly the four
#: groups); 70 found five on one of them with another seed (ARI 0.68), 30 did on two (0.64). 200-row tables keep
#: 30. Measured in ``bench/schemas.py`` (neighbourhoods). The layout keeps 300 epochs: 200 left 4% noise on one
#: of those files and its fast-path agreement at 95.6%, under the release gate.
TABLE_UMAP_NEIGHBOURS = 100
TABLE_UMAP_NEIGHBOURS_SHARE = 0.05
TABLE_UMAP_MIN_NEIGHBOURS = 30
#: Smallest segment and density smoothing floors for learned schemas: the loyalty floors (50 rows, 10 samples)
#: allowed at most two segments on the 200-row mall_customers table (and none with categories 1 apart);
#: 20 and 5 gave six there and change nothing above 1,000 rows, where the shares decide.
TABLE_MIN_CLUSTER_FLOOR, TABLE_MIN_SAMPLES_FLOOR = 20, 5
#: When the smallest segment (8% of the fitted rows) leaves more than 15% of them as noise, groups smaller than it
#: fell apart into noise: HDBSCAN is refitted at 6%, then 4%. On an eight-group loyalty file (seed 5) 8% left 21%
#: as noise and merged two groups (ARI 0.66); 6% left none (0.76). Of 39 files (loyalty structures, 14 planted
#: retail and order files, the second generator, the real files) only one other left more than 15% (18%, ARI the
#: same at 6%); a global 6% or 4% split a planted order file and a second-generator file (0.99 -> 0.92, 0.86 -> 0.74).
TABLE_MAX_NOISE_SHARE, TABLE_SMALLER_SHARES = 0.15, (0.06, 0.04)
#: Folds of the agreement check on tables with no rows outside the fitted sample.
FOLDS = 5
SERVING_STATE = ("params", "schema", "cluster_ids_", "noise_share_", "vote_labels_", "vote_noise_",
                 "fast_path_agreement_", "relabel_", "clusterer_ids_", "families_")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TableParams:
    """Tunables around the stages; recorded in the release manifest."""

    max_fit_rows: int = 5_000
    random_state: int = 42
    #: neighbours voting in the fast path (distance-weighted)
    neighbours: int = 15
    #: held-out rows on which the fast path is compared with the full path at training time
    agreement_rows: int = 2_000
    #: below this agreement the release is refused
    min_fast_path_agreement: float = 0.97
    #: feature blocks: the most one block may spread rows (E[d²]), and how far apart two categories sit
    block_budget: float = BLOCK_BUDGET
    category_distance: float = CATEGORY_DISTANCE
    #: dependence factor of each block, (AMI / reference) ** power in [floor, 1] (``TableFeatures``)
    dependence_floor: float = DEPENDENCE_FLOOR
    dependence_reference: float | None = DEPENDENCE_REFERENCE
    dependence_power: float = DEPENDENCE_POWER
    #: member profiles: "histogram" (Hellinger) or "mean", scaled to this share of the block budget (0: capped)
    profile: str = "histogram"
    profile_budget: float = 1.0
    #: a categorical column with this many categories or more is described by its members, not one-hot
    profile_from_categories: int = PROFILE_FROM_CATEGORIES
    #: the refining stage (``table_refiner``): how much more likely the clusterer's segment is (None: no stage)
    upstream_odds: float | None = UPSTREAM_ODDS
    #: splits before it (``table_splitter``): blocks this dependent within segments are weighed as one (None:
    #: no splits; they need the refining stage, which serves them)
    local_dependence: float | None = LOCAL_DEPENDENCE
    #: segments that differ only in a value one of them holds throughout are merged first (``table_merger``)
    merge_value_cells: bool = True
    #: after the splits, segments that are a mixture of the others once one block is set aside are dissolved
    #: (``table_dissolver``; needs the refining stage)
    dissolve_mixed: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def table_reducer(random_state: int) -> ExactNeighbourUMAP:
    """The learned-schema reducer: UMAP whose neighbourhood is a share of the fitted rows."""
    return ExactNeighbourUMAP(n_neighbors=TABLE_UMAP_NEIGHBOURS, neighbours_share=TABLE_UMAP_NEIGHBOURS_SHARE,
                              min_neighbors=TABLE_UMAP_MIN_NEIGHBOURS, random_state=random_state)


class TableSegmentationModel:
    """Fitted schema features, reducer, clusterer and the neighbour index that serves placements."""

    kind = KIND

    def __init__(self, schema: TableSchema, params: TableParams | None = None, reducer: Reducer | None = None,
                 clusterer: Clusterer | None = None) -> None:
        self.schema = schema
        self.params = params or TableParams()
        self.reducer = reducer if reducer is not None else table_reducer(self.params.random_state)
        self.clusterer = clusterer if clusterer is not None else ShareScaledHDBSCAN(
            min_cluster_floor=TABLE_MIN_CLUSTER_FLOOR, min_samples_floor=TABLE_MIN_SAMPLES_FLOOR,
            max_noise_share=TABLE_MAX_NOISE_SHARE, smaller_shares=TABLE_SMALLER_SHARES)
        self.refiner_: SegmentRefiner | None = None

    # -- saving --------------------------------------------------------------------------------
    def save(self, folder: Path) -> list[str]:
        """Write the fitted stages and the serving state into ``folder``; returns the file names."""
        for name, attribute in TABLE_STAGE_FILES.items():
            joblib.dump(getattr(self, attribute), folder / name)
        state = {name: getattr(self, name) for name in SERVING_STATE}
        state["schema"] = self.schema.model_dump(mode="json")
        joblib.dump(state, folder / TABLE_STATE_FILE)
        if self.refiner_ is None:
            return [*TABLE_STAGE_FILES, TABLE_STATE_FILE]
        joblib.dump(self.refiner_, folder / REFINER_FILE)
        return [*TABLE_STAGE_FILES, TABLE_STATE_FILE, REFINER_FILE]

    @classmethod
    def load(cls, folder: Path) -> TableSegmentationModel:
        """The model ``save`` wrote, ready to place rows."""
        cache_umap_kernels()
        state = joblib.load(folder / TABLE_STATE_FILE)
        stages = {attribute: joblib.load(folder / name) for name, attribute in TABLE_STAGE_FILES.items()}
        schema = TableSchema.model_validate(state.pop("schema"))
        model = cls(schema, state["params"], reducer=stages["reducer_"], clusterer=stages["clusterer_"])
        model.__dict__.update({**state, **stages})
        # releases saved before segments could be split: every segment is the clusterer's own
        model.__dict__.setdefault("clusterer_ids_", list(model.cluster_ids_))
        model.__dict__.setdefault("families_", {})
        model.refiner_ = joblib.load(folder / REFINER_FILE) if (folder / REFINER_FILE).exists() else None
        return model

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, progress: Progress | None = None, measure_agreement: bool = True,
            features: TableFeatures | None = None) -> TableSegmentationModel:
        """Fit every stage on the customer table; sets ``labels_`` (every row, noise reassigned).

        ``measure_agreement=False`` skips the fast-path agreement check and its gate (a fit that only serves
        to compare labels, as the stability refit does); nothing else changes. ``features``: another fit's
        feature stage, reused when every row is fitted (the stage does not depend on the random seed, so the
        stability refit of a table up to ``max_fit_rows`` need not measure the columns' dependence again)."""
        cache_umap_kernels()
        say = progress or (lambda message: log.info("%s", message))
        p = self.params
        if len(frame) < MIN_TRAINING_ROWS:
            raise TrainingError(f"{len(frame)} usable customers is too few to find segments; need at least "
                                f"{MIN_TRAINING_ROWS}.")
        frame = frame.reset_index(drop=True)
        rng = np.random.default_rng(p.random_state)
        fit_rows = np.arange(len(frame))
        if len(frame) > p.max_fit_rows:
            fit_rows = np.sort(rng.choice(len(frame), size=p.max_fit_rows, replace=False))
        say(f"encoding {len(self.schema.features)} feature columns")
        if features is not None and len(fit_rows) == len(frame):
            self.features_ = features
        else:
            self.features_ = TableFeatures(
                self.schema, p.block_budget, p.category_distance, dependence_floor=p.dependence_floor,
                dependence_reference=p.dependence_reference, dependence_power=p.dependence_power,
                profile=p.profile, profile_budget=p.profile_budget,
                profile_from=p.profile_from_categories).fit(frame.iloc[fit_rows])
        X = self.features_.transform(frame)
        self.refiner_ = None

        say(f"fitting the reducer on {len(fit_rows)} of {len(X)} rows")
        started = time.perf_counter()
        self.reducer_ = clone(self.reducer)
        embedding = self.reducer_.fit_transform(X[fit_rows])
        self.timings_ = {"umap_fit_s": round(time.perf_counter() - started, 2)}
        say("fitting the clusterer")
        started = time.perf_counter()
        self.clusterer_ = clone(self.clusterer).fit(embedding)
        self.timings_["hdbscan_fit_s"] = round(time.perf_counter() - started, 2)
        fitted = np.asarray(self.clusterer_.labels_)
        self.cluster_ids_ = list(self.clusterer_.cluster_ids_)
        if not self.cluster_ids_:
            raise TrainingError("The clusterer found no segment in this data (everything is noise).")
        self.relabel_ = {c: c for c in self.cluster_ids_}
        noise = fitted < 0
        final = fitted.copy()
        if noise.any():
            vectors = self.clusterer_.training_membership()
            final[noise] = np.asarray(self.cluster_ids_)[vectors[noise].argmax(axis=1)]
        self.noise_share_ = float(noise.mean())
        self.embedding_sample_ = embedding
        self.embedding_sample_labels_ = fitted
        self.fit_rows_, self.fitted_labels_ = fit_rows, fitted
        self.clusterer_ids_ = list(self.cluster_ids_)
        self.families_ = {}
        self.split_summary_: dict[str, Any] | None = None
        self.merge_summary_: dict[str, Any] | None = None
        self.dissolve_summary_: dict[str, Any] | None = None
        if p.merge_value_cells and len(self.cluster_ids_) > 1:
            started = time.perf_counter()
            final = self._merge_value_cells(X[fit_rows], final)
            self.timings_["merger_fit_s"] = round(time.perf_counter() - started, 2)
        splits: list[dict[str, Any]] = []
        if p.upstream_odds is not None and p.local_dependence is not None:
            say("splitting segments whose columns show two groups")
            started = time.perf_counter()
            splitter = SegmentSplitter(self.features_.block_columns(), local_dependence=p.local_dependence,
                                       random_state=p.random_state).fit(X[fit_rows], final)
            self.timings_["splitter_fit_s"] = round(time.perf_counter() - started, 2)
            self.split_summary_, splits = splitter.describe(), list(splitter.splits_)
            if splits:
                final, self.families_ = splitter.labels_, dict(splitter.parents_)
        before_dissolving = None
        if p.dissolve_mixed and p.upstream_odds is not None and len(np.unique(final)) > 2:
            kept = (final, dict(self.relabel_), list(self.clusterer_ids_), dict(self.families_))
            started = time.perf_counter()
            dissolved = self._dissolve_mixed(X[fit_rows], final)
            self.timings_["dissolver_fit_s"] = round(time.perf_counter() - started, 2)
            if not np.array_equal(dissolved, final):
                final, before_dissolving = dissolved, kept

        say("fitting the fast path (nearest neighbours in feature space)")
        self.neighbours_ = NearestNeighbors(n_neighbors=min(p.neighbours, len(fit_rows))).fit(X[fit_rows])
        rest = np.setdiff1d(np.arange(len(X)), fit_rows)
        say("refining segments by every column's evidence")
        self._fit_serving(X, fit_rows, rest, final, noise)
        if not measure_agreement:
            self.fast_path_agreement_, self.agreement_method_ = float("nan"), "not measured"
            return self
        started = time.perf_counter()
        held_out = rng.bit_generator.state
        self.fast_path_agreement_, self.agreement_method_ = self._measure_agreement(X, fit_rows, rest, rng)
        while self.fast_path_agreement_ < p.min_fast_path_agreement and (splits or before_dissolving):
            if before_dissolving is not None:
                # dissolved segments the two paths cannot serve alike come back first, then splits
                say(f"fast path agrees on {self.fast_path_agreement_:.1%}: dissolved segments come back")
                final, self.relabel_, self.clusterer_ids_, self.families_ = before_dissolving
                before_dissolving = None
                if self.dissolve_summary_ is not None:
                    self.dissolve_summary_["undone_for_agreement"] = True
            else:
                # a split the two paths cannot serve alike is not kept: the newest goes first
                undone = splits.pop()
                say(f"fast path agrees on {self.fast_path_agreement_:.1%}: segment {undone['new_segment']} goes "
                    f"back into segment {undone['segment']}")
                final = np.where(final == undone["new_segment"], undone["segment"], final)
                self.families_.pop(undone["new_segment"], None)
                if self.split_summary_ is not None:
                    self.split_summary_["undone_for_agreement"] = [
                        *self.split_summary_.get("undone_for_agreement", []), undone]
            self._fit_serving(X, fit_rows, rest, final, noise)
            rng.bit_generator.state = held_out
            self.fast_path_agreement_, self.agreement_method_ = self._measure_agreement(X, fit_rows, rest, rng)
        self.timings_["agreement_s"] = round(time.perf_counter() - started, 2)
        say(f"fast path agrees with the full path on {self.fast_path_agreement_:.1%} of held-out rows "
            f"({self.agreement_method_})")
        if self.fast_path_agreement_ < p.min_fast_path_agreement:
            raise TrainingError(
                f"The fast placement agrees with the full UMAP path on only {self.fast_path_agreement_:.1%} of "
                f"held-out rows (the gate is {p.min_fast_path_agreement:.0%}): the segments are not separated "
                "well enough in this table to serve. Leave out noisy columns with --exclude COLUMN, or add rows.")
        return self

    def _merge_value_cells(self, X: np.ndarray, final: np.ndarray) -> np.ndarray:
        """Merge the clusterer's segments that are only cells of a few-valued column; a merged segment's raw
        clusterer id then answers the id it went into, on the full path too."""
        merger = ValueCellMerger(self.features_.block_columns()).fit(X, final)
        self.merge_summary_ = merger.describe(self.features_.block_names())
        if not merger.merged_into_:
            return final
        self._answer_instead(merger.merged_into_)
        self.cluster_ids_ = sorted(set(self.clusterer_ids_))
        self.fitted_labels_ = relabelled(self.fitted_labels_, merger.merged_into_)
        self.embedding_sample_labels_ = self.fitted_labels_
        return merger.labels_

    def _dissolve_mixed(self, X: np.ndarray, final: np.ndarray) -> np.ndarray:
        """Dissolve segments that are a mixture of the others but for one block (``table_dissolver``). A split
        segment's parent is kept; the full path's island of a dissolved clusterer segment answers the segment that
        took most of its rows, and the refining stage's columns place each row from there."""
        dissolver = MixedSegmentDissolver(self.features_.block_columns()).fit(X, final, set(self.families_.values()))
        self.dissolve_summary_ = dissolver.describe(self.features_.block_names())
        for segment in dissolver.dissolved_:
            self.families_.pop(segment, None)
        self._answer_instead(dissolver.dissolved_)
        return dissolver.labels_

    def _answer_instead(self, into: dict[int, int]) -> None:
        """The clusterer's answers that were a segment now gone answer the segment it went into."""
        self.relabel_ = {raw: into.get(current, current) for raw, current in self.relabel_.items()}
        self.clusterer_ids_ = [into.get(c, c) for c in self.clusterer_ids_]

    def _fit_serving(self, X: np.ndarray, fit_rows: np.ndarray, rest: np.ndarray, final: np.ndarray,
                     noise: np.ndarray) -> None:
        """The vote's labels, the refining stage and every training row's label, from the fitted rows'
        segments ``final`` (the clusterer's, noise reassigned, after any splits)."""
        p = self.params
        self.cluster_ids_ = sorted(set(final.tolist()) | set(self.clusterer_ids_))
        self.vote_labels_, self.vote_noise_ = final, noise
        labels = np.empty(len(X), dtype=int)
        labels[fit_rows] = final
        self.refiner_ = None
        if p.upstream_odds is not None and len(self.cluster_ids_) > 1:
            started = time.perf_counter()
            self.refiner_ = SegmentRefiner(self.features_.block_columns(), upstream_odds=p.upstream_odds).fit(
                X[fit_rows], final, self.families_)
            labels[fit_rows] = self.refiner_.labels_
            self.timings_["refiner_fit_s"] = round(time.perf_counter() - started, 2)
        if len(rest):
            labels[rest] = self._vote(X[rest]).cluster_id
        self.labels_ = labels

    def _measure_agreement(self, X: np.ndarray, fit_rows: np.ndarray, rest: np.ndarray,
                           rng: np.random.Generator) -> tuple[float, str]:
        """Fast vs full path on rows the fast path has not seen: training rows outside the fitted sample, or
        (smaller tables) every fitted row once, each fifth left out of a neighbour index built on the others."""
        n = self.params.agreement_rows
        if len(rest) >= min(200, n):
            picked = np.sort(rng.choice(rest, size=min(n, len(rest)), replace=False))
            fast = self._vote(X[picked]).cluster_id
            full = self._place_vectors(X[picked]).cluster_id
            return round(float(np.mean(fast == full)), 4), f"{len(picked)} training rows outside the fitted sample"
        order = rng.permutation(len(fit_rows))[:n]
        agree = 0
        for held in np.array_split(order, FOLDS):
            kept = np.setdiff1d(np.arange(len(fit_rows)), held)
            index = GridNeighbours(X[fit_rows[kept]])
            fast = self._refined(X[fit_rows[held]], weighted_vote(
                index, X[fit_rows[held]], self.params.neighbours, self.vote_labels_[kept], self.vote_noise_[kept],
                self.cluster_ids_)).cluster_id
            agree += int(np.sum(fast == self._place_vectors(X[fit_rows[held]]).cluster_id))
        return round(agree / len(order), 4), f"{len(order)} fitted rows, each held out of the neighbour index once"

    def relabel(self, mapping: dict[int, int]) -> TableSegmentationModel:
        """Give the segments other ids (the stable ids of ``segment_ids``): every stored label and every later
        placement answers ``mapping[id]``; noise (-1) stays noise."""
        self.relabel_ = {raw: mapping[current] for raw, current in self.relabel_.items()}
        self.cluster_ids_ = [mapping[c] for c in self.cluster_ids_]
        self.clusterer_ids_ = [mapping[c] for c in self.clusterer_ids_]
        self.families_ = {mapping[child]: mapping[parent] for child, parent in self.families_.items()}
        if self.refiner_ is not None:
            self.refiner_.relabel(mapping)
        for name in ("vote_labels_", "labels_", "fitted_labels_", "embedding_sample_labels_"):
            if hasattr(self, name):  # fit-time labels are not kept in a saved release
                setattr(self, name, relabelled(getattr(self, name), mapping))
        return self

    # -- placing -------------------------------------------------------------------------------
    def known_locations(self) -> list[str]:
        """The loyalty smart form's locations: a learned schema has none."""
        return []

    def place(self, frame: pd.DataFrame) -> Placement:
        """Segment, confidence and reassigned flag for rows of the training table's columns (order kept)."""
        if not hasattr(self, "neighbours_"):
            raise NotFittedError("fit the model (or load a release) before placing rows")
        if frame.empty:
            return Placement(np.zeros(0, int), np.zeros(0), np.zeros(0, bool))
        return self._vote(self.encode(frame)[0])

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Model-ready rows of ``frame`` and which of its cells could not be read (``SchemaColumns.read``);
        a few rows are read without pandas, to the same bits."""
        few = self._small_batch() if len(frame) <= SMALL_BATCH_ROWS else None
        if few is None:
            typed, bad = self.features_.columns_.read(frame)
            return self.features_.encode(typed), bad
        X, flags = few.read(frame)
        return X, pd.DataFrame(flags, index=frame.index, columns=[c.name for c in few.columns])

    def _small_batch(self) -> SmallBatchEncoder | None:
        """The few-row encoder of the fitted features (built once; None when their blocks have no such form)."""
        cached = self.__dict__.get("_few_rows")
        if cached is None or cached[0] is not self.features_:
            cached = (self.features_, small_batch_encoder(self.features_))
            self._few_rows = cached
        return cached[1]

    def _grid(self) -> GridNeighbours:
        """The vote's exact index over the fitted rows the saved neighbour index holds (built once)."""
        cached = self.__dict__.get("_grid_index")
        if cached is None or cached[0] is not self.neighbours_:
            cached = (self.neighbours_, GridNeighbours(self.neighbours_._fit_X))
            self._grid_index = cached
        return cached[1]

    def place_typed(self, typed: pd.DataFrame) -> Placement:
        """``place`` for rows already read into typed columns (``features_.columns_.read``)."""
        if typed.empty:
            return Placement(np.zeros(0, int), np.zeros(0), np.zeros(0, bool))
        return self._vote(self.features_.encode(typed))

    def place_through_reducer(self, frame: pd.DataFrame) -> Placement:
        """The reference path: reducer ``transform`` + clusterer prediction, noise to its likeliest segment."""
        return self._place_vectors(self.features_.transform(frame))

    def _vote(self, X: np.ndarray) -> Placement:
        return self._refined(X, weighted_vote(self._grid(), X, self.neighbours_.n_neighbors, self.vote_labels_,
                                              self.vote_noise_, self.cluster_ids_))

    def _refined(self, X: np.ndarray, placed: Placement) -> Placement:
        """The refining stage over the fast or full path's answer: a row its columns move to another segment
        keeps the lower of its confidence and the new segment's posterior probability. A clusterer segment
        stands for every segment split from it, and among those the columns decide."""
        if self.refiner_ is None or not len(X):
            return placed
        labels, posterior = self.refiner_.predict(X, placed.cluster_id)
        moved = labels != placed.cluster_id
        confidence = np.where(moved, np.minimum(placed.confidence, np.round(posterior, 4)), placed.confidence)
        return Placement(labels, confidence, placed.reassigned)

    def _place_vectors(self, X: np.ndarray, batch: int = 5000) -> Placement:
        labels, strengths, flags = [], [], []
        with NUMBA_LOCK:
            for start in range(0, len(X), batch):
                embedded = self.reducer_.transform(X[start:start + batch])
                label, strength = self.clusterer_.predict_with_strength(embedded)
                label, strength = relabelled(label, self.relabel_), strength.astype(float).copy()
                noise = label < 0
                if noise.any():
                    vectors = self.clusterer_.membership(embedded[noise])
                    label[noise] = np.asarray(self.clusterer_ids_)[vectors.argmax(axis=1)]
                    strength[noise] = vectors.max(axis=1) * REASSIGNED_CONFIDENCE_CAP
                labels.append(label)
                strengths.append(strength)
                flags.append(noise)
        placed = Placement(np.concatenate(labels), np.round(np.concatenate(strengths), 4), np.concatenate(flags))
        return self._refined(X, placed)

    def warm_up(self) -> float:
        """Compile numba's transform path and touch the neighbour index before taking traffic."""
        started = time.perf_counter()
        probe = np.zeros((1, self.neighbours_.n_features_in_), dtype=np.float32)
        self._place_vectors(probe)
        self._vote(probe)
        self._small_batch()
        return time.perf_counter() - started

    def describe(self) -> dict[str, Any]:
        """The learned schema and the feature blocks, for the manifest and the training report."""
        return {"columns": self.schema.model_dump(mode="json")["columns"], **self.features_.describe()}


__all__ = ["KIND", "TABLE_REQUIRED_FILES", "TableParams", "TableSegmentationModel", "table_reducer"]

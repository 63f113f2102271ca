"""Training: customer files → a complete, verified model release folder.

Used by ``flask --app app train``, ``make train`` and the retraining job. Fitting happens here and
only here; serving loads what this writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from portal.errors import TrainingError
from portal.ingestion.reader import read_customer_file
from portal.segmentation import releases
from portal.segmentation.metrics import metrics_of, replacement_agreement
from portal.segmentation.model import SegmentationModel, SegmentationParams
from portal.segmentation.personas import build_personas
from portal.segmentation.segment_ids import SegmentIds, assign_stable_ids
from portal.segmentation.segment_map import draw_segment_map
from portal.segmentation.stages import Clusterer, Reducer
from schemas import CUSTOMER_ID, FEATURE_COLUMNS

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class TrainingData:
    customers: pd.DataFrame
    rows_read: int
    rows_skipped: int
    duplicates_dropped: int
    sources: list[str]


CustomerKey = Callable[[Path, pd.Series], pd.Series]


def collect_training_data(paths: Iterable[Path], progress: Progress | None = None,
                          customer_key: CustomerKey | None = None) -> TrainingData:
    """Read every file with the upload schema code; later files win for a repeated customer id.

    ``customer_key`` maps a file's ids to the key used for de-duplication (retraining hashes raw ids
    the way upload snapshots do, so a customer seen in both counts once).
    """
    say = progress or (lambda m: log.info("%s", m))
    frames, rows_read, rows_skipped, sources = [], 0, 0, []
    for order, path in enumerate(paths):
        table = read_customer_file(Path(path), filename=Path(path).name)
        say(f"read {path}: {table.rows_received} rows, {table.skipped_count} skipped")
        rows_read += table.rows_received
        rows_skipped += table.skipped_count
        frame = table.frame.assign(_order=order)
        if customer_key is not None:
            frame[CUSTOMER_ID] = customer_key(Path(path), frame[CUSTOMER_ID])
        frames.append(frame)
        sources.append(str(path))
    if not frames:
        raise TrainingError("No training files were given or found.")
    combined = pd.concat(frames, ignore_index=True)
    before = len(combined)
    has_id = combined[CUSTOMER_ID].notna()
    with_id = combined[has_id].sort_values("_order", kind="stable").drop_duplicates(CUSTOMER_ID, keep="last")
    combined = pd.concat([with_id, combined[~has_id]], ignore_index=True).drop(columns="_order")
    return TrainingData(combined, rows_read, rows_skipped, before - len(combined), sources)


def data_fingerprint(customers: pd.DataFrame, columns: list[str] | None = None) -> str:
    """sha256 of the feature columns, so two releases can say whether they saw the same data."""
    chosen = list(FEATURE_COLUMNS) if columns is None else columns
    hashed = pd.util.hash_pandas_object(customers[chosen].astype(str), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def write_personas(staging: Path, personas: dict[int, dict[str, Any]], profiles: pd.DataFrame,
                   embedding: np.ndarray, labels: np.ndarray) -> None:
    """The persona files every release kind carries (pkl keyed by cluster id, as the seed; json; profile
    csv) and the segment map."""
    joblib.dump(personas, staging / "cluster_personas.pkl")
    (staging / "cluster_personas.json").write_text(json.dumps({str(k): v for k, v in personas.items()},
                                                              indent=2, ensure_ascii=False))
    profiles.to_csv(staging / "cluster_profiles.csv", index=False)
    draw_segment_map(embedding, labels, personas, staging / "segments.png")


def write_release(model: SegmentationModel, data: TrainingData, staging: Path, version: str,
                  extra: dict[str, Any] | None = None, ids: SegmentIds | None = None) -> dict[str, Any]:
    """Save every artifact of a fitted model (relabelled with its stable ``ids``) into ``staging`` and write
    its manifest."""
    personas, profiles = build_personas(data.customers, model.labels_)
    if ids is not None:
        personas, profiles = ids.name(personas, profiles)
    model.save(staging)
    write_personas(staging, personas, profiles, model.embedding_sample_, model.embedding_sample_labels_)
    metrics = {**metrics_of(model), **replacement_agreement(model, data.customers)}
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_rows": int(len(data.customers)),
        "rows_read": data.rows_read,
        "rows_skipped": data.rows_skipped,
        "duplicates_dropped": data.duplicates_dropped,
        "sources": [Path(s).name for s in data.sources],
        "data_fingerprint": data_fingerprint(data.customers),
        "feature_schema": {"columns": list(FEATURE_COLUMNS),
                           "derived": ["area_profile (each location's tenure-band and tier shares)",
                                       "location, region, gender (one-hot)", "tier (ordinal 1-3)",
                                       "tenure_months", "month_sin, month_cos"],
                           "encoded_columns": list(model.encoder_.get_feature_names_out())},
        "parameters": {**model.params.as_dict(), "reducer": model.reducer_.get_params(),
                       "clusterer": model.clusterer_.get_params(),
                       "clusterer_fitted": getattr(model.clusterer_, "fitted_sizes_", None)},
        "metrics": metrics,
        "timings": model.timings_,
        "persona_count": len(personas),
        "segment_ids": ids.manifest() if ids is not None else None,
        **(extra or {}),
    }
    return releases.write_manifest(staging, manifest)


def train_release(paths: list[Path], production_dir: Path, params: SegmentationParams | None = None,
                  progress: Progress | None = None, customer_key: CustomerKey | None = None,
                  reducer: Reducer | None = None, clusterer: Clusterer | None = None,
                  live: Path | None = None) -> tuple[Path, dict[str, Any], TrainingData]:
    """Fit on ``paths`` and write a complete release into a fresh staging folder (not yet published); its
    segments keep the ids of the ``live`` release's segments they continue (``segment_ids``)."""
    say = progress or (lambda m: log.info("%s", m))
    started = time.perf_counter()
    data = collect_training_data(paths, say, customer_key)
    say(f"training on {len(data.customers)} customers ({data.duplicates_dropped} duplicates dropped)")
    model = SegmentationModel(params, reducer=reducer, clusterer=clusterer).fit(data.customers, progress=say)
    ids = assign_stable_ids(model, data.customers, production_dir, live, say)
    version = releases.new_version()
    staging = releases.new_staging_dir(production_dir)
    say("writing artifacts, personas and the segment map")
    manifest = write_release(model, data, staging, version,
                             {"fit_seconds": round(time.perf_counter() - started, 2)}, ids)
    say(f"release {version}: {manifest['metrics']['clusters']} segments, "
        f"noise {manifest['metrics']['noise_share']:.1%}, DBCV {manifest['metrics']['dbcv']}, "
        f"silhouette {manifest['metrics']['silhouette']}")
    return staging, manifest, data

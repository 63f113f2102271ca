"""Training on any customer table: read it, learn its schema, roll order exports up per customer, fit the
learned-schema model and write a release of kind ``table`` (published and set live like any release).

The manifest records the learned schema (every column's role with its reason), the feature block
weights, the fast-path agreement that gated the release and, when measured, the stability of the
segments across random seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from portal.errors import MissingColumns, PortalError, TrainingError
from portal.ingestion.roles import TableSchema, infer_schema
from portal.ingestion.rollup import is_order_level, roll_up
from portal.ingestion.sheets import first_customer_sheet
from portal.ingestion.tables import read_table
from portal.segmentation import base_distributions, releases
from portal.segmentation.metrics import metrics_of
from portal.segmentation.segment_ids import SegmentIds, assign_stable_ids
from portal.segmentation.table_model import TableParams, TableSegmentationModel
from portal.segmentation.table_personas import build_table_personas
from portal.segmentation.table_stability import StabilityRefit
from portal.segmentation.training import data_fingerprint, write_personas

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class TableData:
    """A customer table ready to fit: one row per customer, its learned schema and what reading it did."""

    frame: pd.DataFrame
    schema: TableSchema
    rows_read: int
    duplicates_dropped: int
    source: str
    #: the order-level schema when the file was an order export rolled up per customer
    order_schema: TableSchema | None = None
    #: how its order rows became customers (``RolledUp.record``; a retrain carries the live release's over)
    rolled_up: dict[str, Any] | None = None
    #: the files read when there were several (a retrain's snapshots); else the one ``source``
    sources: list[str] = field(default_factory=list)


def loyalty_gap(path: Path) -> str | None:
    """Why a file is not a loyalty-schema file (its missing columns), or None when it holds those columns."""
    try:
        first_customer_sheet(Path(path).read_bytes(), Path(path).name)
    except MissingColumns as exc:
        return exc.message
    return None


def unusable_table_message(schema: TableSchema) -> str:
    """One line naming each column and why it was left out, for a table with no feature column."""
    reasons = "; ".join(f"{c.name}: {c.role.value} ({c.reason})" for c in schema.columns)
    return (f"No column of this table can describe segments: {reasons}. Add columns such as ages, amounts, "
            "dates or categories, or set a column's role with --role COLUMN=ROLE.")


def read_training_table(path: Path, roles: dict[str, str] | None = None, exclude: tuple[str, ...] = (),
                        progress: Progress | None = None) -> TableData:
    """Read any table, learn its schema (overrides applied) and roll an order export up per customer."""
    say = progress or (lambda m: log.info("%s", m))
    table = read_table(Path(path))
    frame = table.frame
    try:
        schema = infer_schema(frame, roles, exclude)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    say(f"read {Path(path).name}: {len(frame):,} rows, {len(frame.columns)} columns")
    order_schema, rolled = None, None
    if is_order_level(frame, schema):
        rolled = roll_up(frame, schema)
        say(rolled.summary())
        order_schema = schema
        kept = {k: v for k, v in (roles or {}).items() if k in rolled.frame.columns}
        schema = infer_schema(rolled.frame, kept, tuple(c for c in exclude if c in rolled.frame.columns))
        frame = rolled.frame
    if not schema.features:
        raise TrainingError(unusable_table_message(schema))
    before = len(frame)
    if schema.identifier is not None:
        ids = frame[schema.identifier]
        frame = pd.concat([frame[ids.notna()].drop_duplicates(schema.identifier, keep="last"), frame[ids.isna()]])
    frame = frame.reset_index(drop=True)
    for column in schema.columns:
        say(f"  {column.name}: {column.role.value} ({column.reason})")
    return TableData(frame, schema, len(table.frame), before - len(frame), str(path), order_schema,
                     rolled.record() if rolled else None)


def write_table_release(model: TableSegmentationModel, data: TableData, staging: Path, version: str,
                        extra: dict[str, Any] | None = None, ids: SegmentIds | None = None) -> dict[str, Any]:
    """Save every artifact of a fitted table model (relabelled with its stable ``ids``) into ``staging`` and
    write its manifest."""
    personas, profiles = build_table_personas(data.frame, data.schema, model.labels_, model.features_.columns_)
    if ids is not None:
        personas, profiles = ids.name(personas, profiles)
    model.save(staging)
    write_personas(staging, personas, profiles, model.embedding_sample_, model.embedding_sample_labels_)
    base_distributions.save(staging, base_distributions.for_table(model, data.frame))
    metrics = {**metrics_of(model), "fast_path_agreement": model.fast_path_agreement_,
               "fast_path_agreement_rows": model.agreement_method_,
               **({"stability": extra["stability"]} if extra and "stability" in extra else {})}
    manifest = {
        "version": version,
        "kind": releases.TABLE,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_rows": int(len(data.frame)),
        "rows_read": data.rows_read,
        "rows_skipped": 0,
        "duplicates_dropped": data.duplicates_dropped,
        "sources": data.sources or [Path(data.source).name],
        "data_fingerprint": data_fingerprint(data.frame, [c.name for c in data.schema.features]),
        "schema": model.describe(),
        "order_schema": data.order_schema.model_dump(mode="json") if data.order_schema else None,
        "rolled_up": data.rolled_up,
        "parameters": {**model.params.as_dict(), "reducer": model.reducer_.get_params(),
                       "reducer_fitted_neighbours": getattr(model.reducer_, "fitted_neighbours_", None),
                       "clusterer": model.clusterer_.get_params(),
                       "clusterer_fitted": getattr(model.clusterer_, "fitted_sizes_", None),
                       "merger": getattr(model, "merge_summary_", None),
                       "splitter": getattr(model, "split_summary_", None),
                       "dissolver": getattr(model, "dissolve_summary_", None),
                       "refiner": model.refiner_.describe() if model.refiner_ is not None else None},
        "metrics": metrics,
        "timings": model.timings_,
        "persona_count": len(personas),
        "segment_ids": ids.manifest() if ids is not None else None,
        **(extra or {}),
    }
    return releases.write_manifest(staging, manifest)


def train_table_release(path: Path, production_dir: Path, roles: dict[str, str] | None = None,
                        exclude: tuple[str, ...] = (), params: TableParams | None = None,
                        progress: Progress | None = None, measure_stability: bool = True,
                        live: Path | None = None) -> tuple[Path, dict[str, Any], TableData]:
    """Fit on one table and write a complete release into a fresh staging folder (not yet published); its
    segments keep the ids of the ``live`` release's segments they continue (``segment_ids``)."""
    say = progress or (lambda m: log.info("%s", m))
    started = time.perf_counter()
    try:
        data = read_training_table(path, roles, exclude, say)
    except PortalError as exc:
        raise TrainingError(exc.message) from None
    return fit_table_release(data, production_dir, params, say, measure_stability, started, live)


def fit_table_release(data: TableData, production_dir: Path, params: TableParams | None = None,
                      progress: Progress | None = None, measure_stability: bool = True,
                      started: float | None = None, live: Path | None = None) -> tuple[Path, dict[str, Any], TableData]:
    """Fit on a customer table whose schema is already known (read from a file, or a retrain's snapshots);
    its segments keep the ids of the ``live`` release's segments they continue (``segment_ids``)."""
    say = progress or (lambda m: log.info("%s", m))
    started = time.perf_counter() if started is None else started
    say(f"training on {len(data.frame):,} customers ({data.duplicates_dropped} duplicates dropped), "
        f"{len(data.schema.features)} feature columns")
    params = params or TableParams()
    refit = StabilityRefit(data.schema, data.frame, params) if measure_stability else None
    extra: dict[str, Any] = {}
    try:
        model = TableSegmentationModel(data.schema, params).fit(data.frame, progress=say)
        if refit is not None:
            say("measuring stability: a second fit with another random seed")
            extra["stability"] = refit.ari(model)
            say(f"second fit ran {refit.ran}")
    finally:
        if refit is not None:
            refit.close()
    ids = assign_stable_ids(model, data.frame, production_dir, live, say)
    version = releases.new_version()
    staging = releases.new_staging_dir(production_dir)
    say("writing artifacts, personas and the segment map")
    manifest = write_table_release(model, data, staging, version,
                                   {**extra, "fit_seconds": round(time.perf_counter() - started, 2)}, ids)
    say(f"release {version}: {manifest['metrics']['clusters']} segments, "
        f"noise {manifest['metrics']['noise_share']:.1%}, fast-path agreement "
        f"{manifest['metrics']['fast_path_agreement']:.1%}"
        + (f", stability (ARI across seeds) {extra['stability']}" if "stability" in extra else ""))
    return staging, manifest, data


def train_any_release(files: list[Path], production_dir: Path, roles: dict[str, str] | None = None,
                      exclude: tuple[str, ...] = (), progress: Progress | None = None,
                      measure_stability: bool = True,
                      live: Path | None = None) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """A model of the table's own columns for one file, the bundled loyalty sample included (several files
    with the loyalty columns are combined by the loyalty model); returns the staging folder, the manifest and
    the rows the new model places (for the release gates). Segments keep the ids of the ``live`` release's segments they
    continue. Raises TrainingError saying why a file cannot be used."""
    from portal.segmentation.training import train_release

    say = progress or (lambda m: log.info("%s", m))
    if len(files) > 1:
        try:
            gap = next((g for g in (loyalty_gap(f) for f in files) if g), None)
            if gap is None and not roles and not exclude:
                staging, manifest, loyalty = train_release(files, production_dir, progress=say, live=live)
                return staging, manifest, loyalty.customers
        except PortalError as exc:
            raise TrainingError(exc.message) from None
        raise TrainingError("A table of its own columns is trained from one file at a time; give one file "
                            "(several files are combined only when each has the loyalty columns, without "
                            "--role or --exclude).")
    say("learning the table's own columns")
    staging, manifest, table = train_table_release(files[0], production_dir, roles, exclude, progress=say,
                                                   measure_stability=measure_stability, live=live)
    return staging, manifest, table.frame


__all__ = ["TableData", "loyalty_gap", "read_training_table", "train_any_release", "train_table_release",
           "unusable_table_message"]

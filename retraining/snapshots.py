"""What retraining learns from: PII-free snapshots of customers, one lineage per schema.

A snapshot holds the live schema's feature columns and a salted hash of the customer id, nothing else.
Uploads write one per accepted file; training on a company file writes one of its training rows, so the
next quarterly retrain still knows the customers the model was fitted on. Loyalty-schema snapshots sit in
``BASE_DATA_DIR/<day>/``; a learned schema's in ``BASE_DATA_DIR/tables/<schema key>/<day>/``, so a retrain
reads only rows of the schema it refits. The bundled synthetic sample joins the training data only while
the live model came from it: a company's own model is never diluted with invented customers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from portal.ingestion.dates import looks_month_first, parse_dates
from portal.ingestion.roles import Role, TableSchema
from portal.segmentation import releases
from portal.settings import Settings
from schemas import CUSTOMER_ID, FEATURE_COLUMNS

log = logging.getLogger(__name__)
SUPPORTED = (".xlsx", ".xls", ".csv")
#: Learned-schema snapshots live below this folder of BASE_DATA_DIR, one folder per schema key.
TABLES = "tables"


def hash_customer_ids(ids: pd.Series, salt: str) -> pd.Series:
    """Salted, truncated sha256 of every id (missing ids stay missing): the same customer gets the same
    key in every snapshot, never the id."""
    salted = hashlib.sha256(salt.encode())

    def digest(value: object) -> str:
        hasher = salted.copy()
        hasher.update(str(value).encode())
        return hasher.hexdigest()[:24]

    return ids.map(digest, na_action="ignore").astype("string")


def schema_key(schema: TableSchema) -> str:
    """Names the lineage of a learned schema: its feature columns, their roles and levels, and its id column.

    Retrains keep the live schema, so every release of one lineage shares the key; a model trained on
    another table gets another key and never reads these rows."""
    described = [(c.name, c.role.value, c.values or []) for c in schema.features]
    payload = json.dumps({"features": described, "identifier": schema.identifier}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def schema_of(manifest: dict[str, Any]) -> TableSchema:
    """The learned schema a table release was fitted on, from its manifest."""
    return TableSchema.model_validate({"columns": manifest["schema"]["columns"]})


def lineage_dir(base_data_dir: Path, schema: TableSchema) -> Path:
    return Path(base_data_dir) / TABLES / schema_key(schema)


def _write_csv(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    temp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(temp, index=False, date_format="%Y-%m-%d")
    os.replace(temp, path)
    return path


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def write_loyalty_snapshot(base_data_dir: Path, name: str, customers: pd.DataFrame, salt: str) -> Path:
    """The loyalty feature columns plus a salted hash of the customer id (canonical upload columns)."""
    snapshot = customers[list(FEATURE_COLUMNS)].copy()
    snapshot.insert(0, CUSTOMER_ID, hash_customer_ids(customers[CUSTOMER_ID], salt).fillna(""))
    return _write_csv(snapshot, Path(base_data_dir) / _today(), name)


def table_snapshot_frame(customers: pd.DataFrame, schema: TableSchema, salt: str,
                         month_first: Mapping[str, bool | None] | None = None) -> pd.DataFrame:
    """One row per customer: the hashed id (when the schema has one) and every feature column.

    Dates are written as ISO days (read with the model's day/month order, or the column's own when
    training), so snapshots from .xlsx and day-first .csv files read back alike; every other value is kept
    as uploaded."""
    columns: dict[str, pd.Series] = {}
    identifier = schema.identifier
    if identifier is not None:
        ids = customers[identifier] if identifier in customers else pd.Series(pd.NA, index=customers.index)
        text = ids.astype("string").str.strip()
        columns[identifier] = hash_customer_ids(text.where(text != ""), salt)
    for column in schema.features:
        values = customers[column.name] if column.name in customers else pd.Series(pd.NA, index=customers.index)
        if column.role == Role.DATE:
            order = month_first[column.name] if month_first and column.name in month_first else \
                looks_month_first(values)
            dates = parse_dates(values, values.astype("string"), order)
            columns[column.name] = dates.dt.strftime("%Y-%m-%d")
        else:
            columns[column.name] = values
    return pd.DataFrame(columns, index=customers.index)


def write_table_snapshot(base_data_dir: Path, name: str, customers: pd.DataFrame, schema: TableSchema, salt: str,
                         month_first: Mapping[str, bool | None] | None = None) -> Path:
    frame = table_snapshot_frame(customers, schema, salt, month_first)
    return _write_csv(frame, lineage_dir(base_data_dir, schema) / _today(), name)


def _files_below(folder: Path, skip: Path | None = None) -> list[Path]:
    """Snapshot files oldest → newest (by folder, then modification time), hidden and partial files left out."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED
             and not p.name.startswith(".") and (skip is None or skip not in p.parents)]
    return sorted(found, key=lambda p: (str(p.parent.relative_to(folder)), p.stat().st_mtime, p.name))


def came_from_sample(manifest: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether the live model's training data included the bundled sample (or there is no live model)."""
    if manifest is None:
        return True
    return any(Path(source).name == settings.sample_data_path.name for source in manifest.get("sources", []))


def loyalty_files(settings: Settings, live_manifest: dict[str, Any] | None = None) -> list[Path]:
    """The bundled sample while the live model came from it, then every loyalty snapshot oldest → newest
    (later wins on duplicates)."""
    base = Path(settings.base_data_dir)
    sample = [settings.sample_data_path] if settings.sample_data_path.is_file() and \
        came_from_sample(live_manifest, settings) else []
    return sample + _files_below(base, skip=base / TABLES)


def table_files(settings: Settings, schema: TableSchema) -> list[Path]:
    """Every snapshot of this schema's lineage, oldest → newest."""
    return _files_below(lineage_dir(settings.base_data_dir, schema))


def sample_snapshot(settings: Settings, schema: TableSchema,
                    live_manifest: dict[str, Any] | None) -> pd.DataFrame | None:
    """The bundled sample as one more snapshot of a learned schema (hashed ids, feature columns, ISO dates), read
    as a snapshot file reads, while the live model came from it; else None. Nothing is written."""
    sample = Path(settings.sample_data_path)
    if not sample.is_file() or not came_from_sample(live_manifest, settings):
        return None
    from portal.ingestion.tables import read_table

    frame = table_snapshot_frame(read_table(sample).frame, schema, settings.snapshot_salt.get_secret_value())
    return _read_snapshot(io.StringIO(frame.to_csv(index=False, date_format="%Y-%m-%d")))


def _read_snapshot(source: Path | io.StringIO) -> pd.DataFrame:
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])


def read_table_snapshots(files: Iterable[Path], schema: TableSchema,
                         first: pd.DataFrame | None = None) -> tuple[pd.DataFrame, int, int]:
    """The snapshots (after ``first``, the bundled sample's rows when they join) as one customer table with every
    schema column (later files win for a repeated hashed id), the rows read and the duplicates dropped."""
    frames = ([] if first is None else [first]) + [_read_snapshot(path) for path in files]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in schema.features:
        if column.name not in combined:
            combined[column.name] = pd.NA
    rows = len(combined)
    identifier = schema.identifier
    if identifier is not None and identifier in combined:
        ids = combined[identifier]
        combined = pd.concat([combined[ids.notna()].drop_duplicates(identifier, keep="last"), combined[ids.isna()]])
    return combined.reset_index(drop=True), rows, rows - len(combined)


def customer_key(settings: Settings):
    """De-duplication key of loyalty training files: snapshots already carry the salted hash; other files'
    raw ids are hashed alike, so a customer seen in both counts once."""
    base = Path(settings.base_data_dir).resolve()
    salt = settings.snapshot_salt.get_secret_value()

    def key(path: Path, ids: pd.Series) -> pd.Series:
        return ids if base in Path(path).resolve().parents else hash_customer_ids(ids, salt)

    return key


def write_training_snapshot(settings: Settings, manifest: dict[str, Any], customers: pd.DataFrame,
                            files: list[Path], month_first: Mapping[str, bool | None] | None = None) -> Path | None:
    """After a release is trained on a company's own file, keep its rows (PII-free) for the next retrain.

    Nothing is written for the bundled sample (it joins retraining while its model is live) or for a
    retrain (its rows are snapshots already)."""
    if all(Path(f).resolve() == Path(settings.sample_data_path).resolve() for f in files):
        return None
    salt = settings.snapshot_salt.get_secret_value()
    name = f"training-{manifest['version']}"
    if releases.kind_of(manifest) == releases.TABLE:
        path = write_table_snapshot(settings.base_data_dir, name, customers, schema_of(manifest), salt, month_first)
    else:
        path = write_loyalty_snapshot(settings.base_data_dir, name, customers, salt)
    log.info("kept %d training customers for retraining in %s", len(customers), path.parent)
    return path


__all__ = ["came_from_sample", "customer_key", "hash_customer_ids", "lineage_dir", "loyalty_files", "sample_snapshot",
           "read_table_snapshots", "schema_key", "schema_of", "table_files", "table_snapshot_frame",
           "write_loyalty_snapshot", "write_table_snapshot", "write_training_snapshot"]

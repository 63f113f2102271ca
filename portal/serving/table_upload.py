"""Uploads read against the live release's learned schema: headers matched by the training headers and their
normalised spellings, order exports rolled up the way training rolled them, rows with unreadable values
skipped with their row number and reason, everything else placed.

Only the schema's feature columns (and, for order exports, the customer id and order date the roll-up
needs) are read; personal, identifier and extra columns are dropped on arrival. A skip reason names
the column and the row, never the value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from portal.errors import InvalidFile, MissingColumns, PayloadTooLarge
from portal.ingestion.dates import parse_dates
from portal.ingestion.roles import ColumnRole, Role, TableSchema
from portal.ingestion.rollup import roll_up
from portal.ingestion.rows import SkippedRow
from portal.ingestion.tables import read_table
from portal.segmentation.model import Placement
from portal.segmentation.table_model import TableSegmentationModel
from portal.serving.model_fit import TRAIN_COMMAND
from schemas import CUSTOMER_COLUMNS, canonical_column, header_key

log = logging.getLogger(__name__)
MAX_SKIPPED_EXAMPLES = 20
#: Seed feature columns a list may leave out (Gender), as the loyalty model always allowed: a learned schema with
#: such a column reads a file without it as blank there (no evidence either way), and the response says so.
OPTIONAL_SEED_COLUMNS = tuple(spec.name for spec in CUSTOMER_COLUMNS if spec.feature and not spec.required)
_UNREADABLE = {Role.NUMERIC: "is not a number", Role.DATE: "is not a date",
               Role.BOOLEAN: "is not yes or no", Role.ORDINAL: "is not one of the levels the model knows"}


def _unreadable(column: ColumnRole) -> str:
    """Why a cell of ``column`` was skipped, and what it may hold instead."""
    reason = f"{column.name} {_UNREADABLE.get(column.role, 'cannot be read')}"
    if column.role != Role.ORDINAL or not column.values:
        return reason
    *others, last = column.values
    return f"{reason}; use {', '.join(others)} or {last}" if others else f"{reason}; use {last}"


@dataclass
class TableUpload:
    """An upload placed on a learned-schema model: per customer and per file row."""

    placement: Placement
    rows_received: int
    customers: int
    file_format: str
    sheet: str | None
    columns: dict[str, str]
    #: spreadsheet row number, segment, confidence and reassigned flag of every placed file row
    source_rows: np.ndarray
    row_cluster_id: np.ndarray
    row_confidence: np.ndarray
    row_reassigned: np.ndarray
    skipped: list[SkippedRow] = field(default_factory=list)
    skipped_count: int = 0
    rolled_up: dict[str, int] | None = None
    #: the placed customers' schema columns as read (rolled up for order exports), for the retraining snapshot
    customer_rows: pd.DataFrame | None = None
    #: typed feature columns of the placed customers, in placement order (for the list profile and fit check)
    typed: pd.DataFrame | None = None
    #: optional seed columns the file did not have, read as blank
    left_blank: list[str] = field(default_factory=list)


def match_headers(columns: list[str], schema: TableSchema) -> dict[str, str]:
    """Upload header → training column, by exact name first, then by normalised spelling, then by the seed's
    header aliases when the training column is one of the seed's columns ("Join Date" for "Date Joined")."""
    exact = {c.name for c in schema.columns}
    by_key = {header_key(c.name): c.name for c in schema.columns}
    by_alias = {canonical: c.name for c in schema.columns if (canonical := canonical_column(c.name)) is not None}
    matched: dict[str, str] = {}
    for header in columns:
        target = header if header in exact else by_key.get(header_key(header))
        if target is None and (canonical := canonical_column(header)) is not None:
            target = by_alias.get(canonical)
        if target is not None and target not in matched.values():
            matched[header] = target
    return matched


def _missing_message(missing: list[str], schema: TableSchema, manifest: dict[str, Any]) -> MissingColumns:
    features = [c.name for c in schema.features]
    sources = ", ".join(manifest.get("sources", [])) or "its training table"
    command = TRAIN_COMMAND
    return MissingColumns(
        f"Column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
        f"{'are' if len(missing) > 1 else 'is'} missing. The live model {manifest.get('version')} was trained on "
        f"{sources} and reads the columns {', '.join(features)}. Add the missing columns, or segment this file by "
        f"its own columns: train on it with `{command}`.",
        {"missing": missing, "expected": features, "trained_on": manifest.get("sources", []),
         "train_command": command})


def read_upload(data: bytes, model: TableSegmentationModel, manifest: dict[str, Any],
                max_rows: int) -> TableUpload:
    """Read, match, roll up when the model was trained on orders, skip unreadable rows, place the rest."""
    table = read_table(data)
    raw = table.frame
    if len(raw) > max_rows:
        raise PayloadTooLarge(f"The file has {len(raw):,} rows; the limit is {max_rows:,} per upload. "
                              "Split it into smaller files.", {"rows": len(raw), "max_rows": max_rows})
    rolled_info = manifest.get("rolled_up")
    order_schema = TableSchema.model_validate(manifest["order_schema"]) if manifest.get("order_schema") else None
    matching = order_schema or model.schema
    matched = match_headers([str(c) for c in raw.columns], matching)
    needed = [c.name for c in matching.features]
    if order_schema is not None and rolled_info:
        needed = [rolled_info["id_column"], *needed]
    missing = [name for name in dict.fromkeys(needed) if name not in matched.values()]
    left_blank = [name for name in missing if canonical_column(name) in OPTIONAL_SEED_COLUMNS]
    missing = [name for name in missing if name not in left_blank]
    if missing:
        raise _missing_message(missing, model.schema, manifest)
    kept_roles = {c.name for c in matching.columns if c.role not in (Role.PERSONAL, Role.EXCLUDED)}
    frame = raw[[h for h, name in matched.items() if name in kept_roles]].rename(columns=matched)
    for name in left_blank:
        frame[name] = pd.Series(pd.NA, index=frame.index, dtype="object")
    source_rows = np.arange(len(frame), dtype=np.int64) + table.first_row
    skipped: list[SkippedRow] = []
    skipped_count = 0
    rolled: dict[str, int] | None = None
    if order_schema is not None and rolled_info:
        for name in (c.name for c in order_schema.columns):
            if name not in frame:
                frame[name] = pd.Series(pd.NA, index=frame.index, dtype="object")
        id_column, date_column = rolled_info["id_column"], rolled_info["date_column"]
        no_id = frame[id_column].isna() | (frame[id_column].astype("string").str.strip() == "")
        no_date = parse_dates(frame[date_column], frame[date_column].astype("string")).isna()
        dropped = (no_id | no_date).to_numpy()
        for position in np.flatnonzero(dropped):
            skipped_count += 1
            if len(skipped) < MAX_SKIPPED_EXAMPLES:
                reason = f"{id_column} is blank" if no_id.iloc[position] else f"{date_column} is not a date"
                skipped.append(SkippedRow(int(source_rows[position]), reason))
        frame, source_rows = frame[~dropped], source_rows[~dropped]
        result = roll_up(frame, order_schema)
        customers = result.frame
        rolled = {"order_rows": int(len(frame)), "customers": int(result.customers)}
        row_customer = frame[id_column].astype("string").to_numpy()
        customer_ids = customers[id_column].astype("string").to_numpy()
        #: a customer's first row in the file, named when its rolled-up values cannot be read
        first_rows = pd.Series(source_rows, index=row_customer).groupby(level=0).min().reindex(customer_ids).to_numpy()
    else:
        customers = frame
        row_customer, customer_ids, first_rows = None, None, None

    typed, bad = model.features_.columns_.read(customers.reset_index(drop=True))
    unreadable = bad.any(axis=1).to_numpy()
    if unreadable.any():
        roles = {c.name: c for c in model.schema.features}
        for position in np.flatnonzero(unreadable):
            skipped_count += 1
            if len(skipped) < MAX_SKIPPED_EXAMPLES:
                column = str(bad.columns[bad.iloc[position].to_numpy()][0])
                row = int(source_rows[position]) if first_rows is None else int(first_rows[position])
                skipped.append(SkippedRow(row, _unreadable(roles[column])))
    kept = ~unreadable
    if not kept.any():
        raise InvalidFile(f"None of the {len(raw):,} rows could be used; fix them and upload again. First problems: "
                          + "; ".join(f"row {s.row}: {s.reason}" for s in skipped[:3]),
                          {"rows_received": len(raw), "skipped_examples": [vars(s) for s in skipped]})
    placement = model.place_typed(typed[kept])
    if row_customer is None:
        rows, cid, conf, flag = source_rows[kept], placement.cluster_id, placement.confidence, placement.reassigned
    else:
        assert customer_ids is not None
        position = pd.Series(np.arange(int(kept.sum())), index=customer_ids[kept])
        index = position.reindex(row_customer).to_numpy()
        has = ~np.isnan(index)
        picked = index[has].astype(int)
        rows, cid = source_rows[has], placement.cluster_id[picked]
        conf, flag = placement.confidence[picked], placement.reassigned[picked]
    log.info("table upload read: %d rows received, %d customers placed, %d skipped", len(raw), int(kept.sum()),
             skipped_count)
    return TableUpload(placement, len(raw), int(kept.sum()), table.file_format, table.sheet,
                       {k: v for k, v in matched.items()}, rows, cid, conf, flag, skipped, skipped_count, rolled,
                       customers.reset_index(drop=True)[kept], typed[kept].reset_index(drop=True), left_blank)


def table_rows_as_is(data: bytes) -> pd.DataFrame:
    """Every row of a stored table upload with the file's own headers plus source_row (for the export)."""
    table = read_table(data)
    frame = table.frame.copy()
    frame["source_row"] = np.arange(len(frame), dtype=np.int64) + table.first_row
    return frame


__all__ = ["TableUpload", "match_headers", "read_upload", "table_rows_as_is"]

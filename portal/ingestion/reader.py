"""Ingestion of customer spreadsheets: xlsx, xls and csv in, the canonical customer table out.

Uploads, training and retraining all read customer files here, so every caller gets the same
guarantees: the file type is decided by content, hostile files (zip and XML bombs, encrypted or
truncated workbooks) are refused before any parser sees them, every library failure becomes a
4xx `PortalError` whose message says what to do, and bad rows are skipped with a reason instead
of failing the batch. Reasons and log lines never carry customer-level values (names, emails,
phones, ids, notes); logs carry counts only.

Flow: `read_customer_file` → `formats.sniff_format` → (xlsx) `formats.check_zip` → `sheets` (grid of cells
per sheet, header row) → `rows.normalise_customers`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from portal.errors import InvalidFile, PayloadTooLarge
from portal.ingestion.rows import SkippedRow, normalise_customers
from portal.ingestion.sheets import first_customer_sheet, read_errors, with_own_headers

log = logging.getLogger(__name__)


@dataclass
class CustomerTable:
    """The accepted customers of one file plus what the user needs to hear about the rest."""

    frame: pd.DataFrame
    rows_received: int
    skipped_count: int
    skipped_examples: list[SkippedRow] = field(default_factory=list)
    sheet: str | None = None
    file_format: str = "xlsx"
    columns: dict[str, str] = field(default_factory=dict)


def read_customer_file(source: bytes | Path, *, filename: str | None = None,
                       max_rows: int = 1_048_576, today: date | None = None) -> CustomerTable:
    """Read an uploaded or stored customer file into the canonical table; raise a PortalError on failure.

    `filename` is only used in log lines (never to decide the type).
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    file_format, header, raw = first_customer_sheet(data, filename)
    with read_errors(file_format, len(data)):
        frame, skipped_count, examples = normalise_customers(
            raw, first_row_number=header.row_index + 2, today=today)

    rows_received = len(frame) + skipped_count
    if rows_received > max_rows:
        raise PayloadTooLarge(f"The file has {rows_received:,} customer rows; the limit is {max_rows:,} "
                              "per upload. Split it into smaller files.",
                              {"rows": rows_received, "max_rows": max_rows})
    if rows_received == 0:
        raise InvalidFile("The sheet has a header row but no customer rows under it. Add the customers "
                          "below the header and upload again.", {"sheet": header.sheet})
    if frame.empty:
        raise InvalidFile(f"None of the {rows_received:,} rows could be used; fix the rows below and "
                          f"upload again. First problems: "
                          + "; ".join(f"row {s.row}: {s.reason}" for s in examples[:3]),
                          {"rows_received": rows_received,
                           "skipped_examples": [vars(s) for s in examples]})
    columns = {header.labels[pos]: name for pos, name in header.positions.items()}
    log.info("customer file read: %d rows received, %d accepted, %d skipped", rows_received, len(frame),
             skipped_count)
    return CustomerTable(frame=frame, rows_received=rows_received, skipped_count=skipped_count,
                         skipped_examples=examples, sheet=header.sheet, file_format=file_format,
                         columns=columns)


def read_rows_as_is(source: Path) -> pd.DataFrame:
    """Every row under the header of a stored upload with the file's own column names plus source_row,
    without validating them (the segment export joins its placements back on source_row)."""
    data = Path(source).read_bytes()
    _, header, raw = first_customer_sheet(data, Path(source).name)
    return with_own_headers(raw, header)

"""Where the customers are in a file: each sheet's grid of cells, the header row, the sheet to use.

The header may sit below a title or notes, and the first sheet may be a cover page, so the first
sheet whose top rows hold every required column is taken; otherwise the error names what is missing.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd
import python_calamine

from portal.errors import InvalidFile, MissingColumns, PortalError
from portal.ingestion.formats import (
    CSV_DELIMITERS,
    FIX_PASSWORD,
    FIX_RESAVE,
    SNIFF_BYTES,
    check_zip,
    decode,
    sniff_format,
)
from schemas import REQUIRED_COLUMNS, accepted_names, canonical_column

log = logging.getLogger(__name__)

#: The header may sit below a title or notes; it is looked for in this many top rows of each sheet.
HEADER_SEARCH_ROWS = 10


@dataclass
class Header:
    """Where a sheet's header row is and which of its cells we recognise."""

    sheet: str | None
    row_index: int                  # 0-based index into the sheet's grid
    positions: dict[int, str]       # column position -> canonical name (first spelling wins)
    labels: dict[int, str]          # column position -> header text, for every non-empty header cell

    def complete(self) -> bool:
        return set(REQUIRED_COLUMNS) <= set(self.positions.values())


def first_customer_sheet(data: bytes, filename: str | None) -> tuple[str, Header, pd.DataFrame]:
    """Format, header and raw rows of the first sheet holding the required columns."""
    file_format = sniff_format(data)
    log.info("reading customer file: format=%s, %d bytes%s", file_format, len(data),
             f", suffix={Path(filename).suffix.lower()!r}" if filename else "")
    with read_errors(file_format, len(data)):
        if file_format == "xlsx":
            check_zip(data)
        grids = _csv_grids(data) if file_format == "csv" else excel_grids(data)
        header, grid = _pick_sheet(grids)
        return file_format, header, _raw_frame(grid, header)


@contextmanager
def read_errors(file_format: str, size: int) -> Iterator[None]:
    """Turn any parser failure into a 4xx PortalError that says what to do."""
    try:
        yield
    except PortalError:
        raise
    except python_calamine.PasswordError as exc:
        raise InvalidFile(FIX_PASSWORD) from exc
    except MemoryError as exc:
        log.warning("out of memory reading a %s file of %d bytes", file_format, size)
        raise InvalidFile("The file is too large to read. Split the customers into smaller files and "
                          "upload them one by one.") from exc
    except Exception as exc:  # any parser failure: calamine, xlrd, zipfile, pandas, codecs
        log.warning("unreadable %s file (%s)", file_format, type(exc).__name__)
        raise InvalidFile(f"We could not read this {file_format} file; it may be damaged or saved in an "
                          f"unusual way. {FIX_RESAVE}", {"error_type": type(exc).__name__}) from exc


def with_own_headers(raw: pd.DataFrame, header: Header) -> pd.DataFrame:
    """The rows under the header with the file's own column names, plus source_row."""
    labels: dict[object, str] = {}
    for pos, name in enumerate(raw.columns):
        label = header.labels.get(pos)
        label = str(label).strip() if label is not None and str(label).strip() else f"Column {pos + 1}"
        while label in labels.values():
            label += " (2)"
        labels[name] = label
    frame = raw.rename(columns=labels)
    frame["source_row"] = np.arange(len(frame), dtype=np.int64) + header.row_index + 2
    return frame


_Grid: TypeAlias = list[list[object]] | pd.DataFrame


def _head(grid: _Grid) -> list[list[object]]:
    """The top rows of a grid, where the header is looked for."""
    if isinstance(grid, pd.DataFrame):
        return grid.iloc[:HEADER_SEARCH_ROWS].to_numpy(dtype=object).tolist()
    return grid[:HEADER_SEARCH_ROWS]


def excel_grids(data: bytes) -> Iterator[tuple[str | None, _Grid]]:
    """Each worksheet's cells as rows (visible sheets first); formulas give their cached values."""
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheets = [m for m in workbook.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
    sheets.sort(key=lambda m: m.visible != python_calamine.SheetVisibleEnum.Visible)
    for meta in sheets:
        # skip_empty_area=False keeps the grid aligned with Excel's row numbers.
        yield meta.name, workbook.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)


def _csv_grids(data: bytes) -> Iterator[tuple[str | None, _Grid]]:
    """The csv as one grid of text cells; the delimiter is the one that yields our header."""
    text = decode(data)
    best: tuple[int, str, int] = (-1, ",", 1)
    for delimiter in CSV_DELIMITERS:
        records = csv.reader(io.StringIO(text[:SNIFF_BYTES], newline=""), delimiter=delimiter)
        head = [row for _, row in zip(range(HEADER_SEARCH_ROWS + 1), records)]
        header = _find_header(None, head)
        score = (1000 if header.complete() else 0) + len(header.positions) if header else 0
        if score > best[0]:
            best = (score, delimiter, max((len(r) for r in head), default=1))
    _, delimiter, width = best
    try:
        frame = csv_cells(text, delimiter, width)
    except pd.errors.ParserError:  # a later row is wider than the top ones: read at the widest
        widest = max(len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        frame = csv_cells(text, delimiter, widest)
    yield None, frame


def csv_cells(text: str, delimiter: str, width: int | None = None) -> pd.DataFrame:
    """Every cell of a csv as text ("" when empty, NaN past the end of a short record), one row per record with
    blank lines kept, by pandas' C parser; ``width`` columns, else as many as the first record has (a wider
    record then raises ``ParserError``)."""
    return pd.read_csv(io.StringIO(text), sep=delimiter, header=None, names=range(width) if width else None,
                       dtype=str, na_filter=False, skip_blank_lines=False, engine="c", index_col=False)


def _pick_sheet(grids: Iterator[tuple[str | None, _Grid]]) -> tuple[Header, _Grid]:
    """The first sheet whose top rows hold every required column; otherwise say what is missing."""
    best: Header | None = None
    first_labels: Header | None = None
    sheet_names: list[str] = []
    for name, grid in grids:
        if name is not None:
            sheet_names.append(name)
        head = _head(grid)
        header = _find_header(name, head)
        if header and header.complete():
            return header, grid
        if header and (best is None or len(header.positions) > len(best.positions)):
            best = header
        if first_labels is None and head:
            first_labels = Header(name, 0, {}, _header_like_labels(head))
    raise missing_columns(best or first_labels, sheet_names)


def _find_header(sheet: str | None, head: _Grid) -> Header | None:
    """The first row among `head` with the most recognised column names (at least one)."""
    best: Header | None = None
    for index, row in enumerate(head):
        positions: dict[int, str] = {}
        labels: dict[int, str] = {}
        for pos, cell in enumerate(row):
            if not isinstance(cell, str) or not cell.strip():
                continue
            labels[pos] = cell.strip()
            name = canonical_column(cell)
            if name and name not in positions.values():
                positions[pos] = name
        if not positions:
            continue
        candidate = Header(sheet, index, positions, labels)
        if candidate.complete():
            return candidate
        if best is None or len(positions) > len(best.positions):
            best = candidate
    return best


def _header_like_labels(head: list[list[object]]) -> dict[int, str]:
    """The first non-blank row's cells, but only when they look like headers rather than customer data."""
    for row in head:
        cells = {pos: c for pos, c in enumerate(row) if not is_blank_cell(c)}
        if not cells:
            continue
        looks_like_headers = all(isinstance(c, str) and len(c) <= 40 and "@" not in c
                                 and not re.search(r"\d{3}", c) for c in cells.values())
        return {pos: str(c).strip() for pos, c in cells.items()} if looks_like_headers else {}
    return {}


def is_blank_cell(value: object) -> bool:
    """One cell is empty (None, NaN or whitespace)."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def missing_columns(best: Header | None, sheet_names: list[str]) -> MissingColumns:
    """A 422 naming each missing required column with the spellings we accept."""
    found = set(best.positions.values()) if best else set()
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    headers = list(best.labels.values()) if best else []
    if best is None or not headers:
        lead = ("We found no header row with customer columns in the first "
                f"{HEADER_SEARCH_ROWS} rows of {'any sheet' if len(sheet_names) > 1 else 'the file'}. ")
    else:
        where = f" (sheet '{best.sheet}', row {best.row_index + 1})" if best.sheet else ""
        lead = f"The header row{where} is missing required columns. "
    parts = [f"Column '{c}' is missing; accepted names: {', '.join(accepted_names(c))}" for c in missing]
    return MissingColumns(lead + ". ".join(parts) + ". Rename or add the columns and upload again.",
                          {"missing": [{"column": c, "accepted_names": accepted_names(c)} for c in missing],
                           "headers_found": headers, "sheets": sheet_names})


def _raw_frame(grid: _Grid, header: Header) -> pd.DataFrame:
    """Rows under the header as an object frame; our columns canonical, the others kept for blank checks."""
    start = header.row_index + 1
    if isinstance(grid, pd.DataFrame):
        frame = grid.iloc[start:].reset_index(drop=True)
    else:
        width = max((len(r) for r in grid[:start]), default=0)
        frame = (pd.DataFrame(grid[start:], dtype=object) if len(grid) > start
                 else pd.DataFrame(columns=range(width), dtype=object))
    names = {pos: header.positions.get(pos, f"_other_{pos}") for pos in frame.columns}
    return frame.rename(columns=names)

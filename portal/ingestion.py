"""Ingestion of customer spreadsheets: xlsx, xls and csv in, the canonical customer table out.

Uploads, training and retraining all read customer files here, so every caller gets the same
guarantees: the file type is decided by content, hostile files (zip and XML bombs, encrypted or
truncated workbooks) are refused before any parser sees them, every library failure becomes a
4xx `PortalError` whose message says what to do, and bad rows are skipped with a reason instead
of failing the batch. Reasons and log lines never carry customer-level values (names, emails,
phones, ids, notes); logs carry counts only.

Flow: `read_customer_file` → `sniff_format` → (xlsx) `_check_zip` → grid of cells per sheet →
`_find_header` → `normalise_customers` (vectorised; also used directly by training).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import python_calamine
from dateutil import parser as dateutil_parser
from xlrd.compdoc import CompDoc

from portal.errors import (
    InvalidFile,
    MissingColumns,
    PayloadTooLarge,
    PortalError,
    UnsupportedFile,
)
from schemas import (
    CUSTOMER_ID,
    DATE_JOINED,
    EARLIEST_JOIN_DATE,
    GENDER,
    LOCATION,
    LOYALTY_TIER,
    REQUIRED_COLUMNS,
    accepted_names,
    canonical_column,
    normalise_gender,
    normalise_location,
    normalise_tier,
)

log = logging.getLogger(__name__)

#: Limits checked on the zip directory of an xlsx before any parser runs.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
#: The header may sit below a title or notes; it is looked for in this many top rows of each sheet.
HEADER_SEARCH_ROWS = 10
MAX_SKIPPED_EXAMPLES = 20
#: Dates no vectorised format understood are tried one by one, for at most this many distinct strings.
MAX_FALLBACK_DATES = 20_000
BUSINESS_TIMEZONE = ZoneInfo("Asia/Singapore")
OUTPUT_COLUMNS = (CUSTOMER_ID, DATE_JOINED, LOCATION, GENDER, LOYALTY_TIER, "source_row")

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CSV_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_DTD_MARKERS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY", "<!doctype", "<!entity")
                     for enc in ("utf-8", "utf-16-le", "utf-16-be"))
_TIME_SUFFIX = re.compile(
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp][Mm])?\s*(?:Z|[+-]\d{2}:?\d{2})?)$")
_STRING_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %b %Y",
                        "%d %B %Y", "%d-%b-%Y", "%d-%B-%Y", "%b %d %Y", "%B %d %Y", "%Y%m%d")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})$")
_EXCEL_SERIAL_TEXT = re.compile(r"^\d{5}(?:\.\d+)?$")
_EXCEL_EPOCH = "1899-12-30"
_MAX_EXCEL_SERIAL = 100_000  # 2173-10-14: later is no joining date, and stays inside pandas' range
_FIX_PASSWORD = ("The workbook is password-protected. Open it in Excel, remove the password "
                 "(File > Info > Protect Workbook > Encrypt with Password, clear it), save and upload again.")
_FIX_RESAVE = "Open it in Excel (or Google Sheets), save it again as .xlsx or .csv and upload the new file."


@dataclass
class SkippedRow:
    """A row left out of the upload, with what is wrong and how to fix it (no personal data)."""

    row: int
    reason: str


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


@dataclass
class _Header:
    """Where a sheet's header row is and which of its cells we recognise."""

    sheet: str | None
    row_index: int                  # 0-based index into the sheet's grid
    positions: dict[int, str]       # column position -> canonical name (first spelling wins)
    labels: dict[int, str]          # column position -> header text, for every non-empty header cell

    def complete(self) -> bool:
        return set(REQUIRED_COLUMNS) <= set(self.positions.values())


# ---------------------------------------------------------------------------------------------
# File type and safety
# ---------------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str:
    """Tell xlsx, xls and csv apart by content, because names and browsers' MIME types lie."""
    if not data:
        raise InvalidFile("The file is empty (0 bytes). Export the customer list again and upload "
                          "the saved file.")
    if data.startswith(_ZIP_MAGICS):
        return _sniff_zip(data)
    if data.startswith(_OLE2_MAGIC):
        return _sniff_ole2(data)
    if _looks_like_csv(data):
        return "csv"
    raise UnsupportedFile("This file is not an Excel workbook (.xlsx, .xls) or a CSV file. Save the "
                          "customer list from Excel as .xlsx or .csv and upload that.")


def _sniff_zip(data: bytes) -> str:
    """A zip is an xlsx only when it holds a workbook part."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except Exception as exc:  # BadZipFile, truncated directory, struct errors
        log.info("zip directory unreadable (%s)", type(exc).__name__)
        raise InvalidFile("The .xlsx file is damaged or incomplete (perhaps the download or upload "
                          f"was cut short). {_FIX_RESAVE}", {"error_type": type(exc).__name__}) from exc
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        raise UnsupportedFile("This is a binary Excel workbook (.xlsb). Save it as .xlsx "
                              "(File > Save As > Excel Workbook) and upload that.")
    raise UnsupportedFile("This is a zip archive but not an Excel workbook (a Word, OpenDocument or "
                          "other file?). Save the customer list from Excel as .xlsx and upload that.")


def _sniff_ole2(data: bytes) -> str:
    """Old-format Office files are OLE2 containers; encrypted xlsx files are too."""
    try:
        streams = {entry.name for entry in CompDoc(data, logfile=io.StringIO()).dirlist}
    except Exception as exc:  # CompDocError, IndexError, struct.error on damaged containers
        log.info("OLE2 directory unreadable (%s)", type(exc).__name__)
        raise InvalidFile(f"The .xls file is damaged or incomplete. {_FIX_RESAVE}",
                          {"error_type": type(exc).__name__}) from exc
    if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
        raise InvalidFile(_FIX_PASSWORD)
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    raise UnsupportedFile("This is an older Office file but not an Excel workbook (a Word document?). "
                          "Save the customer list from Excel as .xlsx and upload that.")


def _looks_like_csv(data: bytes) -> bool:
    """Text in an encoding we read, with a delimiter in one of its first lines."""
    try:
        sample = _decode(data[:_SNIFF_BYTES], final=len(data) <= _SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    if any(ch < " " and ch not in "\t\r\n\f" for ch in sample):
        return False
    head = sample.lstrip().lower()
    if head.startswith(("<html", "<!doctype", "<?xml", "<table", "{", "[")):
        raise UnsupportedFile("This is a web page, XML or JSON file, not a spreadsheet (some systems "
                              "export HTML with an .xls name). Open it in Excel, save it as .xlsx and "
                              "upload that.")
    lines = [line for line in sample.splitlines() if line.strip()][:HEADER_SEARCH_ROWS]
    return any(d in line for line in lines for d in _CSV_DELIMITERS)


def _decode(data: bytes, *, final: bool = True) -> str:
    """Decode text the way Excel users save it: UTF-16 with BOM, UTF-8 (BOM or not), else cp1252."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")().decode(data, final=final)
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=final)
    except UnicodeDecodeError:
        return data.decode("cp1252")


def _check_zip(data: bytes) -> None:
    """Refuse zip bombs from the directory alone, then refuse XML with a DTD (entity bombs).

    The checks read the central directory and at most the first 64 KB of each XML part; nothing
    is parsed. calamine has no bomb guard of its own, but it does stop at a member's declared size,
    so capping the declared sizes bounds what it can inflate.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InvalidFile(f"The workbook has {len(infos):,} internal parts, more than the "
                              f"{MAX_ZIP_MEMBERS:,} a real spreadsheet has. {_FIX_RESAVE}")
        total = sum(info.file_size for info in infos)
        if total > MAX_UNCOMPRESSED_BYTES:
            raise InvalidFile(f"The workbook unpacks to {total / 2**20:,.0f} MB, more than the "
                              f"{MAX_UNCOMPRESSED_BYTES / 2**20:,.0f} MB we accept. Remove unused sheets, "
                              "images and formatting, or split the customers into smaller files and "
                              "upload those.",
                              {"uncompressed_mb": round(total / 2**20)})
        for info in infos:
            if info.flag_bits & 0x1:
                raise InvalidFile(_FIX_PASSWORD)
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
                raise InvalidFile("The workbook is packed far more tightly than any real spreadsheet "
                                  f"(one part expands {ratio:,.0f} times), so we refused to open it. "
                                  f"{_FIX_RESAVE}", {"compression_ratio": round(ratio)})
        for info in infos:
            if info.filename.endswith((".xml", ".rels", ".vml")):
                with zf.open(info) as part:
                    head = part.read(_SNIFF_BYTES)
                if any(marker in head for marker in _DTD_MARKERS):
                    raise InvalidFile("The workbook contains XML entity declarations, which Excel never "
                                      f"writes and which can be used to attack servers. {_FIX_RESAVE}")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_customer_file(source: bytes | Path, *, filename: str | None = None,
                       max_rows: int = 1_048_576, today: date | None = None) -> CustomerTable:
    """Read an uploaded or stored customer file into the canonical table; raise a PortalError on failure.

    `filename` is only used in log lines (never to decide the type).
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    file_format, header, raw = _first_customer_sheet(data, filename)
    with _read_errors(file_format, len(data)):
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
    _, header, raw = _first_customer_sheet(data, Path(source).name)
    return _with_own_headers(raw, header)


def _first_customer_sheet(data: bytes, filename: str | None) -> tuple[str, _Header, pd.DataFrame]:
    """Format, header and raw rows of the first sheet holding the required columns."""
    file_format = sniff_format(data)
    log.info("reading customer file: format=%s, %d bytes%s", file_format, len(data),
             f", suffix={Path(filename).suffix.lower()!r}" if filename else "")
    with _read_errors(file_format, len(data)):
        if file_format == "xlsx":
            _check_zip(data)
        grids = _csv_grids(data) if file_format == "csv" else _excel_grids(data)
        header, grid = _pick_sheet(grids)
        return file_format, header, _raw_frame(grid, header)


@contextmanager
def _read_errors(file_format: str, size: int) -> Iterator[None]:
    """Turn any parser failure into a 4xx PortalError that says what to do."""
    try:
        yield
    except PortalError:
        raise
    except python_calamine.PasswordError as exc:
        raise InvalidFile(_FIX_PASSWORD) from exc
    except MemoryError as exc:
        log.warning("out of memory reading a %s file of %d bytes", file_format, size)
        raise InvalidFile("The file is too large to read. Split the customers into smaller files and "
                          "upload them one by one.") from exc
    except Exception as exc:  # any parser failure: calamine, xlrd, zipfile, pandas, codecs
        log.warning("unreadable %s file (%s)", file_format, type(exc).__name__)
        raise InvalidFile(f"We could not read this {file_format} file; it may be damaged or saved in an "
                          f"unusual way. {_FIX_RESAVE}", {"error_type": type(exc).__name__}) from exc


def _with_own_headers(raw: pd.DataFrame, header: _Header) -> pd.DataFrame:
    """The rows under the header with the file's own column names, plus source_row."""
    labels = {}
    for pos, name in enumerate(raw.columns):
        label = header.labels.get(pos)
        label = str(label).strip() if label is not None and str(label).strip() else f"Column {pos + 1}"
        while label in labels.values():
            label += " (2)"
        labels[name] = label
    frame = raw.rename(columns=labels)
    frame["source_row"] = np.arange(len(frame), dtype=np.int64) + header.row_index + 2
    return frame


_Grid = list[list[object]] | pd.DataFrame


def _head(grid: _Grid) -> list[list[object]]:
    """The top rows of a grid, where the header is looked for."""
    if isinstance(grid, pd.DataFrame):
        return grid.iloc[:HEADER_SEARCH_ROWS].to_numpy(dtype=object).tolist()
    return grid[:HEADER_SEARCH_ROWS]


def _excel_grids(data: bytes) -> Iterator[tuple[str | None, _Grid]]:
    """Each worksheet's cells as rows (visible sheets first); formulas give their cached values."""
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheets = [m for m in workbook.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
    sheets.sort(key=lambda m: m.visible != python_calamine.SheetVisibleEnum.Visible)
    for meta in sheets:
        # skip_empty_area=False keeps the grid aligned with Excel's row numbers.
        yield meta.name, workbook.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)


def _csv_grids(data: bytes) -> Iterator[tuple[str | None, _Grid]]:
    """The csv as one grid of text cells; the delimiter is the one that yields our header."""
    text = _decode(data)
    best: tuple[int, str, int] = (-1, ",", 1)
    for delimiter in _CSV_DELIMITERS:
        records = csv.reader(io.StringIO(text[:_SNIFF_BYTES]), delimiter=delimiter)
        head = [row for _, row in zip(range(HEADER_SEARCH_ROWS + 1), records)]
        header = _find_header(None, head)
        score = (1000 if header.complete() else 0) + len(header.positions) if header else 0
        if score > best[0]:
            best = (score, delimiter, max((len(r) for r in head), default=1))
    _, delimiter, width = best
    options = {"sep": delimiter, "header": None, "dtype": str, "na_filter": False,
               "skip_blank_lines": False, "engine": "c", "index_col": False}
    try:
        frame = pd.read_csv(io.StringIO(text), names=range(width), **options)
    except pd.errors.ParserError:  # a later row is wider than the top ones: read at the widest
        widest = max(len(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter))
        frame = pd.read_csv(io.StringIO(text), names=range(widest), **options)
    yield None, frame


def _pick_sheet(grids: Iterator[tuple[str | None, _Grid]]) -> tuple[_Header, _Grid]:
    """The first sheet whose top rows hold every required column; otherwise say what is missing."""
    best: _Header | None = None
    first_labels: _Header | None = None
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
            first_labels = _Header(name, 0, {}, _header_like_labels(head))
    raise _missing_columns(best or first_labels, sheet_names)


def _find_header(sheet: str | None, head: _Grid) -> _Header | None:
    """The first row among `head` with the most recognised column names (at least one)."""
    best: _Header | None = None
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
        candidate = _Header(sheet, index, positions, labels)
        if candidate.complete():
            return candidate
        if best is None or len(positions) > len(best.positions):
            best = candidate
    return best


def _header_like_labels(head: list[list[object]]) -> dict[int, str]:
    """The first non-blank row's cells, but only when they look like headers rather than customer data."""
    for row in head:
        cells = {pos: c for pos, c in enumerate(row) if not _is_blank_cell(c)}
        if not cells:
            continue
        looks_like_headers = all(isinstance(c, str) and len(c) <= 40 and "@" not in c
                                 and not re.search(r"\d{3}", c) for c in cells.values())
        return {pos: str(c).strip() for pos, c in cells.items()} if looks_like_headers else {}
    return {}


def _missing_columns(best: _Header | None, sheet_names: list[str]) -> MissingColumns:
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


def _raw_frame(grid: _Grid, header: _Header) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def normalise_customers(raw: pd.DataFrame, *, first_row_number: int = 2,
                        today: date | None = None) -> tuple[pd.DataFrame, int, list[SkippedRow]]:
    """Validate and normalise customer rows; return (accepted frame, skipped count, first skipped rows).

    `raw` may carry the file's own headers or canonical names (headers are mapped here through
    `schemas.canonical_column`, first spelling wins); values may be anything a spreadsheet or csv
    gives. Row `i` of `raw` is spreadsheet row `first_row_number + i`. Fully blank rows are dropped
    silently; rows received = len(frame) + skipped count. An empty result is returned, not raised:
    callers decide whether that is an error. Raises MissingColumns when a required column is absent.
    """
    columns = _map_columns(raw)
    if any(c not in columns for c in REQUIRED_COLUMNS):
        labels = {pos: str(label) for pos, label in enumerate(raw.columns)}
        raise _missing_columns(_Header(None, 0, {p: n for n, p in columns.items()}, labels), [])
    today = today or datetime.now(BUSINESS_TIMEZONE).date()
    raw = raw.reset_index(drop=True)
    source_row = pd.Series(np.arange(len(raw), dtype=np.int64) + first_row_number)

    texts = {name: _as_text(raw.iloc[:, pos]) for name, pos in columns.items()
             if name in OUTPUT_COLUMNS}
    blank = _blank_rows(raw, texts, {columns[name] for name in texts})
    keep = ~blank

    tier_text = texts[LOYALTY_TIER]
    gender_text = texts.get(GENDER, pd.Series(pd.NA, index=raw.index, dtype="string"))
    location = _map_unique(texts[LOCATION], normalise_location)
    tier = _map_unique(tier_text, normalise_tier)
    gender = _map_unique(gender_text.fillna(""), normalise_gender)
    date_text = texts[DATE_JOINED]
    joined = _parse_dates(raw.iloc[:, columns[DATE_JOINED]], date_text)

    problems = {
        "date_blank": date_text.isna(),
        "date_bad": date_text.notna() & joined.isna(),
        "date_future": joined > pd.Timestamp(today),
        "date_early": joined < pd.Timestamp(EARLIEST_JOIN_DATE),
        "location_blank": location.isna(),
        "tier_blank": tier_text.isna(),
        "tier_bad": tier_text.notna() & tier.isna(),
        "gender_bad": gender.isna(),
    }
    problems = {key: mask.fillna(False).astype(bool) & keep for key, mask in problems.items()}
    bad = pd.concat(problems, axis=1).any(axis=1)
    accepted = keep & ~bad

    values = {"date": date_text, "joined": joined, "tier": tier_text, "gender": gender_text}
    examples = [SkippedRow(int(source_row[i]), _reason(i, problems, values))
                for i in np.flatnonzero(bad.to_numpy())[:MAX_SKIPPED_EXAMPLES]]
    customer_id = texts.get(CUSTOMER_ID, pd.Series(pd.NA, index=raw.index, dtype="string"))
    frame = pd.DataFrame({
        CUSTOMER_ID: customer_id[accepted],
        DATE_JOINED: joined[accepted].dt.normalize().astype("datetime64[ns]"),
        LOCATION: location[accepted].astype("string"),
        GENDER: gender[accepted].astype("string"),
        LOYALTY_TIER: tier[accepted].astype("string"),
        "source_row": source_row[accepted],
    }, columns=list(OUTPUT_COLUMNS)).reset_index(drop=True)
    skipped_count = int(bad.sum())
    log.info("normalised customers: %d rows, %d blank, %d accepted, %d skipped", len(raw),
             int(blank.sum()), len(frame), skipped_count)
    return frame, skipped_count, examples


def _map_columns(raw: pd.DataFrame) -> dict[str, int]:
    """Canonical column name -> position in `raw`; the first column that maps to a name wins."""
    columns: dict[str, int] = {}
    for pos, label in enumerate(raw.columns):
        name = canonical_column(label) if isinstance(label, str) else None
        if name and name not in columns:
            columns[name] = pos
    return columns


def _as_text(values: pd.Series) -> pd.Series:
    """Cells as trimmed strings, <NA> when blank; converted once per distinct value."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    table = pd.array([*map(_cell_text, uniques), None], dtype="string")
    return pd.Series(table[codes], index=values.index)


def _cell_text(value: object) -> str | None:
    """One cell as trimmed text; Excel's 12.0 for a whole number becomes 12."""
    if isinstance(value, float):
        if np.isnan(value):
            return None
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = str(value).strip()
    return text or None


def _blank_rows(raw: pd.DataFrame, texts: dict[str, pd.Series], ours: set[int]) -> pd.Series:
    """Rows with no value in any column; other columns are only looked at where ours are all empty."""
    blank = pd.concat([t.isna() for t in texts.values()], axis=1).all(axis=1)
    others = [pos for pos in range(raw.shape[1]) if pos not in ours]
    if blank.any() and others:
        candidates = raw.loc[blank, :].iloc[:, others]
        filled = candidates.apply(lambda col: _as_text(col).notna()).any(axis=1)
        blank[filled[filled].index] = False
    return blank


def _is_blank_cell(value: object) -> bool:
    """One cell is empty (None, NaN or whitespace)."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _map_unique(text: pd.Series, normalise) -> pd.Series:
    """Apply a per-value normaliser once per distinct value, not once per row."""
    table = {value: normalise(value) for value in text.dropna().unique()}
    return text.map(table).astype(object).where(text.notna(), None)


def _parse_dates(values: pd.Series, text: pd.Series) -> pd.Series:
    """Parse joining dates vectorised; NaT where a cell is blank or unreadable.

    Real Excel dates, Excel serial numbers (as numbers or text), ISO strings and day-first strings
    are read with a handful of vectorised formats; whatever is left is tried one distinct string
    at a time with dateutil (day first), refusing strings that lack a day, month or year. When
    a column's numeric dates are clearly month-first (12/25/2021 and never 25/12/2021), the
    ambiguous ones in it are read month-first too.
    """
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    kinds = values.map(type)
    is_date = kinds.isin([date, datetime, pd.Timestamp])
    if is_date.any():
        result[is_date] = pd.to_datetime(values[is_date].astype(object), errors="coerce")
    is_number = kinds.isin([int, float, np.int64, np.float64])
    if is_number.any():
        result[is_number] = _from_serial(pd.to_numeric(values[is_number], errors="coerce"))
    is_text = text.notna() & ~is_date & result.isna()   # numbers like 20210304 are tried as text too
    if is_text.any():
        result[is_text] = _parse_date_strings(text[is_text])
    return result


def _from_serial(serial: pd.Series) -> pd.Series:
    """Excel serial day numbers (1900 date system) to timestamps; out-of-range numbers become NaT."""
    valid = serial.between(1, _MAX_EXCEL_SERIAL)
    out = pd.Series(pd.NaT, index=serial.index, dtype="datetime64[us]")
    if valid.any():
        out[valid] = pd.to_datetime(serial[valid], unit="D", origin=_EXCEL_EPOCH)
    return out


def _parse_date_strings(text: pd.Series) -> pd.Series:
    """Date strings to timestamps, parsing each distinct string once."""
    codes, uniques = pd.factorize(text)
    parsed = _parse_unique_date_strings(pd.Series(uniques, dtype="string"))
    return pd.Series(parsed.to_numpy()[codes], index=text.index, dtype="datetime64[us]")


def _parse_unique_date_strings(text: pd.Series) -> pd.Series:
    """Distinct date strings to timestamps: vectorised formats first, then one try per leftover."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    serial = text.str.fullmatch(_EXCEL_SERIAL_TEXT.pattern)
    if serial.any():
        out[serial] = _from_serial(pd.to_numeric(text[serial], errors="coerce"))
    day = text.str.replace(_TIME_SUFFIX.pattern, "", regex=True).str.strip()
    month_first = _looks_month_first(day)
    formats = _STRING_DATE_FORMATS
    if month_first:
        log.info("joining dates look month-first; reading ambiguous numeric dates month-first")
        formats = tuple(f.replace("%d/%m", "%m/%d").replace("%d-%m", "%m-%d").replace("%d.%m", "%m.%d")
                        for f in formats)
    for fmt in formats:
        todo = out.isna()
        if not todo.any():
            break
        out[todo] = pd.to_datetime(day[todo], format=fmt, errors="coerce")
    todo = out.isna()
    if todo.any():
        leftovers = day[todo].iloc[:MAX_FALLBACK_DATES]
        out[leftovers.index] = pd.to_datetime(
            [_parse_one_date(value, dayfirst=not month_first) for value in leftovers], errors="coerce")
    return out


def _looks_month_first(day: pd.Series) -> bool:
    """True when some numeric dates only make sense month-first and none only day-first."""
    parts = day.str.extract(_NUMERIC_DMY.pattern)
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    return bool((second > 12).any() and not (first > 12).any())


_DEFAULT_A, _DEFAULT_B = datetime(2001, 1, 1), datetime(2002, 2, 2)


def _parse_one_date(value: str, *, dayfirst: bool) -> datetime | None:
    """dateutil as a last resort, refusing strings that leave out the day, month or year."""
    if len(value) > 40 or not re.search(r"\d", value):
        return None
    try:
        first = dateutil_parser.parse(value, dayfirst=dayfirst, default=_DEFAULT_A, fuzzy=False)
        second = dateutil_parser.parse(value, dayfirst=dayfirst, default=_DEFAULT_B, fuzzy=False)
    except (ValueError, OverflowError, TypeError):
        return None
    if first.date() != second.date():
        return None
    return first.replace(tzinfo=None)


def _shown(value: object, limit: int = 25) -> str:
    """A cell value quoted for a reason, or nothing when it might be personal data or is too long."""
    if value is None or value is pd.NA:
        return ""
    text = str(value)
    if len(text) > limit or "@" in text or "+" in text or re.search(r"\d{5}", text):
        return ""
    return f" '{text}'"


def _reason(i: int, problems: dict[str, pd.Series], values: dict[str, pd.Series]) -> str:
    """What is wrong with row `i` and how to fix it, for the first skipped rows only."""
    def has(key: str) -> bool:
        return bool(problems[key].iloc[i])

    reasons = []
    if has("date_blank"):
        reasons.append("Date Joined is blank; enter the date the customer joined, e.g. 2021-03-04 or "
                       "04/03/2021")
    if has("date_bad"):
        reasons.append(f"Date Joined{_shown(values['date'].iloc[i])} is not a date we can read; use a date "
                       "cell or write it like 2021-03-04 or 04/03/2021 (day first)")
    if has("date_future"):
        reasons.append(f"Date Joined {values['joined'].iloc[i]:%Y-%m-%d} is in the future; check the year")
    if has("date_early"):
        reasons.append(f"Date Joined {values['joined'].iloc[i]:%Y-%m-%d} is before "
                       f"{EARLIEST_JOIN_DATE.year}; check the year")
    if has("location_blank"):
        reasons.append("Location is blank; enter the customer's area or branch, e.g. Tampines")
    if has("tier_blank"):
        reasons.append("Loyalty Tier is blank; use Silver, Gold or Platinum")
    if has("tier_bad"):
        reasons.append(f"Loyalty Tier{_shown(values['tier'].iloc[i])} is not a tier we know; use Silver, "
                       "Gold or Platinum")
    if has("gender_bad"):
        reasons.append(f"Gender{_shown(values['gender'].iloc[i])} is not recognised; use Female, Male, "
                       "Other or leave it blank")
    return "; ".join(reasons)

"""Any customer table in, as its own columns: for learning a schema from a company's own database.

The loyalty reader (``reader.read_customer_file``) looks for the columns the live model needs; this one
knows no column names. It takes the first worksheet with data, the first row that looks like a header
(text in most of the used columns, within the top rows), and any csv delimiter, with the same safety
checks and error messages as uploads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from portal.errors import InvalidFile
from portal.ingestion.formats import CSV_DELIMITERS, SNIFF_BYTES, check_zip, decode, sniff_format
from portal.ingestion.sheets import HEADER_SEARCH_ROWS, csv_cells, excel_grids, is_blank_cell, read_errors


@dataclass
class Table:
    """One sheet of a customer file with the file's own headers; ``first_row`` is the spreadsheet row
    number of its first data row (the header is the row above)."""

    frame: pd.DataFrame
    file_format: str
    sheet: str | None
    first_row: int


def read_table(source: bytes | Path) -> Table:
    """The file's first table with data; a 4xx PortalError that says what to do when there is none."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    file_format = sniff_format(data)
    with read_errors(file_format, len(data)):
        if file_format == "xlsx":
            check_zip(data)
        if file_format == "csv":
            return _csv_table(data)
        for sheet, grid in excel_grids(data):
            table = _grid_table([list(row) for row in grid], file_format, sheet)
            if table is not None:
                return table
    raise InvalidFile("No sheet has a header row with customer rows under it. Put the column names in the "
                      "first row and one customer per row below, then upload again.")


def _csv_table(data: bytes) -> Table:
    text = decode(data)
    delimiter = _delimiter(text[:SNIFF_BYTES])
    columns = _rectangular_columns(text, delimiter)
    if columns is not None:
        table = _columns_table(columns)
    else:
        table = _grid_table(list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)), "csv", None)
    if table is None:
        raise InvalidFile("The csv has no header row with customer rows under it. Put the column names in the "
                          "first line and one customer per line below, then upload again.")
    return table


def _rectangular_columns(text: str, delimiter: str) -> list[np.ndarray] | None:
    """Every column's cells as text ("" when empty), one per record, blank lines kept, read by pandas' C
    parser: about three times faster than ``csv.reader`` into lists on a 100k-row file. None when a record
    has more cells than the first one (the C parser refuses such files): the list path reads those."""
    try:
        frame = csv_cells(text, delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    columns = [frame[name].to_numpy(dtype=object) for name in frame.columns]
    short = pd.isna(columns[-1])  # a record with fewer cells lacks the last one at least
    if short.any():
        columns = [np.where(short & pd.isna(column), "", column) for column in columns]
    return columns


def _columns_table(columns: list[np.ndarray]) -> Table | None:
    """``_grid_table`` for a csv read column by column: the same header row, body rows and columns."""
    blank = [(column == "") | _is_space(column).astype(bool) for column in columns]
    used = [position for position, cells in enumerate(blank) if not cells.all()]
    if not used:
        return None
    width = used[-1] + 1
    columns, blank = columns[:width], blank[:width]
    for index in range(min(HEADER_SEARCH_ROWS, len(columns[0]))):
        if sum(not cells[index] for cells in blank) * 2 < width:
            continue
        kept = ~np.logical_and.reduce(blank)[index + 1:]
        if not kept.any():
            return None
        body: dict[str, np.ndarray] = {}
        for header, column in zip(_unique_headers([column[index] for column in columns]), columns, strict=True):
            cells = column[index + 1:][kept]
            empty = cells == ""
            if not empty.all():  # a column empty throughout is dropped, as the list path drops it
                cells[empty] = None
                body[header] = cells
        return Table(pd.DataFrame(body), "csv", None, index + 2)
    return None


_is_space = np.frompyfunc(str.isspace, 1, 1)


def _delimiter(sample: str) -> str:
    """The delimiter that splits the first lines into the same number (above one) of columns."""
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(CSV_DELIMITERS)).delimiter
    except csv.Error:
        lines = [line for line in sample.splitlines() if line.strip()][:HEADER_SEARCH_ROWS]

        def consistency(d: str) -> tuple[int, int]:
            widths = [len(next(csv.reader([line], delimiter=d))) for line in lines]
            return (sum(w == widths[0] for w in widths) if widths and widths[0] > 1 else 0, widths[0] if widths else 0)

        return max(CSV_DELIMITERS, key=consistency)


def _grid_table(grid: Sequence[Sequence[object]], file_format: str, sheet: str | None) -> Table | None:
    """Header = the first top row whose cells are text in at least half of the used columns."""
    width = max((len(row) if row and _filled_text(row[-1]) else _used_width(row) for row in grid), default=0)
    if width < 1:
        return None
    for index, row in enumerate(grid[:HEADER_SEARCH_ROWS]):
        labels = [c for c in row[:width] if isinstance(c, str) and c.strip()]
        if len(labels) * 2 < width or len(labels) != sum(not is_blank_cell(c) for c in row[:width]):
            continue
        body = [r if len(r) == width else list(r[:width]) + [None] * (width - len(r[:width])) for r in grid[index + 1:]]
        body = [r for r in body if _filled_text(r[0]) or not all(is_blank_cell(c) for c in r)]
        if not body:
            return None
        headers = _unique_headers([*row[:width]] + [None] * (width - len(row[:width])))
        if file_format == "csv":  # every cell is text: empty ones become missing in one pass over an array
            cells = np.array(body, dtype=object)
            cells[cells == ""] = None
            frame = pd.DataFrame(cells, columns=headers)
        else:
            frame = pd.DataFrame(body, columns=headers).replace("", None)
        return Table(frame.dropna(axis=1, how="all"), file_format, sheet, index + 2)
    return None


def _filled_text(cell: object) -> bool:
    """A text cell with something in it: the common case, answered without ``is_blank_cell``'s checks."""
    return isinstance(cell, str) and bool(cell.strip())


def _used_width(row: Sequence[object]) -> int:
    """Columns up to the row's last filled cell (looked for from the end: most rows end filled)."""
    for position in range(len(row) - 1, -1, -1):
        if not is_blank_cell(row[position]):
            return position + 1
    return 0


def _unique_headers(cells: list[object]) -> list[str]:
    names: list[str] = []
    for position, cell in enumerate(cells):
        name = str(cell).strip() if isinstance(cell, str) and cell.strip() else f"Column {position + 1}"
        while name in names:
            name += " (2)"
        names.append(name)
    return names

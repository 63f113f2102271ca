"""Any-table reading of a csv: blank cells, short rows, blank rows and empty columns, and the column reader
that serves large files giving the list reader's tables."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pandas as pd
import pytest

from portal.ingestion.formats import SNIFF_BYTES, decode
from portal.ingestion.tables import _columns_table, _delimiter, _grid_table, _rectangular_columns, read_table

DATA = Path(__file__).parent / "data"
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

ROWS = [["Customer", "Spend", "City", "Notes", "Tier"],
        ["C1", "10.5", "Oslo", "", "Gold"],
        ["C2", "", "  ", "", "Silver"],
        ["C3", "7"],  # a short row: the missing cells are blank
        ["", "", "", "", ""],  # a blank row is dropped
        ["C4", "3", "Bergen", "", ""]]


def _csv(rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(r) for r in rows).encode()


def test_csv_blanks_short_rows_and_empty_columns():
    table = read_table(_csv(ROWS))
    frame = table.frame
    assert list(frame.columns) == ["Customer", "Spend", "City", "Tier"]  # Notes is empty throughout
    assert frame["Customer"].tolist() == ["C1", "C2", "C3", "C4"]
    assert frame["Spend"].isna().tolist() == [False, True, False, False]
    assert frame["Tier"].isna().tolist() == [False, False, True, True]
    assert frame["City"].tolist()[1] == "  "  # whitespace is kept as written (the schema readers strip it)
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns)
    assert table.first_row == 2



def _list_path(data: bytes):
    """The csv read as ``csv.reader`` lists, the path files the column reader cannot take go through."""
    text = decode(data)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text[:SNIFF_BYTES]))
    return _grid_table(list(records), "csv", None)


def _same_table(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    pd.testing.assert_frame_equal(a.frame, b.frame)
    return a.first_row == b.first_row


def test_column_reader_reads_every_csv_as_the_list_reader_does():
    """Random csvs of quoted, multi-line, blank, whitespace, short and over-long records: wherever the column
    reader takes a file, it returns the list reader's table, cell for cell."""
    rng = random.Random(7)
    cells = ["a", "b", " ", "", '""', '"x,y"', '"q""q"', "1", "2.5", "\t", "nan", "NA", '"multi\nline"', "#", "'",
             'a"b', ' "x"', "é", "x;y", "\x00", "\r", '"cr\rinside"']
    taken = 0
    for _ in range(3000):
        width = rng.randint(1, 5)
        lines = ["" if rng.random() < 0.1 else
                 ",".join(rng.choice(cells) for _ in range(rng.choice([width, width, rng.randint(0, width + 1)])))
                 for _ in range(rng.randint(0, 14))]
        if lines and rng.random() < 0.5:
            lines[0] = ",".join(f"H{i}" for i in range(width))
        data = rng.choice(["\n", "\n", "\r\n", "\r"]).join(lines).encode()
        text = decode(data)
        columns = _rectangular_columns(text, _delimiter(text[:SNIFF_BYTES]))
        if columns is None:
            continue
        taken += 1
        assert _same_table(_columns_table(columns), _list_path(data)), data
    assert taken > 1500  # the rest have a record longer than the first


def test_a_record_longer_than_the_header_is_read_by_the_list_reader():
    data = b"Name,Spend\nA,1\nB,2,extra\n"
    assert _rectangular_columns(decode(data), ",") is None
    table = read_table(data)
    assert _same_table(table, _list_path(data))
    assert table.frame["Name"].tolist() == ["A", "B"]
    assert table.frame["Column 3"].isna().tolist() == [True, False]
    assert table.frame["Column 3"].iloc[1] == "extra"


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["Windows", "classic Mac"])
def test_any_line_ending_reads_as_unix_lines_do(newline):
    """Excel for Mac's "CSV (Macintosh)" ends lines with a carriage return alone."""
    lines = ["Name,Spend,Notes", "A,1,", "", 'B,2,"two', 'lines"']
    unix = read_table("\n".join(lines).encode())
    other = read_table(newline.join(lines).encode())
    assert unix.frame["Name"].tolist() == other.frame["Name"].tolist() == ["A", "B"]
    assert other.frame["Notes"].isna().tolist() == [True, False]
    assert other.frame["Notes"].iloc[1] == f"two{newline}lines"
    assert other.first_row == unix.first_row == 2


def test_real_csvs_read_alike_on_both_paths():
    files = sorted(DATA.glob("*.csv")) + (sorted(SHARED_DATASETS.glob("*.csv")) if SHARED_DATASETS.is_dir() else [])
    assert files
    for path in files:
        data = path.read_bytes()
        text = decode(data)
        assert _rectangular_columns(text, _delimiter(text[:SNIFF_BYTES])) is not None, path.name
        assert _same_table(read_table(data), _list_path(data)), path.name

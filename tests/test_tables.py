"""Any-table reading of a csv: blank cells, short rows, blank rows and empty columns."""

from __future__ import annotations

import pandas as pd

from portal.ingestion.tables import read_table

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


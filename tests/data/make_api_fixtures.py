"""Regenerate the API tests' extra fixtures in tests/data, byte for byte the same on every run.

Run: ``.venv/bin/python tests/data/make_api_fixtures.py``. Reuses the workbook helpers of
`make_fixtures.py` (fixed zip timestamps) and adds what only the HTTP tests need.
"""

from __future__ import annotations

from datetime import datetime

if __package__:  # imported by the tests
    from .make_fixtures import HEADER, _xlsx, write_fixtures
else:  # run as a script
    from make_fixtures import HEADER, _xlsx, write_fixtures

#: Personal data on rows that are *accepted*, so any leak into responses, exports' JSON or LLM prompts shows.
API_PII_VALUES = ("ZX-778812", "Wong Kai Xiang", "kaixiang.wong@example.net", "+65 9001 2345",
                  "Prefers SMS, allergic to nuts", "ZX-778813", "Siti Nurhaliza binte Rahman",
                  "siti.rahman@example.org", "+65 8112 7788", "VIP complaint 12 March")

#: Text that a spreadsheet would run as a formula, in a cell and in a column header.
FORMULA_HEADER = '=HYPERLINK("http://evil.example","Open")'
FORMULA_CELLS = ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1,1)")


def pii_accepted() -> bytes:
    """Two customers with names, emails, phones, ids and notes, both rows valid."""
    v = API_PII_VALUES
    return _xlsx({"Customers": [HEADER,
                                [v[0], v[1], v[2], v[3], datetime(2019, 6, 1), "Tampines", "Female", "Gold", v[4]],
                                [v[5], v[6], v[7], v[8], datetime(2021, 2, 3), "Woodlands", "Female", "Silver",
                                 v[9]]]})


def formula_text() -> bytes:
    """Valid customers whose extra column (with a formula-looking header) holds formula-looking text."""
    rows = [["Date Joined", "Location", "Loyalty Tier", FORMULA_HEADER]]
    rows += [[datetime(2020, 1 + i, 5), "Bedok", "Gold", text] for i, text in enumerate(FORMULA_CELLS)]
    return _xlsx({"Sheet1": rows})


def segments_mix_csv() -> bytes:
    """Three groups of clearly different customers in unequal numbers (30, 12, 5): several segments."""
    groups = ((30, "2020-03-01", "Tampines", "F", "Gold"), (12, "2015-07-01", "Woodlands", "M", "Silver"),
              (5, "2023-11-01", "Bukit Timah", "F", "Platinum"))
    lines = ["Date Joined,Location,Gender,Loyalty Tier"]
    lines += [f"{joined},{area},{gender},{tier}" for n, joined, area, gender, tier in groups for _ in range(n)]
    return ("\n".join(lines) + "\n").encode()


FIXTURES = {
    "api_pii_accepted.xlsx": pii_accepted,
    "api_formula_text.xlsx": formula_text,
    "api_segments_mix.csv": segments_mix_csv,
}


if __name__ == "__main__":
    write_fixtures(FIXTURES)

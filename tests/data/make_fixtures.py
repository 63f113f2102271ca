"""Regenerate every spreadsheet fixture in tests/data, byte for byte the same on every run.

Run: ``.venv/bin/python tests/data/make_fixtures.py``. Needs the dev-only tools xlwt (for .xls)
and msoffcrypto-tool (for the password-protected workbook) besides openpyxl. Zip timestamps,
document properties and encryption salts are fixed so the files only change when this script does.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
HEADER = ["Customer ID", "Full Name", "Email Address", "Phone Number", "Date Joined", "Location",
          "Gender", "Loyalty Tier", "Notes"]

#: Customer-level values that must never show up in messages or logs (the PII fixture uses them).
PII_VALUES = ("CUST900001", "Tan Mei Ling", "meiling.tan@example.com", "+65 9123 4567",
              "Asked about birthday perks", "CUST900002", "Muhammad Hafiz bin Osman",
              "hafiz.osman@example.com", "+65 8765 4321", "Complained about delivery delay")


def _rezip(data: bytes, patches: dict[str, object] | None = None) -> bytes:
    """Rewrite a zip with fixed timestamps, optionally replacing or transforming members."""
    patches = patches or {}
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            patch = patches.get(info.filename)
            body = patch(body) if callable(patch) else (patch if patch is not None else body)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2024-01-01T00:00:00Z", body)
            target.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), body,
                            compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    """An xlsx with the given sheets (rows of cell values; strings starting with = stay text)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"
                if isinstance(cell.value, (date, datetime)):
                    cell.number_format = "dd/mm/yyyy"
    buffer = io.BytesIO()
    wb.save(buffer)
    return _rezip(buffer.getvalue())


def _customers(n: int = 6) -> list[list[object]]:
    """n good customer rows in canonical order, with real dates."""
    areas = ["Tampines", "Bedok", "Jurong West", "Punggol", "Bishan", "Woodlands"]
    tiers = ["Silver", "Gold", "Platinum"]
    return [[f"C{1000 + i}", f"Customer {i}", f"c{i}@example.com", f"+65 8000 {1000 + i}",
             datetime(2019, 1 + i % 12, 1 + i % 27), areas[i % len(areas)],
             "Female" if i % 2 else "Male", tiers[i % 3], ""] for i in range(n)]


def aliased_headers() -> bytes:
    """Seed-style aliases in odd casing, columns in another order, values in loose spellings."""
    rows = [["CUST_ID", "joined_date", "BRANCH", "Sex", "Membership Level", "E-Mail"],
            ["A1", datetime(2020, 5, 17), "  tampines ", "f", "gold", "a@example.com"],
            ["A2", datetime(2018, 1, 2), "JURONG WEST", "M", "PLATINUM TIER", "b@example.com"],
            ["A3", datetime(2022, 11, 30), "bedok", "", "silver member", "c@example.com"],
            [1004, datetime(2021, 7, 7), "Bishan", "male", "VIP", "d@example.com"]]
    return _xlsx({"Sheet1": rows})


def dates_text() -> bytes:
    """The same day, 4 March 2021, written every way customers' files write it."""
    written = ["2021-03-04", "2021/03/04", "2021-03-04 10:30:00", "2021-03-04T10:30:00", "04/03/2021",
               "4/3/2021", "4-3-2021", "04 Mar 2021", "4 March 2021", "04.03.2021", 44259,
               "44259", datetime(2021, 3, 4), datetime(2021, 3, 4, 15, 45)]
    rows = [["Date Joined", "Location", "Loyalty Tier"]]
    rows += [[value, "Bedok", "Gold"] for value in written]
    return _xlsx({"Customers": rows})


def cover_sheet() -> bytes:
    """A cover sheet first, the customers second, a lookup sheet last."""
    return _xlsx({
        "Read me": [["Loyalty programme export"], ["Prepared by CRM team"],
                    ["Location", "means the member's home branch"]],
        "Customers": [HEADER, *_customers(5)],
        "Lookups": [["Tier", "Points"], ["Silver", 0], ["Gold", 1000], ["Platinum", 5000]],
    })


def title_row() -> bytes:
    """A title in row 1, a blank row 2, the header in row 3, customers from row 4."""
    return _xlsx({"Export": [["Customer export, all branches"], [],
                             ["Date Joined", "Location", "Gender", "Loyalty Tier"],
                             [datetime(2020, 1, 15), "Bedok", "F", "Gold"],
                             [datetime(2021, 2, 16), "Yishun", "M", "Silver"],
                             [datetime(2022, 3, 17), "Tampines", "F", "Platinum"]]})


def formulas() -> bytes:
    """Formula cells with cached values, and text that merely starts with = + - @."""
    rows = [["Date Joined", "Location", "Gender", "Loyalty Tier", "Notes"],
            ["@F_DATE", "Bedok", "F", "@F_TIER", "=1+1"],
            [datetime(2020, 2, 2), "Tampines", "-", "Gold", "+65 not a formula"],
            [datetime(2020, 3, 3), "@Orchard", "M", "Silver", "-5 points"],
            [datetime(2020, 4, 4), "Bishan", "M", "@F_EMPTY", ""]]
    formulas_with_cache = {
        b"@F_DATE": b"<f>DATE(2021,3,4)</f><v>44259</v>",      # a date formula: cached serial number
        b"@F_TIER": b'<f>PROPER("gold")</f><v>Gold</v>',       # a text formula: cached text
        b"@F_EMPTY": b'<f>PROPER("gold")</f><v></v>',          # never calculated: no cached value
    }

    def cache(xml: bytes) -> bytes:
        for marker, formula in formulas_with_cache.items():
            xml = re.sub(rb'(<c r="[A-Z]+\d+")[^>]*><is><t>' + marker + rb"</t></is></c>",
                         lambda m, f=formula: m.group(1) + (b' t="str">' if b'"' in f else b">")
                         + f + b"</c>", xml)
        return xml

    return _rezip(_xlsx({"Sheet1": rows}), {"xl/worksheets/sheet1.xml": cache})


def bad_rows() -> bytes:
    """One row per kind of problem, between good rows; row 6 is fully blank."""
    rows = [["Date Joined", "Location", "Gender", "Loyalty Tier"],
            [datetime(2020, 1, 1), "Bedok", "F", "Gold"],            # 2 good
            [datetime(2020, 1, 2), "Bedok", "F", "Bronze"],          # 3 unknown tier
            [datetime(2020, 1, 3), "Bedok", "Q", "Gold"],            # 4 unknown gender
            [datetime(2020, 1, 4), "   ", "M", "Silver"],            # 5 blank location
            [None, None, None, None],                                # 6 blank row: ignored
            ["not a date", "Bedok", "M", "Silver"],                  # 7 unreadable date
            [datetime(2099, 1, 1), "Bedok", "M", "Silver"],          # 8 future date
            [datetime(1975, 5, 1), "Bedok", "M", "Silver"],          # 9 before 1980
            [datetime(2020, 1, 9), "Bedok", "M", None],              # 10 blank tier
            [None, "Bedok", "M", "Gold"],                            # 11 blank date
            ["31/02/2021", "", "M", "Bronze"],                       # 12 three problems
            [datetime(2020, 1, 12), "Punggol", "", "platinum"]]      # 13 good, gender Unknown
    return _xlsx({"Sheet1": rows})


def pii_columns() -> bytes:
    """Names, emails, phones and notes beside the features; both customers have a bad value."""
    rows = [HEADER,
            [PII_VALUES[0], PII_VALUES[1], PII_VALUES[2], PII_VALUES[3], datetime(2020, 1, 1), "Bedok",
             "Female", "Bronze", PII_VALUES[4]],
            [PII_VALUES[5], PII_VALUES[6], PII_VALUES[7], PII_VALUES[8], "someday", "", "Male",
             "Gold", PII_VALUES[9]],
            *_customers(3)]
    return _xlsx({"Customers": rows})


def customers_xls() -> bytes:
    """An Excel 97-2003 workbook with real date cells and a text date."""
    import xlwt

    wb = xlwt.Workbook()
    ws = wb.add_sheet("Customers")
    date_style = xlwt.easyxf(num_format_str="DD/MM/YYYY")
    for col, name in enumerate(HEADER):
        ws.write(0, col, name)
    for r, row in enumerate(_customers(4), start=1):
        for col, value in enumerate(row):
            ws.write(r, col, value, date_style) if isinstance(value, datetime) else ws.write(r, col, value)
    ws.write(5, 4, "15/08/2019")
    ws.write(5, 5, "Sengkang")
    ws.write(5, 7, "Gold")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def customers_csv() -> bytes:
    """Comma-separated, UTF-8 with BOM (Excel's 'CSV UTF-8'), day-first text dates."""
    lines = ["Customer ID,Date Joined,Location,Gender,Loyalty Tier,Notes",
             "C1,04/03/2021,Bedok,F,Gold,\"likes promos, weekends\"",
             "C2,25/12/2020,Tampines,M,Silver,",
             "C3,2019-07-01,Jurong West,,Platinum,",
             ",,,,,",
             "C4,1/2/2022,Punggol,Female,gold,"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def customers_semicolon_csv() -> bytes:
    """Semicolon-separated cp1252 (European Excel), with an accented note."""
    lines = ["cust_id;join_date;region;gender;tier;remarks",
             "S1;04.03.2021;Bedok;F;Gold;Café regular",
             "S2;2020-12-25;Tampines;M;Silver;",
             "S3;5 Jan 2019;Yishun;M;plat;"]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def all_bad_csv() -> bytes:
    """Every row is unusable."""
    return b"Date Joined,Location,Loyalty Tier\nsoon,Bedok,Gold\n2020-01-01,,Gold\n2020-01-01,Bedok,Bronze\n"


def missing_tier_csv() -> bytes:
    """Date and location are there; the tier column is not."""
    return b"Date Joined,Location,Gender\n2020-01-01,Bedok,F\n"


def wrong_columns() -> bytes:
    """A spreadsheet, but not of customers."""
    return _xlsx({"Orders": [["Product", "Price", "Quantity"], ["Kopi", 1.8, 2], ["Teh", 1.6, 1]]})


def empty_sheet() -> bytes:
    """A valid workbook whose only sheet is empty."""
    return _xlsx({"Sheet1": []})


def header_only() -> bytes:
    """The header row and nothing else."""
    return _xlsx({"Sheet1": [["Date Joined", "Location", "Loyalty Tier"]]})


def truncated_xlsx() -> bytes:
    """The first 60% of a good workbook, as an interrupted download leaves it."""
    data = cover_sheet()
    return data[: len(data) * 6 // 10]


def truncated_xls() -> bytes:
    """The first half of a good .xls."""
    data = customers_xls()
    return data[: len(data) // 2]


def word_renamed() -> bytes:
    """A zip that is not a workbook (a minimal Word document layout)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in (("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<document/>")):
            z.writestr(zipfile.ZipInfo(name, FIXED_TIME), body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_bomb() -> bytes:
    """A workbook whose sheet inflates 1,000 times: 20 MB of spaces in a ~20 KB file."""
    sheet = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    sheet += b" " * (20 * 1024 * 1024) + b"<sheetData/></worksheet>"
    return _rezip(header_only(), {"xl/worksheets/sheet1.xml": sheet})


def zip_bomb_declared() -> bytes:
    """A tiny workbook whose directory declares a 3.75 GB sheet (the real one is 1 MB of spaces)."""
    sheet = b" " * (1024 * 1024)
    data = bytearray(_rezip(header_only(), {"xl/worksheets/sheet1.xml": sheet}))
    fake = struct.pack("<I", 0xF000_0000)
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/worksheets/sheet1.xml")
    data[info.header_offset + 22: info.header_offset + 26] = fake      # local file header
    entry = data.index(b"xl/worksheets/sheet1.xml", data.rindex(b"PK\x05\x06") - 2000) - 46
    assert data[entry:entry + 4] == b"PK\x01\x02"
    data[entry + 24: entry + 28] = fake                                  # central directory
    return bytes(data)


def xml_bomb() -> bytes:
    """Billion laughs: nested entities inside sheet1.xml (about 3 GB if expanded)."""
    entities = b'<!ENTITY lol "lollollollollollollollollollol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 9))
    sheet = (b'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [' + entities + b"]>"
             b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             b'<row r="1"><c r="A1" t="inlineStr"><is><t>Date Joined</t></is></c>'
             b'<c r="B1" t="inlineStr"><is><t>Location</t></is></c>'
             b'<c r="C1" t="inlineStr"><is><t>Loyalty Tier</t></is></c></row>'
             b'<row r="2"><c r="A2" t="inlineStr"><is><t>2020-01-01</t></is></c>'
             b'<c r="B2" t="inlineStr"><is><t>&lol8;</t></is></c>'
             b'<c r="C2" t="inlineStr"><is><t>Gold</t></is></c></row></sheetData></worksheet>')
    return _rezip(header_only(), {"xl/worksheets/sheet1.xml": sheet})


def password_xlsx() -> bytes:
    """A good workbook encrypted with the password 'secret' (Excel's agile encryption)."""
    import msoffcrypto.method.container.ecma376_encrypted as container
    import msoffcrypto.method.ecma376_agile as agile
    from msoffcrypto.format.ooxml import OOXMLFile

    class _FixedClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 1, 1)

    rng = random.Random(42)
    originals = agile._random_buffer, container.datetime
    agile._random_buffer = lambda size: bytes(rng.getrandbits(8) for _ in range(size))
    container.datetime = _FixedClock
    try:
        out = io.BytesIO()
        OOXMLFile(io.BytesIO(title_row())).encrypt("secret", out)
    finally:
        agile._random_buffer, container.datetime = originals
    return out.getvalue()


FIXTURES = {
    "aliased_headers.xlsx": aliased_headers,
    "dates_text.xlsx": dates_text,
    "cover_sheet.xlsx": cover_sheet,
    "title_row.xlsx": title_row,
    "formulas.xlsx": formulas,
    "bad_rows.xlsx": bad_rows,
    "pii_columns.xlsx": pii_columns,
    "customers.xls": customers_xls,
    "customers.csv": customers_csv,
    "customers_semicolon.csv": customers_semicolon_csv,
    "all_bad.csv": all_bad_csv,
    "missing_tier.csv": missing_tier_csv,
    "wrong_columns.xlsx": wrong_columns,
    "empty.xlsx": lambda: b"",
    "empty_sheet.xlsx": empty_sheet,
    "header_only.xlsx": header_only,
    "text_renamed.xlsx": lambda: b"These are my customers, see attached.\nThanks\n".replace(b",", b""),
    "html_renamed.xls": lambda: b"<html><body><table><tr><td>Date Joined</td></tr></table></body></html>",
    "word_renamed.xlsx": word_renamed,
    "truncated.xlsx": truncated_xlsx,
    "truncated.xls": truncated_xls,
    "zip_bomb.xlsx": zip_bomb,
    "zip_bomb_declared.xlsx": zip_bomb_declared,
    "xml_bomb.xlsx": xml_bomb,
    "password.xlsx": password_xlsx,
}


def write_fixtures(fixtures: dict) -> None:
    """Write each fixture next to this script."""
    for name, make in fixtures.items():
        (HERE / name).write_bytes(make())


if __name__ == "__main__":
    write_fixtures(FIXTURES)

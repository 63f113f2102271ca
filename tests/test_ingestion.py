"""Customer spreadsheets in, canonical customers out: what an uploader sees for each kind of file.

Fixtures live in tests/data and are rebuilt by tests/data/make_fixtures.py.
"""

from __future__ import annotations

import logging
import time
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import python_calamine
import xlrd
from xlrd.compdoc import CompDocError

from portal.errors import (
    InvalidFile,
    MissingColumns,
    PayloadTooLarge,
    PortalError,
    UnsupportedFile,
)
from portal.ingestion import formats, sheets
from portal.ingestion.formats import sniff_format
from portal.ingestion.reader import CustomerTable, read_customer_file
from portal.ingestion.rows import normalise_customers
from schemas import accepted_names

DATA = Path(__file__).parent / "data"
TODAY = date(2025, 1, 1)
PII_VALUES = ("CUST900001", "Tan Mei Ling", "meiling.tan@example.com", "+65 9123 4567",
              "Asked about birthday perks", "CUST900002", "Muhammad Hafiz bin Osman",
              "hafiz.osman@example.com", "+65 8765 4321", "Complained about delivery delay")
FEATURES = ["Customer ID", "Date Joined", "Location", "Gender", "Loyalty Tier", "source_row"]


def read(name: str, **kwargs) -> CustomerTable:
    return read_customer_file(DATA / name, today=TODAY, **kwargs)


def refusal(name: str, **kwargs) -> PortalError:
    with pytest.raises(PortalError) as caught:
        read(name, **kwargs)
    return caught.value


# --- file type and hostile files ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("aliased_headers.xlsx", "xlsx"), ("customers.xls", "xls"), ("customers.csv", "csv"),
    ("customers_semicolon.csv", "csv"),
])
def test_format_is_decided_by_content(name, expected):
    assert sniff_format((DATA / name).read_bytes()) == expected


@pytest.mark.parametrize(("name", "error", "status", "hint"), [
    ("empty.xlsx", InvalidFile, 422, "empty"),
    ("text_renamed.xlsx", UnsupportedFile, 415, "save the customer list from excel as .xlsx"),
    ("html_renamed.xls", UnsupportedFile, 415, "save it as .xlsx"),
    ("word_renamed.xlsx", UnsupportedFile, 415, "not an excel workbook"),
    ("truncated.xlsx", InvalidFile, 422, "damaged or incomplete"),
    ("truncated.xls", InvalidFile, 422, "damaged or incomplete"),
    ("password.xlsx", InvalidFile, 422, "remove the password"),
    ("zip_bomb.xlsx", InvalidFile, 422, "packed far more tightly"),
    ("zip_bomb_declared.xlsx", InvalidFile, 422, "more than the 200 mb"),
    ("xml_bomb.xlsx", InvalidFile, 422, "entity declarations"),
    ("header_only.xlsx", InvalidFile, 422, "no customer rows"),
    ("empty_sheet.xlsx", MissingColumns, 422, "no header row"),
])
def test_unusable_files_get_a_4xx_that_says_what_to_do(name, error, status, hint):
    exc = refusal(name)
    assert type(exc) is error and exc.status == status
    assert hint in exc.message.lower()
    assert any(word in exc.message.lower() for word in ("upload", "save"))


@pytest.mark.parametrize("name", ["zip_bomb.xlsx", "zip_bomb_declared.xlsx", "xml_bomb.xlsx",
                                  "password.xlsx"])
def test_bombs_are_refused_fast_without_parsing(name, monkeypatch):
    def parser_must_not_run(data):
        raise AssertionError("the spreadsheet parser ran on a hostile file")

    monkeypatch.setattr(sheets, "excel_grids", parser_must_not_run)
    started = time.perf_counter()
    exc = refusal(name)
    assert isinstance(exc, InvalidFile) and "parser ran" not in exc.message
    assert time.perf_counter() - started < 2


def test_zip_with_too_many_parts_is_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_ZIP_MEMBERS", 3)
    assert "internal parts" in refusal("aliased_headers.xlsx").message


@pytest.mark.parametrize("exc", [
    KeyError("xl/sharedStrings.xml"), AssertionError(), zipfile.BadZipFile("bad"), CompDocError("bad"),
    xlrd.XLRDError("bad"), ValueError("bad"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
    pd.errors.ParserError("bad"), python_calamine.CalamineError("bad"), MemoryError(), RecursionError(),
])
def test_every_library_failure_becomes_invalid_file(exc, monkeypatch):
    def failing_parser(data):
        raise exc

    monkeypatch.setattr(sheets, "excel_grids", failing_parser)
    error = refusal("aliased_headers.xlsx")
    assert isinstance(error, InvalidFile) and error.status == 422
    assert "bad" not in error.message and "upload" in error.message


# --- finding the customers ---------------------------------------------------------------------


def test_aliased_mixed_case_headers_and_loose_values_are_canonical():
    table = read("aliased_headers.xlsx")
    assert table.columns == {"CUST_ID": "Customer ID", "joined_date": "Date Joined", "BRANCH": "Location",
                             "Sex": "Gender", "Membership Level": "Loyalty Tier", "E-Mail": "Email Address"}
    frame = table.frame
    assert list(frame.columns) == FEATURES
    assert frame["Location"].tolist() == ["Tampines", "Jurong West", "Bedok", "Bishan"]
    assert frame["Gender"].tolist() == ["Female", "Male", "Unknown", "Male"]
    assert frame["Loyalty Tier"].tolist() == ["Gold", "Platinum", "Silver", "Platinum"]
    assert frame["Customer ID"].tolist() == ["A1", "A2", "A3", "1004"]
    assert str(frame["Date Joined"].dtype).startswith("datetime64")
    assert frame["Date Joined"].iloc[0] == pd.Timestamp("2020-05-17")


@pytest.mark.parametrize(("name", "file_format", "sheet", "rows", "first_row", "first_date"), [
    ("cover_sheet.xlsx", "xlsx", "Customers", 5, 2, "2019-01-01"),
    ("title_row.xlsx", "xlsx", "Export", 3, 4, "2020-01-15"),
    ("customers.xls", "xls", "Customers", 5, 2, "2019-01-01"),
    ("customers.csv", "csv", None, 4, 2, "2021-03-04"),
    ("customers_semicolon.csv", "csv", None, 3, 2, "2021-03-04"),
])
def test_each_layout_and_format_is_read(name, file_format, sheet, rows, first_row, first_date):
    table = read(name)
    assert (table.file_format, table.sheet, table.rows_received, table.skipped_count) == (
        file_format, sheet, rows, 0)
    assert table.frame["source_row"].iloc[0] == first_row
    assert table.frame["Date Joined"].iloc[0] == pd.Timestamp(first_date)


def test_blank_lines_are_ignored_but_row_numbers_stay_true():
    table = read("customers.csv")
    assert table.frame["source_row"].tolist() == [2, 3, 4, 6]
    assert table.frame["Gender"].tolist() == ["Female", "Male", "Unknown", "Female"]


@pytest.mark.parametrize("name", ["customers.csv", "customers_semicolon.csv"])
def test_carriage_return_lines_read_as_unix_lines_do(name):
    """Excel for Mac's "CSV (Macintosh)" ends every line with a carriage return alone."""
    data = (DATA / name).read_bytes().replace(b"\r\n", b"\n")
    unix = read_customer_file(data)
    mac = read_customer_file(data.replace(b"\n", b"\r"))
    pd.testing.assert_frame_equal(mac.frame, unix.frame)
    assert mac.rows_received == unix.rows_received > 0


def test_dates_written_every_way_mean_the_same_day():
    table = read("dates_text.xlsx")
    assert table.skipped_count == 0 and table.rows_received == 14
    assert (table.frame["Date Joined"] == pd.Timestamp("2021-03-04")).all()
    assert table.frame["Gender"].eq("Unknown").all()          # no Gender column at all


def test_formulas_give_their_cached_values_and_text_stays_text():
    table = read("formulas.xlsx")
    frame = table.frame
    assert frame["Date Joined"].iloc[0] == pd.Timestamp("2021-03-04")
    assert frame["Loyalty Tier"].iloc[0] == "Gold"
    assert frame["Location"].tolist() == ["Bedok", "Tampines", "@Orchard"]
    assert [(s.row, s.reason.split(";")[0]) for s in table.skipped_examples] == [
        (5, "Loyalty Tier is blank")]          # a formula Excel never calculated has no value


# --- bad rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "reason"), [
    (3, "Loyalty Tier 'Bronze' is not a tier we know; use Silver, Gold or Platinum"),
    (4, "Gender 'Q' is not recognised; use Female, Male, Other or leave it blank"),
    (5, "Location is blank; enter the customer's area or branch"),
    (7, "Date Joined 'not a date' is not a date we can read"),
    (8, "Date Joined 2099-01-01 is in the future"),
    (9, "Date Joined 1975-05-01 is before 1980"),
    (10, "Loyalty Tier is blank"),
    (11, "Date Joined is blank"),
    (12, "Date Joined '31/02/2021' is not a date we can read"),
])
def test_bad_rows_are_skipped_with_row_number_and_fix(row, reason):
    table = read("bad_rows.xlsx")
    reasons = {s.row: s.reason for s in table.skipped_examples}
    assert reason in reasons[row]


def test_bad_rows_do_not_fail_the_batch_and_blank_rows_are_not_counted():
    table = read("bad_rows.xlsx")
    assert (table.rows_received, table.skipped_count) == (11, 9)
    assert 6 not in {s.row for s in table.skipped_examples}
    assert table.frame["source_row"].tolist() == [2, 13]
    assert table.frame["Gender"].tolist() == ["Female", "Unknown"]
    assert table.skipped_examples[-1].reason.count(";") >= 2      # row 12 lists all three problems


def test_no_usable_row_is_an_error_listing_the_first_problems():
    exc = refusal("all_bad.csv")
    assert isinstance(exc, InvalidFile) and exc.status == 422
    assert "None of the 3 rows" in exc.message and "row 2:" in exc.message and "row 4:" in exc.message
    assert [s["row"] for s in exc.details["skipped_examples"]] == [2, 3, 4]


def test_too_many_rows_is_413_saying_the_limit():
    exc = refusal("cover_sheet.xlsx", max_rows=4)
    assert isinstance(exc, PayloadTooLarge) and exc.status == 413
    assert "limit is 4" in exc.message and "Split" in exc.message
    assert read("cover_sheet.xlsx", max_rows=5).rows_received == 5


# --- missing columns ---------------------------------------------------------------------------


def test_wrong_columns_name_every_missing_column_with_its_aliases():
    exc = refusal("wrong_columns.xlsx")
    assert isinstance(exc, MissingColumns) and exc.status == 422
    for column in ("Date Joined", "Location", "Loyalty Tier"):
        aliases = ", ".join(accepted_names(column))
        assert f"Column '{column}' is missing; accepted names: {aliases}" in exc.message
    assert [m["column"] for m in exc.details["missing"]] == ["Date Joined", "Location", "Loyalty Tier"]
    assert exc.details["headers_found"] == ["Product", "Price", "Quantity"]


def test_one_missing_column_is_named_alone():
    exc = refusal("missing_tier.csv")
    assert [m["column"] for m in exc.details["missing"]] == ["Loyalty Tier"]
    assert "membership_level" in exc.message and "Location" not in exc.message.split("missing")[1]
    assert exc.details["headers_found"] == ["Date Joined", "Location", "Gender"]


# --- personal data -----------------------------------------------------------------------------


def test_personal_data_never_reaches_reasons_frame_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    table = read("pii_columns.xlsx")
    assert table.skipped_count == 2
    assert list(table.frame.columns) == FEATURES
    said = " ".join(s.reason for s in table.skipped_examples) + caplog.text
    assert not [value for value in PII_VALUES if value in said]


def test_personal_data_never_reaches_error_messages(caplog):
    caplog.set_level(logging.DEBUG)
    customer = "CUST900001,Tan Mei Ling,meiling.tan@example.com,+65 9123 4567,Bedok,Gold\n"
    headerless = (customer * 3).encode()
    for source, kwargs in ((headerless, {}), (DATA / "pii_columns.xlsx", {"max_rows": 1})):
        with pytest.raises(PortalError) as caught:
            read_customer_file(source, today=TODAY, **kwargs)
        said = f"{caught.value.message} {caught.value.details} {caplog.text}"
        assert not [value for value in PII_VALUES if value in said]


# --- normalise_customers, reused by training ---------------------------------------------------


@pytest.mark.parametrize(("written", "expected"), [
    ("2021-03-04", "2021-03-04"), ("2021/03/04", "2021-03-04"), ("2021-03-04 18:20:00", "2021-03-04"),
    ("04/03/2021", "2021-03-04"), ("4-3-2021", "2021-03-04"), ("04 Mar 2021", "2021-03-04"),
    ("4 March 2021", "2021-03-04"), ("March 4, 2021", "2021-03-04"), (44259, "2021-03-04"),
    (44259.75, "2021-03-04"), (pd.Timestamp("2021-03-04 09:00"), "2021-03-04"),
    ("March 2021", None), ("soon", None), ("2021-02-30", None), (-5, None), ("", None),
])
def test_date_spellings(written, expected):
    raw = pd.DataFrame({"join_date": [written], "branch": ["Bedok"], "tier": ["Gold"]})
    frame, skipped, examples = normalise_customers(raw, today=TODAY)
    if expected is None:
        assert (len(frame), skipped, examples[0].row) == (0, 1, 2)
    else:
        assert frame["Date Joined"].tolist() == [pd.Timestamp(expected)]


def test_month_first_files_are_read_month_first():
    raw = pd.DataFrame({"Date Joined": ["12/25/2021", "01/02/2021"], "Location": ["Bedok"] * 2,
                        "Loyalty Tier": ["Gold"] * 2})
    frame, _, _ = normalise_customers(raw, today=TODAY)
    assert frame["Date Joined"].tolist() == [pd.Timestamp("2021-12-25"), pd.Timestamp("2021-01-02")]


def test_normalise_accepts_canonical_frames_and_counts_rows_from_the_given_number():
    raw = pd.DataFrame({"Date Joined": ["2021-01-01", None, "2021-01-03"], "Location": ["bedok", None, ""],
                        "Loyalty Tier": ["gold", None, "diamond"], "Gender": ["F", None, "x"]})
    frame, skipped, examples = normalise_customers(raw, first_row_number=10, today=TODAY)
    assert frame.to_dict("list") | {"Customer ID": []} == {
        "Customer ID": [], "Date Joined": [pd.Timestamp("2021-01-01")], "Location": ["Bedok"],
        "Gender": ["Female"], "Loyalty Tier": ["Gold"], "source_row": [10]}
    assert (skipped, [e.row for e in examples]) == (1, [12])


def test_normalise_raises_missing_columns():
    with pytest.raises(MissingColumns) as caught:
        normalise_customers(pd.DataFrame({"Location": ["Bedok"]}))
    assert [m["column"] for m in caught.value.details["missing"]] == ["Date Joined", "Loyalty Tier"]

"""Joining dates as spreadsheets hold them: real dates, Excel serials, ISO and day-first or month-first text."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime

import numpy as np
import pandas as pd
from dateutil import parser as dateutil_parser

log = logging.getLogger(__name__)

#: Dates no vectorised format understood are tried one by one, for at most this many distinct strings.
MAX_FALLBACK_DATES = 20_000
_TIME_SUFFIX = re.compile(
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp][Mm])?\s*(?:Z|[+-]\d{2}:?\d{2})?)$")
_STRING_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %b %Y",
                        "%d %B %Y", "%d-%b-%Y", "%d-%B-%Y", "%b %d %Y", "%B %d %Y", "%Y%m%d")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})$")
_EXCEL_SERIAL_TEXT = re.compile(r"^\d{5}(?:\.\d+)?$")
_EXCEL_EPOCH = "1899-12-30"
_MAX_EXCEL_SERIAL = 100_000  # 2173-10-14: later is no joining date, and stays inside pandas' range
_DEFAULT_A, _DEFAULT_B = datetime(2001, 1, 1), datetime(2002, 2, 2)


def parse_dates(values: pd.Series, text: pd.Series, month_first: bool | None = None) -> pd.Series:
    """Parse joining dates vectorised; NaT where a cell is blank or unreadable.

    Real Excel dates, Excel serial numbers (as numbers or text), ISO strings and day-first strings
    are read with a handful of vectorised formats; whatever is left is tried one distinct string
    at a time with dateutil (day first), refusing strings that lack a day, month or year. When
    a column's numeric dates are clearly month-first (12/25/2021 and never 25/12/2021), the
    ambiguous ones in it are read month-first too; ``month_first`` fixes that choice instead (a model reads
    a small upload the way its training column was read).
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
        result[is_text] = _parse_date_strings(text[is_text], month_first)
    return result


def _from_serial(serial: pd.Series) -> pd.Series:
    """Excel serial day numbers (1900 date system) to timestamps; out-of-range numbers become NaT."""
    valid = serial.between(1, _MAX_EXCEL_SERIAL)
    out = pd.Series(pd.NaT, index=serial.index, dtype="datetime64[us]")
    if valid.any():
        out[valid] = pd.to_datetime(serial[valid], unit="D", origin=_EXCEL_EPOCH)
    return out


def _parse_date_strings(text: pd.Series, month_first: bool | None = None) -> pd.Series:
    """Date strings to timestamps, parsing each distinct string once."""
    codes, uniques = pd.factorize(text)
    parsed = _parse_unique_date_strings(pd.Series(uniques, dtype="string"), month_first)
    return pd.Series(parsed.to_numpy()[codes], index=text.index, dtype="datetime64[us]")


def _parse_unique_date_strings(text: pd.Series, month_first: bool | None = None) -> pd.Series:
    """Distinct date strings to timestamps: vectorised formats first, then one try per leftover."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    serial = text.str.fullmatch(_EXCEL_SERIAL_TEXT.pattern)
    if serial.any():
        out[serial] = _from_serial(pd.to_numeric(text[serial], errors="coerce"))
    day = text.str.replace(_TIME_SUFFIX.pattern, "", regex=True).str.strip()
    if month_first is None:
        month_first = _looks_month_first(day)
    formats: tuple[str, ...] = _STRING_DATE_FORMATS
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


#: Spellings ``read_common_date`` reads without pandas: year first with - or /, day or month first with / - or .
_YEAR_FIRST = re.compile(r"(\d{4})([-/])(\d{2})\2(\d{2})")
_YEAR_LAST = re.compile(r"(\d{2})([/.-])(\d{2})\2(\d{4})")


def read_common_date(text: str, month_first: bool) -> datetime | None:
    """The date ``parse_dates`` reads from one stripped cell in a common spelling (2024-03-01, 2024/03/01,
    01/03/2024 with / - or ., a time of day ignored), without pandas, for placing a few rows fast; None for
    any other spelling, which the caller reads with ``parse_dates``. Kept beside the formats it agrees with:
    only the format with the cell's own separator can match such a cell, so their order does not matter."""
    if not text.isascii() or _EXCEL_SERIAL_TEXT.fullmatch(text):
        return None
    day = _TIME_SUFFIX.sub("", text).strip()
    if matched := _YEAR_FIRST.fullmatch(day):
        year, month, dom = matched[1], matched[3], matched[4]
    elif matched := _YEAR_LAST.fullmatch(day):
        year = matched[4]
        month, dom = (matched[1], matched[3]) if month_first else (matched[3], matched[1])
    else:
        return None
    if not 1678 <= int(year) <= 2261:  # inside pandas' nanosecond range, whichever unit it picks
        return None
    try:
        return datetime(int(year), int(month), int(dom))
    except ValueError:
        return None


def looks_month_first(values: pd.Series) -> bool:
    """Whether a column's numeric text dates are clearly month-first (12/25/2021 and never 25/12/2021)."""
    text = values.dropna().astype("string")
    return _looks_month_first(text.str.replace(_TIME_SUFFIX.pattern, "", regex=True).str.strip())


def _looks_month_first(day: pd.Series) -> bool:
    """True when some numeric dates only make sense month-first and none only day-first."""
    parts = day.str.extract(_NUMERIC_DMY.pattern)
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    return bool((second > 12).any() and not (first > 12).any())


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

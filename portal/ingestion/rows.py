"""Customer rows → the canonical table: columns mapped, values normalised, bad rows skipped with a reason.

Vectorised (each distinct value is normalised once). Reasons and log lines never carry customer-level
values (names, emails, phones, ids, notes); logs carry counts only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from portal.ingestion.dates import parse_dates
from portal.ingestion.sheets import Header, missing_columns
from schemas import (
    CUSTOMER_ID,
    DATE_JOINED,
    EARLIEST_JOIN_DATE,
    GENDER,
    LOCATION,
    LOYALTY_TIER,
    REQUIRED_COLUMNS,
    business_today,
    canonical_column,
    normalise_gender,
    normalise_location,
    normalise_tier,
)

log = logging.getLogger(__name__)

MAX_SKIPPED_EXAMPLES = 20
OUTPUT_COLUMNS = (CUSTOMER_ID, DATE_JOINED, LOCATION, GENDER, LOYALTY_TIER, "source_row")


@dataclass
class SkippedRow:
    """A row left out of the upload, with what is wrong and how to fix it (no personal data)."""

    row: int
    reason: str


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
        raise missing_columns(Header(None, 0, {p: n for n, p in columns.items()}, labels), [])
    today = today or business_today()
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
    joined = parse_dates(raw.iloc[:, columns[DATE_JOINED]], date_text)

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


def _map_unique(text: pd.Series, normalise) -> pd.Series:
    """Apply a per-value normaliser once per distinct value, not once per row."""
    table = {value: normalise(value) for value in text.dropna().unique()}
    return text.map(table).astype(object).where(text.notna(), None)


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

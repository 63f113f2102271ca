"""A few rows of a learned schema read and encoded without pandas or the ColumnTransformer, for the smart form
and small uploads: one row through ``SchemaColumns.read`` + ``TableFeatures.encode`` spends 15–30 ms in
per-column pandas and scikit-learn overhead, this about a tenth of a millisecond per column.

It holds no state of its own, only views of the fitted ``TableFeatures``: number blocks repeat their fitted
steps (imputer, log1p, scaler, block weight) with the same numpy operations, category and member-profile
blocks are tables of the fitted blocks' own outputs. Cells are read as pandas reads them when they are
spelled the common ways (numbers, ISO or dd/mm/yyyy dates, plain text); a column holding anything else
is read by ``SchemaColumns.read_column``, as in a batch. When built, the encoder checks itself against the
ColumnTransformer on probe rows and refuses to serve if any value differs.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from portal.ingestion.dates import read_common_date
from portal.ingestion.roles import NUMBER_NOISE, ColumnRole, Role
from portal.segmentation.table_features import (
    FALSE_TEXT,
    LARGEST_NUMBER,
    MISSING,
    NUMBER_ROLES,
    TRUE_TEXT,
    MemberProfile,
    SkewTamer,
    TableFeatures,
    level_ranks,
)

log = logging.getLogger(__name__)
#: Batches up to this many rows take this path; above it pandas' per-column cost is spread over enough rows.
SMALL_BATCH_ROWS = 64
_NOISE = re.compile(NUMBER_NOISE)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,2})?")
#: Digits up to which Python's float() and pandas' parser were measured to agree on every spelling.
_MAX_DIGITS = 17
_UNSEEN = "\x00 a value no training row held"


class Uncommon(Exception):
    """A cell spelled in a way this reader does not read itself: its column goes through pandas."""


def _blank(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _text(value: Any) -> str | None:
    """``astype("string").str.strip()`` of one cell; None for a blank."""
    if _blank(value):
        return None
    kind = type(value)
    if kind is str:
        text = value.strip()
    elif kind is int or kind is float or kind is bool:
        text = str(value)
    else:
        raise Uncommon
    return text or None


def _number(value: Any, numeric_dtype: bool) -> float:
    """``numeric_values`` of one cell (before the finite check)."""
    if numeric_dtype:
        return float(value)
    if _blank(value):
        return math.nan
    kind = type(value)
    if kind is not str and kind is not int and kind is not float:
        raise Uncommon
    cleaned = _NOISE.sub("", str(value))
    if not cleaned.isascii() or not _PLAIN_NUMBER.fullmatch(cleaned):
        raise Uncommon
    if sum(c.isdigit() for c in cleaned.split("e")[0].split("E")[0]) > _MAX_DIGITS:
        raise Uncommon
    if "." in cleaned or "e" in cleaned or "E" in cleaned:
        return float(cleaned)
    whole = int(cleaned)
    if whole == 0 and cleaned.startswith("-"):
        raise Uncommon  # pandas reads '-0' as 0 or -0.0 depending on the other cells
    return float(whole)


def _day(value: Any, month_first: bool) -> datetime | None:
    """The date ``parse_dates`` reads from one cell; None for a blank."""
    if _blank(value):
        return None
    kind = type(value)
    if kind is str:
        text = value.strip()
        if not text:
            return None
        found = read_common_date(text, month_first)
        if found is None:
            raise Uncommon
        return found
    if kind is pd.Timestamp or kind is datetime:
        if value.tzinfo is not None or getattr(value, "nanosecond", False) or not 1678 <= value.year <= 2261:
            raise Uncommon
        return value
    if kind is date:
        return datetime(value.year, value.month, value.day)
    raise Uncommon


class _ColumnReader:
    """One feature column's cells → typed values (floats or text) and the unreadable flags."""

    def __init__(self, column: ColumnRole, reference: pd.Timestamp | None, month_first: bool | None) -> None:
        self.column = column
        self.role = column.role
        self.numbers = column.role in NUMBER_ROLES
        self.reference = reference
        self.month_first = bool(month_first)
        self.ranks = level_ranks(column.values)

    def read(self, cells: list[Any], numeric_dtype: bool) -> tuple[list[Any], list[bool]]:
        if not self.numbers:
            texts = [_text(v) for v in cells]
            return [MISSING if t is None else t for t in texts], [False] * len(cells)
        values, bad = [], []
        for cell in cells:
            value, blank = self._number(cell, numeric_dtype)
            if not math.isfinite(value) or abs(value) > LARGEST_NUMBER:
                value = math.nan
            values.append(value)
            bad.append(value != value and not blank)
        return values, bad

    def _number(self, cell: Any, numeric_dtype: bool) -> tuple[float, bool]:
        """The typed value of one cell and whether it was blank."""
        if self.role == Role.NUMERIC:
            if self.column.decimal_comma and isinstance(cell, str):
                raise Uncommon  # '1.234,56': the column reader serves it
            return _number(cell, numeric_dtype), _text(cell) is None
        if self.role == Role.DATE:
            if self.reference is None:
                return math.nan, True  # no dates at training: the column is never unreadable
            day = _day(cell, self.month_first)
            return (math.nan, True) if day is None else (float((self.reference - day).days), False)
        text = _text(cell)
        if text is None:
            return math.nan, True
        lowered = text.lower()
        if self.role == Role.BOOLEAN:
            return (1.0 if lowered in TRUE_TEXT else 0.0 if lowered in FALSE_TEXT else math.nan), False
        return self.ranks.get(lowered, math.nan), False


#: One fitted step of a number block: fill blanks, log1p of the clipped value, subtract, divide.
Step = tuple[str, Any]


def _number_steps(transformer: Any) -> list[Step]:
    """A single-column number block's fitted steps, in scikit-learn's own order."""
    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    out: list[Step] = []
    for step in steps:
        if isinstance(step, SimpleImputer):
            fill = step.statistics_
            plain = isinstance(step.missing_values, float) and np.isnan(step.missing_values) and not step.add_indicator
            if not plain or fill.shape != (1,) or np.isnan(fill[0]):
                raise ValueError(f"imputer {step!r} is not a plain one-column NaN imputer")
            out.append(("fill", fill))
        elif isinstance(step, SkewTamer):
            if bool(step.log_[0]):
                out.append(("log1p", None))
        elif isinstance(step, StandardScaler):
            if step.with_mean:
                out.append(("subtract", step.mean_))
            if step.with_std:
                out.append(("divide", step.scale_))
        else:
            raise ValueError(f"no small-batch form for {type(step).__name__}")
    return out


def _apply(steps: list[Step], values: np.ndarray) -> np.ndarray:
    """The steps with the numpy operations scikit-learn uses (imputer fill, SkewTamer, StandardScaler)."""
    for name, value in steps:
        if name == "fill":
            values = np.where(np.isnan(values), value, values)
        elif name == "log1p":
            values = np.log1p(np.clip(values, 0, None))
        elif name == "subtract":
            values = values - value
        else:
            values = values / value
    return values


def _lookup(transformer: Any, names: list[str], keys: list[str], weight: float | None) -> tuple[dict, np.ndarray]:
    """A text block as a table: each key's (weighted) output row, and the row of a value never seen."""
    probe = pd.DataFrame({name: [*keys, _UNSEEN] if i == 0 else np.nan for i, name in enumerate(names)})
    probe[names[0]] = probe[names[0]].astype(object)
    rows = np.asarray(transformer.transform(probe), dtype=float)
    if weight is not None:
        rows = rows * weight
    return dict(zip(keys, rows[:-1])), rows[-1]


class SmallBatchEncoder:
    """Raw rows of the schema's feature columns → model-ready float32 rows and unreadable cells, for a few rows."""

    def __init__(self, features: TableFeatures) -> None:
        self.features = features
        schema_columns = features.columns_
        self.columns = list(features.schema.features)
        self.readers = [_ColumnReader(c, schema_columns.reference_date_, schema_columns.month_first_.get(c.name))
                        for c in self.columns]
        position = {c.name: i for i, c in enumerate(self.columns)}
        encoder = features.encoder_
        self.width = len(encoder.get_feature_names_out())
        self.numbers: list[tuple[int, slice, list[Step], float | None]] = []
        self.tables: list[tuple[int, slice, dict, np.ndarray]] = []
        for name, transformer, columns in encoder.transformers_:
            if name == "remainder" or transformer == "drop":
                continue
            piece = encoder.output_indices_[name]
            weight = (encoder.transformer_weights or {}).get(name)
            source = position[columns[0]]
            if isinstance(transformer, OneHotEncoder) and len(columns) == 1:
                keys = [str(k) for k in transformer.categories_[0]]
                self.tables.append((source, piece, *_lookup(transformer, list(columns), keys, weight)))
            elif isinstance(transformer, MemberProfile):
                keys = list(transformer.profiles_)
                self.tables.append((source, piece, *_lookup(transformer, list(columns), keys, weight)))
            elif len(columns) == 1 and self.columns[source].role in NUMBER_ROLES:
                self.numbers.append((source, piece, _number_steps(transformer), weight))
            else:
                raise ValueError(f"no small-batch form for block {name!r} ({type(transformer).__name__})")
        self._check()

    def read(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready rows (as ``TableFeatures.transform``) and unreadable cells (as ``SchemaColumns.read``)."""
        typed: list[list[Any]] = []
        bad = np.zeros((len(frame), len(self.columns)), dtype=bool)
        for j, (column, reader) in enumerate(zip(self.columns, self.readers)):
            series = frame[column.name]
            dtype = series.dtype
            plain = isinstance(dtype, np.dtype)
            numeric = plain and dtype.kind in "biuf"
            readable = (plain and dtype.kind in "biufOM") or getattr(dtype, "storage", None) == "python"
            try:
                if not readable:
                    raise Uncommon
                values, flags = reader.read(series.tolist(), numeric)
            except Uncommon:
                typed_column, flagged = self.features.columns_.read_column(column, series)
                values, flags = typed_column.tolist(), flagged.tolist()
            typed.append(values)
            bad[:, j] = flags
        return self.encode(typed, len(frame)), bad

    def encode(self, typed: list[list[Any]], rows: int) -> np.ndarray:
        """``TableFeatures.encode`` of typed columns (in the schema's feature order)."""
        out = np.zeros((rows, self.width), dtype=float)
        for source, piece, steps, weight in self.numbers:
            values = _apply(steps, np.array(typed[source], dtype=float).reshape(-1, 1))
            out[:, piece] = values if weight is None else values * weight
        for source, piece, table, unseen in self.tables:
            out[:, piece] = [table.get(str(v), unseen) for v in typed[source]]
        return np.ascontiguousarray(out, dtype=np.float32)

    def _check(self) -> None:
        """Encode probe rows both ways (every category, blanks, unseen values, spread numbers); any difference
        in any bit means this encoder does not describe the fitted blocks."""
        longest = max([len(table) for _, _, table, _ in self.tables] + [8]) + 2
        spread = [math.nan, 0.0, 1.0, -3.5, 12.25, 1e6, -1e4, 0.5]
        probe: dict[str, list[Any]] = {}
        for j, column in enumerate(self.columns):
            if column.role in NUMBER_ROLES:
                probe[column.name] = [spread[(i + j) % len(spread)] for i in range(longest)]
            else:
                keys = next((list(t) for s, _, t, _ in self.tables if s == j), [])
                cycle = [*keys, MISSING, _UNSEEN]
                probe[column.name] = [cycle[(i + j) % len(cycle)] for i in range(longest)]
        typed = pd.DataFrame({name: pd.Series(v, dtype=float if isinstance(v[0], float) else object)
                              for name, v in probe.items()})
        expected = self.features.encode(typed)
        got = self.encode([probe[c.name] for c in self.columns], longest)
        if expected.shape != got.shape or not np.array_equal(expected, got):
            raise ValueError("the small-batch encoder differs from the fitted ColumnTransformer on probe rows")


def small_batch_encoder(features: TableFeatures) -> SmallBatchEncoder | None:
    """The encoder for ``features``, or None (with the reason logged) when its blocks have no small-batch form."""
    try:
        return SmallBatchEncoder(features)
    except ValueError as exc:
        log.warning("few-row placement goes through pandas for this model: %s", exc)
        return None


__all__ = ["SMALL_BATCH_ROWS", "SmallBatchEncoder", "Uncommon", "small_batch_encoder"]

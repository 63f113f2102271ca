"""Features of a learned table schema: one scikit-learn ``ColumnTransformer`` built from the schema, fitted
at training and reused at placement, so both read a customer table the same way.

``SchemaColumns`` turns the raw table into one typed column per feature column (numbers parsed, dates
as days before the training reference date, yes/no as 0/1, ordinal values as ranks, categories as
text); ``TableFeatures`` encodes each column as its own block and weights the blocks so that none
drowns the rest. Identifier, personal and excluded columns are never read.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from portal.ingestion.dates import looks_month_first, parse_dates
from portal.ingestion.roles import ColumnRole, Role, TableSchema, numeric_values

log = logging.getLogger(__name__)

#: Text standing for a blank category, so a blank is a category of its own rather than an error.
MISSING = "(blank)"
#: Spellings of yes and no (lower case) a yes/no column is read from.
TRUE_TEXT = frozenset({"yes", "y", "true", "t", "1", "1.0"})
FALSE_TEXT = frozenset({"no", "n", "false", "f", "0", "0.0"})
#: Roles read as numbers (typed float columns); the others stay text.
NUMBER_ROLES = (Role.NUMERIC, Role.DATE, Role.BOOLEAN, Role.ORDINAL)
#: A category's profile is pulled toward the overall mean as if it had this many more average members.
PSEUDO_COUNT = 20.0
#: A standardised number contributes E[d²] = 2 between two random rows; no block may contribute more.
BLOCK_BUDGET = 2.0
#: Two categories of a categorical or yes/no column sit this far apart before the block weight: the
#: distance between the two modes of a balanced standardised yes/no column.
CATEGORY_DISTANCE = 1.0
#: Skew above which a non-negative number is log1p-transformed (decided on the training rows).
SKEW_LIMIT = 1.0


def read_numbers(values: pd.Series, role: Role, reference: pd.Timestamp | None,
                 order: list[str] | None = None, month_first: bool | None = None) -> tuple[pd.Series, pd.Series]:
    """One column as floats and the mask of cells that hold something unreadable (blanks are not)."""
    if role == Role.NUMERIC:
        out = numeric_values(values)
        out[~np.isfinite(out) | (out.abs() > LARGEST_NUMBER)] = np.nan
        unread = out.isna()
        bad = pd.Series(False, index=values.index)
        if unread.any():  # whether a cell was blank matters only where no number was read
            text = stripped_text(values[unread])
            bad[unread] = ~(text.isna() | (text == "")).to_numpy()
        return out, bad
    text = stripped_text(values)
    blank = text.isna() | (text == "")
    if role == Role.DATE:
        dates = parse_dates(values, text, month_first)
        out = (reference - dates).dt.days.astype(float) if reference is not None else \
            pd.Series(np.nan, index=values.index)
        if reference is None:
            return out, pd.Series(False, index=values.index)
        out[dates.isna()] = np.nan
    elif role == Role.BOOLEAN:
        lowered = text.str.lower()
        out = pd.Series(np.where(lowered.isin(TRUE_TEXT), 1.0, np.where(lowered.isin(FALSE_TEXT), 0.0, np.nan)),
                        index=values.index)
    else:  # ordinal: rank in the learned order; an unknown level is unreadable
        out = text.str.lower().map(level_ranks(order)).astype(float)
    out = out.astype(float)
    out[~np.isfinite(out) | (out.abs() > LARGEST_NUMBER)] = np.nan  # 1e308 is nobody's age or spend
    return out, (out.isna() & ~blank).fillna(False).astype(bool)


#: Larger magnitudes are unreadable: they would overflow the float32 features UMAP reads.
LARGEST_NUMBER = 1e30


def stripped_text(values: pd.Series) -> pd.Series:
    """``values.astype("string").str.strip()``; a text column is stripped once per distinct value (an upload's
    100k cells of a category column hold a handful)."""
    if not isinstance(values.dtype, pd.StringDtype):
        return values.astype("string").str.strip()
    codes, uniques = pd.factorize(values)
    stripped = pd.Series(uniques, dtype="string").str.strip().to_numpy(dtype=object)
    return pd.Series(np.append(stripped, pd.NA)[codes], index=values.index, dtype="string")


def level_ranks(order: list[str] | None) -> dict[str, float]:
    """Rank of each level of an ordinal column (lower case), lowest first."""
    return {v.lower(): float(i) for i, v in enumerate(order or [])}


class SchemaColumns(TransformerMixin, BaseEstimator):
    """Raw table → typed feature columns; learns the reference date (the newest date in the training rows)."""

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema

    def fit(self, X: pd.DataFrame, y: Any = None) -> SchemaColumns:
        #: per date column, whether its text dates were month-first, so a small upload is read the same way
        self.month_first_ = {c.name: looks_month_first(X[c.name]) for c in self.schema.of(Role.DATE)}
        newest = [parse_dates(X[c.name], X[c.name].astype("string"), self.month_first_[c.name]).max()
                  for c in self.schema.of(Role.DATE)]
        newest = [d for d in newest if pd.notna(d)]
        self.reference_date_ = max(newest) if newest else None
        self.feature_names_in_ = np.array([c.name for c in self.schema.features], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.read(X)[0]

    def read(self, X: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Typed columns and, per column, which cells could not be read (for skipping rows with a reason)."""
        check_is_fitted(self, "feature_names_in_")
        typed: dict[str, pd.Series] = {}
        bad: dict[str, pd.Series] = {}
        for column in self.schema.features:
            typed[column.name], bad[column.name] = self.read_column(column, X[column.name])
        return pd.DataFrame(typed, index=X.index), pd.DataFrame(bad, index=X.index)

    def read_column(self, column: ColumnRole, values: pd.Series) -> tuple[pd.Series, pd.Series]:
        """One feature column typed, and its unreadable cells."""
        if column.role in NUMBER_ROLES:
            return read_numbers(values, column.role, self.reference_date_, column.values,
                                self.month_first_.get(column.name))
        text = stripped_text(values)
        return (text.where(text.notna() & (text != ""), MISSING).astype(object),
                pd.Series(False, index=values.index))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class SkewTamer(TransformerMixin, BaseEstimator):
    """log1p of a non-negative column whose skew on the training rows is above ``limit``; else unchanged."""

    def __init__(self, limit: float = SKEW_LIMIT) -> None:
        self.limit = limit

    def fit(self, X: np.ndarray, y: Any = None) -> SkewTamer:
        values = np.asarray(X, dtype=float)
        skew = pd.DataFrame(values).skew().fillna(0.0).to_numpy()
        self.log_ = (values.min(axis=0) >= 0) & (np.abs(skew) > self.limit)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "log_")
        values = np.array(X, dtype=float)
        values[:, self.log_] = np.log1p(np.clip(values[:, self.log_], 0, None))
        return values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class MemberProfile(TransformerMixin, BaseEstimator):
    """A high-cardinality category described by its members: the mean of the other standardised numbers
    among them, shrunk toward the overall mean with a pseudo-count; an unseen category is the overall mean.

    The first input column is the category, the others are typed number columns.
    """

    def __init__(self, pseudo_count: float = PSEUDO_COUNT) -> None:
        self.pseudo_count = pseudo_count

    def fit(self, X: pd.DataFrame, y: Any = None) -> MemberProfile:
        category, numbers = X.iloc[:, 0].astype(str), X.iloc[:, 1:].astype(float)
        self.mean_ = numbers.mean().fillna(0.0).to_numpy()
        self.scale_ = numbers.std().replace(0, 1).fillna(1.0).to_numpy()
        z = ((numbers - self.mean_) / self.scale_).fillna(0.0)
        grouped = z.groupby(category.to_numpy())
        sums, counts = grouped.sum(), grouped.size()
        profile = sums.div(counts + self.pseudo_count, axis=0)
        self.profiles_ = {str(k): v for k, v in zip(profile.index, profile.to_numpy())}
        self.columns_ = [f"{X.columns[0]} profile: {c}" for c in numbers.columns]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "profiles_")
        overall = np.zeros(len(self.columns_))
        return np.vstack([self.profiles_.get(str(v), overall) for v in X.iloc[:, 0]]) if len(X) else \
            np.zeros((0, len(self.columns_)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns_, dtype=object)


def _block(column_role: Role, name: str, number_columns: list[str],
           category_distance: float = CATEGORY_DISTANCE) -> tuple[Any, list[str], float]:
    """The encoder of one feature column, the columns it reads and its weight before budgeting."""
    if column_role in (Role.NUMERIC, Role.DATE):
        return make_pipeline(SimpleImputer(strategy="median"), SkewTamer(), StandardScaler()), [name], 1.0
    if column_role == Role.ORDINAL:
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [name], 1.0
    if column_role == Role.BOOLEAN:
        return SimpleImputer(strategy="most_frequent"), [name], category_distance
    if column_role == Role.HIGH_CARDINALITY and number_columns:
        return MemberProfile(), [name, *[c for c in number_columns if c != name]], 1.0
    # categorical (and a high-cardinality column with no numbers to describe its members by)
    encoder = OneHotEncoder(handle_unknown="ignore", max_categories=30, sparse_output=False)
    return encoder, [name], category_distance / np.sqrt(2.0)


class TableFeatures(TransformerMixin, BaseEstimator):
    """Schema → one weighted ``ColumnTransformer``; every feature column is one block.

    A block's weight is measured on the training rows: its spread (E[d²] between two random rows) is
    capped at that of one standardised number, so a 30-category one-hot or a many-column member profile
    counts as one column, and a rare category is never amplified.
    """

    def __init__(self, schema: TableSchema, budget: float = BLOCK_BUDGET,
                 category_distance: float = CATEGORY_DISTANCE) -> None:
        self.schema = schema
        self.budget = budget
        self.category_distance = category_distance

    def fit(self, X: pd.DataFrame, y: Any = None) -> TableFeatures:
        self.columns_ = SchemaColumns(self.schema).fit(X)
        typed = self.columns_.transform(X)
        numbers = [c.name for c in self.schema.features if c.role in NUMBER_ROLES]
        blocks = {c.name: _block(c.role, c.name, numbers, self.category_distance) for c in self.schema.features}
        base = {name: weight for name, (_, _, weight) in blocks.items()}
        unweighted = ColumnTransformer([(name, enc, cols) for name, (enc, cols, _) in blocks.items()],
                                       transformer_weights=base, verbose_feature_names_out=False)
        encoded = unweighted.fit_transform(typed)
        spread: dict[str, float] = {}
        for name, piece in unweighted.output_indices_.items():
            if name in blocks:
                spread[name] = float(2.0 * np.var(encoded[:, piece], axis=0).sum())
        self.block_spread_ = {k: round(v, 4) for k, v in spread.items()}
        self.weights_ = {name: float(base[name] * np.sqrt(self.budget / spread[name]))
                         if spread.get(name, 0) > self.budget * (1 + 1e-6) else float(base[name]) for name in blocks}
        self.encoder_ = ColumnTransformer([(name, enc, cols) for name, (enc, cols, _) in blocks.items()],
                                          transformer_weights=self.weights_, verbose_feature_names_out=False)
        self.encoder_.fit(typed)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return self.encode(self.columns_.transform(X))

    def encode(self, typed: pd.DataFrame) -> np.ndarray:
        """Model-ready rows from typed columns (``SchemaColumns.read``)."""
        return np.ascontiguousarray(self.encoder_.transform(typed), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return self.encoder_.get_feature_names_out()

    def describe(self) -> dict[str, Any]:
        """Per-block weights and measured spreads, for the manifest."""
        check_is_fitted(self, "encoder_")
        log_columns = []
        for name, encoder in self.encoder_.named_transformers_.items():
            steps = getattr(encoder, "named_steps", {})
            if "skewtamer" in steps and bool(steps["skewtamer"].log_.any()):
                log_columns.append(name)
        reference = self.columns_.reference_date_
        return {"blocks": {name: {"weight": round(w, 4), "spread": self.block_spread_.get(name)}
                           for name, w in self.weights_.items()},
                "log1p_columns": log_columns,
                "reference_date": reference.date().isoformat() if reference is not None else None,
                "encoded_columns": [str(c) for c in self.get_feature_names_out()]}


__all__ = ["FALSE_TEXT", "LARGEST_NUMBER", "MISSING", "NUMBER_ROLES", "TRUE_TEXT", "MemberProfile", "SchemaColumns",
           "SkewTamer", "TableFeatures", "level_ranks", "read_numbers", "stripped_text"]

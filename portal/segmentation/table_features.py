"""Features of a learned table schema: one scikit-learn ``ColumnTransformer`` built from the schema, fitted
at training and reused at placement, so both read a customer table the same way.

``SchemaColumns`` turns the raw table into one typed column per feature column (numbers parsed, dates
as days before the training reference date, yes/no as 0/1, ordinal values as ranks, categories as
text); ``TableFeatures`` encodes each column as its own block and weights the blocks so that none
drowns the rest and a column sharing no structure with the others counts little. Identifier, personal
and excluded columns are never read.
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
from portal.segmentation.table_dependence import dependence

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
#: Quantile bands per number in a member profile (the loyalty area profile's eight tenure bands).
PROFILE_BANDS = 8
#: Skew above which a non-negative number is log1p-transformed (decided on the training rows).
SKEW_LIMIT = 1.0
#: A block's dependence factor is (its largest AMI with another column / reference) ** power, in [floor, 1]:
#: a column sharing AMI 0.3 or more with another counts fully, one sharing 0.08 (the bundled loyalty sample's
#: tier) about 0.1, an independent one 0.1. Measured in ``bench/schemas.py`` (weightings).
DEPENDENCE_REFERENCE = 0.3
DEPENDENCE_POWER = 2.0
DEPENDENCE_FLOOR = 0.1
#: A categorical column with this many categories or more is described by its members, as a high-cardinality
#: one is, rather than one-hot: every one-hot category sits the same distance from every other, so at 16 cities
#: UMAP made each city of a planted group its own island and split the group (4 planted groups found as 7).
#: Measured on 14 planted retail and order files in ``bench/schemas.py`` (neighbourhoods).
PROFILE_FROM_CATEGORIES = 10


def read_numbers(values: pd.Series, role: Role, reference: pd.Timestamp | None,
                 order: list[str] | None = None, month_first: bool | None = None,
                 decimal_comma: bool = False) -> tuple[pd.Series, pd.Series]:
    """One column as floats and the mask of cells that hold something unreadable (blanks are not)."""
    if role == Role.NUMERIC:
        out = numeric_values(values, decimal_comma)
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
        out = _per_distinct(text, lambda lowered: np.where(lowered.isin(TRUE_TEXT), 1.0,
                                                           np.where(lowered.isin(FALSE_TEXT), 0.0, np.nan)))
    else:  # ordinal: rank in the learned order; an unknown level is unreadable
        ranks = level_ranks(order)
        out = _per_distinct(text, lambda lowered: lowered.map(ranks).to_numpy(dtype=float, na_value=np.nan))
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


def _per_distinct(text: pd.Series, number: Any) -> pd.Series:
    """``number`` (lower-cased text → floats) of every cell, computed once per distinct value; blanks are NaN."""
    codes, uniques = pd.factorize(text)
    numbers = np.asarray(number(pd.Series(uniques, dtype="string").str.lower()), dtype=float)
    return pd.Series(np.append(numbers, np.nan)[codes], index=text.index)


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
                                self.month_first_.get(column.name), column.decimal_comma)
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
    """A high-cardinality category described by its members' other numbers; an unseen category is the whole
    base.

    ``histogram`` (the default): per other number, the share of members in each of its quantile bands,
    shrunk toward the whole base with a pseudo-count and square-rooted (Hellinger geometry), so two
    categories whose members spread alike sit close even when their means agree by chance and a rare
    category is not an outlier. ``mean``: the mean of each other standardised number, shrunk the same way.
    Profiles are stored relative to the whole base's, so an unseen category encodes as zeros.

    The first input column is the category, the others are typed number columns.
    """

    def __init__(self, pseudo_count: float = PSEUDO_COUNT, kind: str = "histogram", bands: int = PROFILE_BANDS) -> None:
        self.pseudo_count = pseudo_count
        self.kind = kind
        self.bands = bands

    def fit(self, X: pd.DataFrame, y: Any = None) -> MemberProfile:
        category, numbers = X.iloc[:, 0].astype(str), X.iloc[:, 1:].astype(float)
        if self.kind == "histogram":
            described, names = self._bands(numbers)
        else:
            self.mean_ = numbers.mean().fillna(0.0).to_numpy()
            self.scale_ = numbers.std().replace(0, 1).fillna(1.0).to_numpy()
            described = ((numbers - self.mean_) / self.scale_).fillna(0.0)
            names = [str(c) for c in numbers.columns]
        base = described.mean().to_numpy()
        grouped = described.groupby(category.to_numpy())
        sums, counts = grouped.sum(), grouped.size().to_numpy()[:, None]
        shrunk = (sums.to_numpy() + self.pseudo_count * base) / (counts + self.pseudo_count)
        if self.kind == "histogram":
            width = max(numbers.shape[1], 1)
            profile = np.sqrt(np.clip(shrunk, 0, None) / width) - np.sqrt(np.clip(base, 0, None) / width)
        else:
            profile = shrunk - base
        profile, names = _span(profile, names)
        self.profiles_ = {str(k): v for k, v in zip(sums.index, profile)}
        self.columns_ = [f"{X.columns[0]} profile: {n}" for n in names]
        return self

    def _bands(self, numbers: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """One-hot quantile bands of every number (a few-valued number: its values); blanks in the median band."""
        pieces: list[np.ndarray] = []
        names: list[str] = []
        for column in numbers.columns:
            values = numbers[column]
            values = values.fillna(values.median() if values.notna().any() else 0.0).to_numpy()
            distinct = np.unique(values)
            if len(distinct) <= self.bands:
                edges = (distinct[:-1] + distinct[1:]) / 2
            else:
                edges = np.unique(np.quantile(values, np.linspace(0, 1, self.bands + 1)[1:-1]))
            band = np.searchsorted(edges, values, side="right")
            onehot = np.zeros((len(values), len(edges) + 1))
            onehot[np.arange(len(values)), band] = 1.0
            pieces.append(onehot)
            names.extend(f"{column} band {i + 1}" for i in range(len(edges) + 1))
        return pd.DataFrame(np.hstack(pieces), index=numbers.index), names

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "profiles_")
        overall = np.zeros(len(self.columns_))
        return np.vstack([self.profiles_.get(str(v), overall) for v in X.iloc[:, 0]]) if len(X) else \
            np.zeros((0, len(self.columns_)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns_, dtype=object)


def described_by_members(column: ColumnRole, categories: int, profile_from: int = PROFILE_FROM_CATEGORIES) -> bool:
    """Whether a category column is encoded by its members' profile (``MemberProfile``) rather than one-hot."""
    return column.role == Role.HIGH_CARDINALITY or (column.role == Role.CATEGORICAL and categories >= profile_from)


def _span(profiles: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The profiles in an orthonormal basis of their own span when that is narrower than the bands: every
    distance between two categories, and to an unseen one (zeros), stays the same, in as many columns as there
    are categories (16 cities over 18 numbers: 16 columns instead of 144, so the neighbour search reads fewer)."""
    if len(profiles) >= profiles.shape[1]:
        return profiles, names
    _, singular, basis = np.linalg.svd(profiles, full_matrices=False)
    rank = max(1, int(np.sum(singular > singular[0] * 1e-10))) if singular.size and singular[0] > 0 else 1
    return profiles @ basis[:rank].T, [f"component {i + 1}" for i in range(rank)]


def _block(column_role: Role, name: str, number_columns: list[str], category_distance: float = CATEGORY_DISTANCE,
           profile: str = "histogram", by_members: bool = False) -> tuple[Any, list[str], float]:
    """The encoder of one feature column, the columns it reads and its weight before budgeting; ``by_members``: a
    category column described by its members' profile (``described_by_members``) when there are numbers to do so."""
    if column_role in (Role.NUMERIC, Role.DATE):
        return make_pipeline(SimpleImputer(strategy="median"), SkewTamer(), StandardScaler()), [name], 1.0
    if column_role == Role.ORDINAL:
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [name], 1.0
    if column_role == Role.BOOLEAN:
        return SimpleImputer(strategy="most_frequent"), [name], category_distance
    if by_members and number_columns:
        return MemberProfile(kind=profile), [name, *[c for c in number_columns if c != name]], 1.0
    # categorical (and a high-cardinality column with no numbers to describe its members by)
    encoder = OneHotEncoder(handle_unknown="ignore", max_categories=30, sparse_output=False)
    return encoder, [name], category_distance / np.sqrt(2.0)


class TableFeatures(TransformerMixin, BaseEstimator):
    """Schema → one weighted ``ColumnTransformer``; every feature column is one block.

    A block's weight is measured on the training rows, in two factors. Its spread (E[d²] between two
    random rows) is capped at that of one standardised number, so a 30-category one-hot counts as one
    column and a rare category is never amplified; a member profile is scaled to that spread (its
    Hellinger distances have no natural unit; shrinkage keeps its rare categories near the base). Then the
    block is scaled by its column's dependence on the other columns (``table_dependence``):
    ``(AMI / dependence_reference) ** dependence_power``, at most 1 and at least ``dependence_floor``, so a
    column that shares nothing with the rest (a 50/50 gender in every segment, a random category) counts
    little instead of splitting every segment in two. ``dependence_reference=None`` measures against the
    table's most dependent column instead; ``dependence_floor=1`` turns the factor off.
    """

    def __init__(self, schema: TableSchema, budget: float = BLOCK_BUDGET,
                 category_distance: float = CATEGORY_DISTANCE, dependence_floor: float = DEPENDENCE_FLOOR,
                 dependence_reference: float | None = DEPENDENCE_REFERENCE,
                 dependence_power: float = DEPENDENCE_POWER, profile: str = "histogram",
                 profile_budget: float = 1.0, profile_from: int = PROFILE_FROM_CATEGORIES) -> None:
        self.schema = schema
        self.profile_from = profile_from
        self.budget = budget
        self.category_distance = category_distance
        self.dependence_floor = dependence_floor
        self.dependence_reference = dependence_reference
        self.dependence_power = dependence_power
        self.profile = profile
        self.profile_budget = profile_budget

    def fit(self, X: pd.DataFrame, y: Any = None) -> TableFeatures:
        self.columns_ = SchemaColumns(self.schema).fit(X)
        typed = self.columns_.transform(X)
        numbers = [c.name for c in self.schema.features if c.role in NUMBER_ROLES]
        blocks = {c.name: _block(c.role, c.name, numbers, self.category_distance, self.profile, described_by_members(
                      c, int(typed[c.name].nunique()) if c.role == Role.CATEGORICAL else 0, self.profile_from))
                  for c in self.schema.features}
        base = {name: weight for name, (_, _, weight) in blocks.items()}
        unweighted = ColumnTransformer([(name, enc, cols) for name, (enc, cols, _) in blocks.items()],
                                       transformer_weights=base, verbose_feature_names_out=False)
        encoded = unweighted.fit_transform(typed)
        spread: dict[str, float] = {}
        for name, piece in unweighted.output_indices_.items():
            if name in blocks:
                spread[name] = float(2.0 * np.var(encoded[:, piece], axis=0).sum())
        self.block_spread_ = {k: round(v, 4) for k, v in spread.items()}
        capped = {name: float(base[name] * np.sqrt(self.budget / spread[name]))
                  if spread.get(name, 0) > self.budget * (1 + 1e-6) else float(base[name]) for name in blocks}
        for name, (encoder, _, _) in blocks.items():
            if isinstance(encoder, MemberProfile) and 0 < self.profile_budget * self.budget < np.inf \
                    and spread.get(name, 0) > 0:
                capped[name] = float(np.sqrt(self.profile_budget * self.budget / spread[name]))
        self.dependence_ = dependence(typed, self.schema)
        self.dependence_factor_ = self._dependence_factors()
        self.weights_ = {name: capped[name] * self.dependence_factor_[name] for name in blocks}
        self.encoder_ = ColumnTransformer([(name, enc, cols) for name, (enc, cols, _) in blocks.items()],
                                          transformer_weights=self.weights_, verbose_feature_names_out=False)
        self.encoder_.fit(typed)
        return self

    def _dependence_factors(self) -> dict[str, float]:
        """Each block's dependence factor; all 1 when turned off or when no column depends on another."""
        top = self.dependence_reference or max((d.ami for d in self.dependence_.values()), default=0.0)
        if top <= 0 or self.dependence_floor >= 1:
            return {name: 1.0 for name in self.dependence_}
        return {name: float(np.clip((d.ami / top) ** self.dependence_power, self.dependence_floor, 1.0))
                for name, d in self.dependence_.items()}

    def _reason(self, name: str) -> str:
        """Why a block weighs what it does, in words, for the manifest and the training report."""
        factor, found = self.dependence_factor_[name], self.dependence_[name]
        shared = f"shares AMI {found.ami:.3f} with {found.partner}" if found.partner else "the only feature column"
        if factor >= 1:
            return f"{shared}: full weight"
        if factor <= self.dependence_floor + 1e-9:
            return f"{shared}: independent of the other columns, weighted at the floor {self.dependence_floor:g}"
        return f"{shared}: weighted by {factor:.2f} for its weak dependence on the other columns"

    def _encoding(self, name: str) -> str:
        """How a block encodes its column, in words (a categorical column of many categories says why it is
        described by its members)."""
        encoder = self.encoder_.named_transformers_[name]
        role = next(c.role for c in self.schema.features if c.name == name)
        if isinstance(encoder, MemberProfile):
            why = f" ({self.profile_from} or more categories)" if role == Role.CATEGORICAL else ""
            return f"member profile{why}: each category described by its customers' other values"
        if isinstance(encoder, OneHotEncoder):
            return "one-hot"
        if isinstance(encoder, SimpleImputer):
            return "yes/no as 0/1"
        return {Role.DATE: "days before the reference date, standardised",
                Role.ORDINAL: "rank on its scale, standardised"}.get(role, "standardised number")

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return self.encode(self.columns_.transform(X))

    def encode(self, typed: pd.DataFrame) -> np.ndarray:
        """Model-ready rows from typed columns (``SchemaColumns.read``)."""
        return np.ascontiguousarray(self.encoder_.transform(typed), dtype=np.float32)

    def block_columns(self) -> list[list[int]]:
        """Each block's column indices in the encoded rows (blocks that encode to no column left out)."""
        check_is_fitted(self, "encoder_")
        pieces = [self.encoder_.output_indices_[name] for name in self.weights_]
        return [list(range(piece.start, piece.stop)) for piece in pieces if piece.stop > piece.start]

    def block_names(self) -> list[str]:
        """Each block's name, in ``block_columns`` order."""
        check_is_fitted(self, "encoder_")
        return [name for name in self.weights_
                if self.encoder_.output_indices_[name].stop > self.encoder_.output_indices_[name].start]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return self.encoder_.get_feature_names_out()

    def describe(self) -> dict[str, Any]:
        """Per-block weights with their measures (spread, dependence, its factor) and reason, for the manifest."""
        check_is_fitted(self, "encoder_")
        log_columns = []
        for name, encoder in self.encoder_.named_transformers_.items():
            steps = getattr(encoder, "named_steps", {})
            if "skewtamer" in steps and bool(steps["skewtamer"].log_.any()):
                log_columns.append(name)
        reference = self.columns_.reference_date_
        return {"blocks": {name: {"weight": round(w, 4), "encoding": self._encoding(name),
                                  "spread": self.block_spread_.get(name),
                                  "dependence": self.dependence_[name].ami,
                                  "shares_most_with": self.dependence_[name].partner,
                                  "dependence_factor": round(self.dependence_factor_[name], 4),
                                  "reason": self._reason(name)}
                           for name, w in self.weights_.items()},
                "log1p_columns": log_columns,
                "reference_date": reference.date().isoformat() if reference is not None else None,
                "encoded_columns": [str(c) for c in self.get_feature_names_out()]}


__all__ = ["FALSE_TEXT", "LARGEST_NUMBER", "MISSING", "NUMBER_ROLES", "PROFILE_FROM_CATEGORIES", "TRUE_TEXT",
           "MemberProfile", "SchemaColumns", "SkewTamer", "TableFeatures", "described_by_members", "level_ranks",
           "read_numbers", "stripped_text"]

"""Customer rows → feature matrix: the encoder and scaler stages, shared by training and serving.

Every feature is a function of five values (location, gender, tier, join year, join month), the
*placement key*. Tenure is counted in whole months from the model's reference date, so two customers
with the same key always get the same features; placement exploits that to answer from a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from portal.segmentation.geography import region_of
from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER, TIER_ORDER

KEY_COLUMNS = ("location", "gender", "tier", "join_year", "join_month")
CATEGORICAL_BLOCKS = ("location", "region", "gender")
NUMERIC_BLOCKS = ("tier", "tenure_months", "month_sin", "month_cos")
PROFILE_BLOCK = "area_profile"


@dataclass(frozen=True)
class FeatureWeights:
    """Relative weight of each feature block in the distance UMAP sees (0 leaves a block out).

    Measured against planted customer groups (see bench/): any one-hot block heavier than the
    neighbour radius turns each category into its own UMAP island, so location enters through its
    *profile* (when and at which tier its customers joined) and the one-hot blocks default to 0.
    """

    area_profile: float = 2.0
    tenure: float = 2.5
    tier: float = 0.1
    location: float = 0.0
    region: float = 0.0
    gender: float = 0.0
    season: float = 0.0

    def by_block(self) -> dict[str, float]:
        return {PROFILE_BLOCK: self.area_profile, "location": self.location, "region": self.region,
                "gender": self.gender, "tier": self.tier, "tenure_months": self.tenure,
                "month_sin": self.season, "month_cos": self.season}


class AreaProfileEncoder(TransformerMixin, BaseEstimator):
    """Describe each location by its customers: the share joining in each tenure band and at each tier.

    Locations whose customers look alike land close together, so the segments follow how areas
    behave rather than the arbitrary equal distance a one-hot code puts between any two areas.
    Counts are shrunk toward the whole base (``pseudo_count``) so a rare area is not an outlier, and
    square-rooted (Hellinger geometry). An unseen location gets the whole base's profile.
    """

    def __init__(self, bands: int = 8, pseudo_count: float = 20.0) -> None:
        self.bands = bands
        self.pseudo_count = pseudo_count

    def _histogram(self, X: pd.DataFrame) -> np.ndarray:
        tenure = X["tenure_months"].to_numpy(dtype=float)
        band = np.searchsorted(self.edges_, tenure)
        tier = np.clip(X["tier"].to_numpy(dtype=float).round().astype(int) - 1, 0, 2)
        counts = np.zeros((len(X), len(self.edges_) + 1 + 3))
        counts[np.arange(len(X)), band] = 1
        counts[np.arange(len(X)), len(self.edges_) + 1 + tier] = 1
        return counts

    def fit(self, X: pd.DataFrame, y: object = None) -> AreaProfileEncoder:
        tenure = X["tenure_months"].to_numpy(dtype=float)
        self.edges_ = np.unique(np.quantile(tenure, np.linspace(0, 1, self.bands + 1)[1:-1]))
        counts = self._histogram(X)
        base = counts.mean(axis=0)
        self.base_profile_ = np.sqrt(base / 2)
        frame = pd.DataFrame(counts).assign(_loc=X["location"].to_numpy())
        sums = frame.groupby("_loc").sum()
        sizes = frame.groupby("_loc").size().to_numpy()[:, None]
        profiles = np.sqrt((sums.to_numpy() + self.pseudo_count * base) / (sizes + self.pseudo_count) / 2)
        self.profiles_ = dict(zip(sums.index, profiles))
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "profiles_")
        return np.array([self.profiles_.get(loc, self.base_profile_) for loc in X["location"].to_numpy()])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "base_profile_")
        width = len(self.base_profile_)
        return np.array([f"{PROFILE_BLOCK}_{i}" for i in range(width)], dtype=object)


def placement_keys(customers: pd.DataFrame) -> pd.DataFrame:
    """The five values every feature derives from, from canonical customer columns."""
    joined = pd.to_datetime(customers[DATE_JOINED])
    return pd.DataFrame({
        "location": customers[LOCATION].astype(str).to_numpy(),
        "gender": customers[GENDER].astype(str).to_numpy() if GENDER in customers else "Unknown",
        "tier": customers[LOYALTY_TIER].astype(str).to_numpy(),
        "join_year": joined.dt.year.to_numpy(dtype=np.int64),
        "join_month": joined.dt.month.to_numpy(dtype=np.int64),
    })


def feature_frame(keys: pd.DataFrame, reference_month: int, max_tenure: int | None = None) -> pd.DataFrame:
    """Derived, model-ready columns from placement keys.

    ``reference_month`` is year*12+month-1 of the newest training customer. Tenure is clipped to the
    training range: customers who joined after training count as the newest cohort, and customers
    older than anyone in training as the oldest, rather than as shapes the model never saw.
    """
    months = keys["join_year"].to_numpy() * 12 + keys["join_month"].to_numpy() - 1
    angle = 2 * np.pi * (keys["join_month"].to_numpy() - 1) / 12
    return pd.DataFrame({
        "location": keys["location"].to_numpy(),
        "region": [region_of(loc) for loc in keys["location"].to_numpy()],
        "gender": keys["gender"].to_numpy(),
        "tier": keys["tier"].map(TIER_ORDER).fillna(1).to_numpy(dtype=float),
        "tenure_months": np.clip(reference_month - months, 0, max_tenure).astype(float),
        "month_sin": np.sin(angle),
        "month_cos": np.cos(angle),
    })


def build_encoder() -> ColumnTransformer:
    """Area profile, one-hot for categories (unknown values encode as all zeros), numbers passed through."""
    onehot = [(name, OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64), [name])
              for name in CATEGORICAL_BLOCKS]
    profile = [(PROFILE_BLOCK, AreaProfileEncoder(), ["location", "tenure_months", "tier"])]
    return ColumnTransformer(profile + onehot + [("numeric", "passthrough", list(NUMERIC_BLOCKS))],
                             verbose_feature_names_out=False)


def block_of(encoded_name: str) -> str:
    """The feature block an encoded column belongs to ('location_Bedok' → 'location')."""
    return next((b for b in (PROFILE_BLOCK, *CATEGORICAL_BLOCKS) if encoded_name.startswith(b + "_")), encoded_name)


def build_scaler(encoded_names: list[str], weights: FeatureWeights) -> ColumnTransformer:
    """Weight each feature block, so that no block drowns the rest (27 location columns would drown tier
    and tenure): numbers are standardised then weighted; a one-hot block is scaled so that two different
    categories sit ``weight`` apart, however many there are; the area profile is weighted as it is.
    Blocks of weight 0 are dropped."""
    columns: dict[str, list[int]] = {}
    for position, name in enumerate(encoded_names):
        columns.setdefault(block_of(name), []).append(position)
    by_block = weights.by_block()
    transformers: list[tuple[str, Any, list[int]]] = []
    transformer_weights: dict[str, float] = {}
    for block, positions in columns.items():
        weight = by_block.get(block, 1.0)
        if weight == 0:
            continue
        if block == PROFILE_BLOCK or block in CATEGORICAL_BLOCKS:
            transformers.append((block, "passthrough", positions))
            weight = weight if block == PROFILE_BLOCK else weight / np.sqrt(2)
        else:
            transformers.append((block, StandardScaler(), positions))
        transformer_weights[block] = float(weight)
    return ColumnTransformer(transformers, transformer_weights=transformer_weights)


def fit_encoder_and_scaler(frame: pd.DataFrame,
                           weights: FeatureWeights) -> tuple[ColumnTransformer, ColumnTransformer]:
    """Fit both stages on a derived feature frame."""
    encoder = build_encoder().fit(frame)
    scaler = build_scaler(list(encoder.get_feature_names_out()), weights)
    scaler.fit(encoder.transform(frame))
    return encoder, scaler

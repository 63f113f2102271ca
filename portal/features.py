"""Customer rows → feature matrix: the encoder and scaler stages, shared by training and serving.

Every feature is a function of five values (location, gender, tier, join year, join month), the
*placement key*. Tenure is counted in whole months from the model's reference date, so two customers
with the same key always get the same features; placement exploits that to answer from a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from portal.sample_data import REGION_OF_AREA
from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER, TIER_ORDER

KEY_COLUMNS = ("location", "gender", "tier", "join_year", "join_month")
CATEGORICAL_BLOCKS = ("location", "region", "gender")
NUMERIC_BLOCKS = ("tier", "tenure_months", "month_sin", "month_cos")
_REGION_LOOKUP = {area.lower(): region for area, region in REGION_OF_AREA.items()}


@dataclass(frozen=True)
class FeatureWeights:
    """Relative weight of each feature block in the distance UMAP sees."""

    location: float = 1.0
    region: float = 1.0
    gender: float = 0.3
    tier: float = 1.0
    tenure: float = 1.5
    season: float = 0.3

    def by_block(self) -> dict[str, float]:
        return {"location": self.location, "region": self.region, "gender": self.gender,
                "tier": self.tier, "tenure_months": self.tenure, "month_sin": self.season,
                "month_cos": self.season}


def region_of(location: str) -> str:
    """Singapore region of a planning area; 'Other' for places outside the URA list."""
    return _REGION_LOOKUP.get(str(location).lower(), "Other")


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


def feature_frame(keys: pd.DataFrame, reference_month: int) -> pd.DataFrame:
    """Derived, model-ready columns from placement keys.

    ``reference_month`` is year*12+month of the newest training customer; tenure is clipped at 0 so
    customers who joined after training count as the newest cohort rather than as a new shape.
    """
    months = keys["join_year"].to_numpy() * 12 + keys["join_month"].to_numpy() - 1
    angle = 2 * np.pi * (keys["join_month"].to_numpy() - 1) / 12
    return pd.DataFrame({
        "location": keys["location"].to_numpy(),
        "region": [region_of(loc) for loc in keys["location"].to_numpy()],
        "gender": keys["gender"].to_numpy(),
        "tier": keys["tier"].map(TIER_ORDER).fillna(1).to_numpy(dtype=float),
        "tenure_months": np.clip(reference_month - months, 0, None).astype(float),
        "month_sin": np.sin(angle),
        "month_cos": np.cos(angle),
    })


def build_encoder() -> ColumnTransformer:
    """One-hot for categories (unknown values encode as all zeros), numbers passed through."""
    onehot = [(name, OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64), [name])
              for name in CATEGORICAL_BLOCKS]
    return ColumnTransformer(onehot + [("numeric", "passthrough", list(NUMERIC_BLOCKS))],
                             verbose_feature_names_out=False)


class BlockScaler(TransformerMixin, BaseEstimator):
    """Standardise numeric columns and weight each feature block.

    A one-hot block's columns are scaled so that two different categories sit ``weight`` apart,
    however many categories there are; numeric columns are standardised, then weighted. Without
    this, 27 location columns drown tier and tenure.
    """

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = weights

    def fit(self, X: np.ndarray, y: object = None, feature_names: list[str] | None = None) -> BlockScaler:
        names = list(feature_names if feature_names is not None else self.feature_names_)
        weights = self.weights or FeatureWeights().by_block()
        X = np.asarray(X, dtype=np.float64)
        self.feature_names_ = names
        self.center_ = np.zeros(X.shape[1])
        self.scale_ = np.ones(X.shape[1])
        for j, name in enumerate(names):
            block = next((b for b in CATEGORICAL_BLOCKS if name.startswith(b + "_")), name)
            weight = weights.get(block, 1.0)
            if block in CATEGORICAL_BLOCKS:
                self.scale_[j] = weight / np.sqrt(2)
            else:
                std = X[:, j].std()
                self.center_[j] = X[:, j].mean()
                self.scale_[j] = weight / (std if std > 1e-9 else 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.center_) * self.scale_).astype(np.float32)


def fit_encoder_and_scaler(frame: pd.DataFrame, weights: FeatureWeights) -> tuple[ColumnTransformer, BlockScaler]:
    """Fit both stages on a derived feature frame."""
    encoder = build_encoder().fit(frame)
    scaler = BlockScaler(weights.by_block())
    scaler.fit(encoder.transform(frame), feature_names=list(encoder.get_feature_names_out()))
    return encoder, scaler

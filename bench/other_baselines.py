"""Calibration for ``bench.other_generator``'s files (not the product): how recoverable are the planted groups?

- ``kmeans_true_k``: a naive unsupervised baseline that is handed what the product has to find itself, the TRUE
  number of groups; plain encoding (log of skewed numbers, z-scores, one-hot categories scaled by 1/sqrt(2),
  dates as days, median / "NA" fill).
- ``supervised_ceiling``: 5-fold cross-validated gradient boosting trained ON the answers; about as much of the
  grouping as the columns carry.

Both use every column but the identifier and personal ones (noise columns included, as the product sees them);
the columns to drop and the date formats come from the generator, not from the product's schema inference.
Fixed seeds, so the figures repeat from run to run. Both run on one OpenMP / BLAS
thread: on 2 shared cores, two spinning OpenMP threads made gradient boosting 25x slower (41 s against 1.5 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits


def encode(frame: pd.DataFrame, date_formats: Mapping[str, str]) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """The plain encoding: (numbers z-scored + one-hot categories / sqrt(2), the numbers, the categories as
    ordinal codes). Dates count days before the file's latest; skewed non-negative numbers are logged."""
    num, cat = [], []
    for c in frame.columns:
        s = frame[c]
        if c in date_formats:
            d = pd.to_datetime(s, format=date_formats[c])
            num.append(((d.max() - d).dt.days).astype(float).rename(c))
        elif pd.api.types.is_numeric_dtype(s):
            x = s.astype(float)
            x = x.fillna(x.median())
            if x.min() >= 0 and x.skew() > 1:
                x = np.log1p(x)
            num.append(x.rename(c))
        else:
            cat.append(s.fillna("NA").astype(str).rename(c))
    numbers = pd.concat(num, axis=1) if num else pd.DataFrame(index=frame.index)
    numbers = (numbers - numbers.mean()) / numbers.std(ddof=0).replace(0, 1)
    categories = pd.concat(cat, axis=1) if cat else pd.DataFrame(index=frame.index)
    onehot = pd.get_dummies(categories).astype(float) / np.sqrt(2) if cat else categories
    ordinal = categories.apply(lambda s: s.astype("category").cat.codes) if cat else categories
    return np.hstack([numbers.to_numpy(), onehot.to_numpy()]), numbers, ordinal


def kmeans_true_k(frame: pd.DataFrame, drop_columns: Iterable[str], date_formats: Mapping[str, str],
                  truth: ArrayLike) -> float:
    """ARI of KMeans with the true number of groups (``truth``: each row's planted group, in row order)."""
    y = np.asarray(truth)
    X, _, _ = encode(frame.drop(columns=list(drop_columns)), date_formats)
    with threadpool_limits(1):
        labels = KMeans(len(np.unique(y)), n_init=10, random_state=0).fit_predict(X)
    return float(adjusted_rand_score(y, labels))


def supervised_ceiling(frame: pd.DataFrame, drop_columns: Iterable[str], date_formats: Mapping[str, str],
                       truth: ArrayLike, scored_on: ArrayLike | None = None) -> float:
    """ARI of 5-fold cross-validated gradient boosting trained on the answers (categories as native
    categoricals): what an unsupervised method could hope to reach on this file. ``scored_on``: score against
    these labels instead (training on answers that merge groups no method can tell apart, scoring on the
    planted ones)."""
    y = np.asarray(truth)
    _, numbers, ordinal = encode(frame.drop(columns=list(drop_columns)), date_formats)
    Z = pd.concat([numbers, ordinal], axis=1)
    model = HistGradientBoostingClassifier(categorical_features=[c in ordinal.columns for c in Z.columns],
                                           random_state=0)
    with threadpool_limits(1):
        predicted = cross_val_predict(model, Z.to_numpy(), y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return float(adjusted_rand_score(y if scored_on is None else np.asarray(scored_on), predicted))

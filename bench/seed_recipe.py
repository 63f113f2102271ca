"""The seed system's segmentation, reproduced exactly, so every figure can be set beside ours.

Features: one-hot of Location, Gender, Join_Year, Join_Month, Join_Quarter plus a StandardScaler on
the tier ordinal (Silver 1, Gold 2, Platinum 3); UMAP(n_neighbors=120, min_dist=0.1, n_components=10,
random_state=42); HDBSCAN(min_cluster_size=400, min_samples=5, prediction_data=True) — fixed numbers,
whatever the data size, as the seed had them. Serving loaded the four pickles with joblib on every
request, then ran UMAP.transform + approximate_predict; its upload route refitted HDBSCAN on the
uploaded rows. Input here is the canonical customer frame our ingestion produces, so both systems
start from the same rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER

UMAP_PARAMS = {"n_neighbors": 120, "min_dist": 0.1, "n_components": 10, "random_state": 42}
HDBSCAN_PARAMS = {"min_cluster_size": 400, "min_samples": 5, "prediction_data": True}
ONEHOT_COLUMNS = ["Location", "Gender", "Join_Year", "Join_Month", "Join_Quarter"]
TIER_NUM = {"Silver": 1, "Gold": 2, "Platinum": 3}
ARTIFACTS = {"encoder": "encoder.pkl", "scaler": "scaler.pkl", "umap": "umap_model.pkl",
             "hdbscan": "hdbscan_model.pkl"}


def seed_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """The seed's derived columns from canonical customer rows."""
    joined = pd.to_datetime(customers[DATE_JOINED])
    return pd.DataFrame({
        "Location": customers[LOCATION].astype(str).to_numpy(),
        "Gender": customers[GENDER].astype(str).to_numpy() if GENDER in customers else "Unknown",
        "Join_Year": joined.dt.year.to_numpy(),
        "Join_Month": joined.dt.month.to_numpy(),
        "Join_Quarter": joined.dt.quarter.to_numpy(),
        "Tier_Num": customers[LOYALTY_TIER].map(TIER_NUM).fillna(1).to_numpy(dtype=float),
    })


def features(frame: pd.DataFrame, encoder: Any, scaler: Any) -> np.ndarray:
    """One-hot block and scaled tier side by side, as the seed stacked them."""
    return np.hstack([encoder.transform(frame[ONEHOT_COLUMNS]), scaler.transform(frame[["Tier_Num"]])])


def fit(customers: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """Fit the seed pipeline on canonical rows, write its four pickles; return timings and labels."""
    import hdbscan
    import umap
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    timings = {}
    started = time.perf_counter()
    frame = seed_frame(customers)
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(frame[ONEHOT_COLUMNS])
    scaler = StandardScaler().fit(frame[["Tier_Num"]])
    X = features(frame, encoder, scaler)
    timings["features_s"] = time.perf_counter() - started
    started = time.perf_counter()
    reducer = umap.UMAP(**UMAP_PARAMS)
    embedding = reducer.fit_transform(X)
    timings["umap_fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    clusterer = hdbscan.HDBSCAN(**HDBSCAN_PARAMS).fit(embedding)
    timings["hdbscan_fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, obj in (("encoder", encoder), ("scaler", scaler), ("umap", reducer), ("hdbscan", clusterer)):
        joblib.dump(obj, out_dir / ARTIFACTS[name])
    timings["save_s"] = time.perf_counter() - started
    return {"timings": timings, "X": X, "embedding": embedding, "labels": clusterer.labels_,
            "models": (encoder, scaler, reducer, clusterer)}


def load(model_dir: Path) -> tuple[Any, Any, Any, Any]:
    """The four pickles, as the seed loaded them (on every request)."""
    return tuple(joblib.load(model_dir / ARTIFACTS[name]) for name in ("encoder", "scaler", "umap", "hdbscan"))


def place(customers: pd.DataFrame, models: tuple[Any, Any, Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    """transform + approximate_predict with models already in memory (labels, strengths; -1 is noise)."""
    import hdbscan

    encoder, scaler, reducer, clusterer = models
    embedded = reducer.transform(features(seed_frame(customers), encoder, scaler))
    return hdbscan.approximate_predict(clusterer, embedded)


def place_per_request(customers: pd.DataFrame, model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The seed's request path: load every artifact from disk, then transform + approximate_predict."""
    return place(customers, load(model_dir))


def upload_refit(customers: pd.DataFrame, model_dir: Path) -> np.ndarray:
    """The seed's upload path: load, transform, then refit HDBSCAN on the uploaded rows (new ids)."""
    import hdbscan

    encoder, scaler, reducer, _ = load(model_dir)
    embedded = reducer.transform(features(seed_frame(customers), encoder, scaler))
    return hdbscan.HDBSCAN(**HDBSCAN_PARAMS).fit(embedded).labels_


def metrics(embedding: np.ndarray, labels: np.ndarray, sample: int = 2000) -> dict[str, Any]:
    """Clusters, noise, DBCV and silhouette in the UMAP space, on the same sample size as our manifest."""
    from hdbscan.validity import validity_index
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    idx = rng.choice(len(embedding), size=min(sample, len(embedding)), replace=False)
    emb, lab = embedding[idx].astype(np.float64), labels[idx]
    clustered = lab >= 0
    out: dict[str, Any] = {"clusters": len(set(labels.tolist()) - {-1}),
                           "noise_share": round(float(np.mean(labels == -1)), 4), "dbcv": None, "silhouette": None}
    if len(set(lab[clustered])) >= 2:
        out["silhouette"] = round(float(silhouette_score(emb[clustered], lab[clustered])), 4)
        try:
            out["dbcv"] = round(float(validity_index(emb, lab)), 4)
        except (ValueError, ZeroDivisionError, FloatingPointError):
            pass
    return out

"""How good a fitted segmentation is: cluster count, noise, DBCV, silhouette, and re-placement agreement.

Recorded in every release manifest; the retraining job's gates read them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from portal.segmentation.features import placement_keys
from portal.segmentation.model import SegmentationModel
from portal.segmentation.table_model import TableSegmentationModel

log = logging.getLogger(__name__)


def metrics_of(model: SegmentationModel | TableSegmentationModel, sample: int = 2000) -> dict[str, Any]:
    """Cluster count, noise share, DBCV and silhouette (in the embedding, on a sample)."""
    from hdbscan.validity import validity_index
    from sklearn.metrics import silhouette_score

    embedding = model.embedding_sample_
    labels = model.embedding_sample_labels_
    rng = np.random.default_rng(0)
    idx = rng.choice(len(embedding), size=min(sample, len(embedding)), replace=False)
    emb, lab = embedding[idx].astype(np.float64), labels[idx]
    clustered = lab >= 0
    out: dict[str, Any] = {"clusters": len(model.cluster_ids_), "noise_share": round(model.noise_share_, 4),
                           "dbcv": None, "silhouette": None}
    if len(set(lab[clustered])) >= 2:
        out["silhouette"] = round(float(silhouette_score(emb[clustered], lab[clustered])), 4)
        try:
            out["dbcv"] = round(float(validity_index(emb, lab)), 4)
        except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
            log.warning("DBCV could not be computed: %s", exc)
    return out


def replacement_agreement(model: SegmentationModel, customers: pd.DataFrame, sample: int = 1000) -> dict[str, float]:
    """How often placing a training row gives back its fitted label (non-noise rows only).

    ``replacement_agreement`` is what serving does (table first); ``transform_agreement`` forces the
    full UMAP.transform + approximate_predict path on a sample, as for never-seen rows.
    """
    fit_rows = model.fit_rows_
    fitted = model.fitted_labels_
    clustered = fitted >= 0
    if not clustered.any():
        return {"replacement_agreement": 0.0, "transform_agreement": 0.0}
    subset = customers.iloc[fit_rows]
    served = model.place(subset).cluster_id
    rng = np.random.default_rng(0)
    picked = rng.choice(np.flatnonzero(clustered), size=min(sample, int(clustered.sum())), replace=False)
    full = np.array([label for label, _, _ in model.place_through_reducer(placement_keys(subset.iloc[picked]))])
    return {"replacement_agreement": round(float(np.mean(served[clustered] == fitted[clustered])), 4),
            "transform_agreement": round(float(np.mean(full == fitted[picked])), 4)}

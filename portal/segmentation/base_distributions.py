"""The training base's distributions, saved in every release at training time, so an upload can be set against
the population the model was fitted on: per feature column its bins or categories with their shares (overall and
per segment) and its numeric range, the base's own mean placement confidence and reassigned share, and the
summaries a list profile's "vs the training base" numbers are read from.

Aggregates only: counts per bin or category, medians and ranges. A category held by fewer than
``MIN_CUSTOMERS`` training customers has no bucket of its own (it is counted under ``OTHER``), and the set of
known categories is kept as short hashes, so the file names no rare value. Releases written before
this file existed have none; readers get ``None`` and say so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from portal.ingestion.roles import Role, TableSchema
from portal.segmentation.table_personas import MIN_CUSTOMERS

log = logging.getLogger(__name__)

FILE = "base_distributions.json"
FORMAT = 1
#: Numeric columns are cut at the training base's deciles.
BINS = 10
#: At most this many categories get a bucket of their own; the rest share ``OTHER``.
MAX_CATEGORIES = 30
OTHER = "(other)"
BLANK = "(blank)"
NUMBER, CATEGORY = "number", "category"
#: Rows compared at training time for the base's own confidence and reassigned share.
CONFIDENCE_SAMPLE = 20_000

#: name → (kind, values): the columns a fit check compares, as the model reads them.
FitColumns = dict[str, tuple[str, pd.Series]]


def value_hash(value: object) -> str:
    """Short stable hash of a category value: lets an upload's values be checked against the training set
    without the release file naming any of them."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


def loyalty_fit_columns(keys: pd.DataFrame, reference_month: int) -> FitColumns:
    """The loyalty model's inputs from placement keys: location, gender, tier and tenure in months before the
    model's reference month (not clipped, so a join date outside the training range shows as one)."""
    months = keys["join_year"].to_numpy(dtype=np.int64) * 12 + keys["join_month"].to_numpy(dtype=np.int64) - 1
    return {"Location": (CATEGORY, pd.Series(keys["location"].to_numpy(), dtype=object)),
            "Gender": (CATEGORY, pd.Series(keys["gender"].to_numpy(), dtype=object)),
            "Loyalty Tier": (CATEGORY, pd.Series(keys["tier"].to_numpy(), dtype=object)),
            "Tenure (months)": (NUMBER, pd.Series((reference_month - months).astype(float)))}


def table_fit_columns(typed: pd.DataFrame, schema: TableSchema) -> FitColumns:
    """A learned schema's feature columns as the model reads them (typed): numbers, dates (days before the
    reference date) and ordinal ranks as numbers; categories and yes/no (as its typed '1.0' / '0.0', the way
    the persona trait code counts it) as categories."""
    out: FitColumns = {}
    for column in schema.features:
        values = typed[column.name].reset_index(drop=True)
        if column.role in (Role.NUMERIC, Role.DATE, Role.ORDINAL):
            out[column.name] = (NUMBER, values.astype(float))
        elif column.role == Role.BOOLEAN:
            out[column.name] = (CATEGORY, pd.Series(np.where(values.isna(), BLANK, values.astype(str)), dtype=object))
        else:
            out[column.name] = (CATEGORY, values.astype(object))
    return out


def bucket_codes(entry: dict[str, Any], values: pd.Series) -> np.ndarray:
    """The bucket of every value under a saved feature entry (``entry['buckets']`` order)."""
    if entry["kind"] == NUMBER:
        numbers = values.to_numpy(dtype=float)
        codes = np.searchsorted(np.asarray(entry["edges"], dtype=float), numbers, side="right")
        return np.where(np.isnan(numbers), len(entry["buckets"]) - 1, codes)
    position = {value: i for i, value in enumerate(entry["buckets"])}
    other = len(entry["buckets"]) - 1
    return by_distinct_value(values, lambda v: position.get(str(v), other), other)


def by_distinct_value(values: pd.Series, answer: Any, missing: Any) -> np.ndarray:
    """``answer(value)`` for every row, computed once per distinct value (``missing`` for blanks): a list of
    100k rows holds a few dozen categories."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.array([answer(u) for u in uniques] + [missing])
    return table[codes]


def _number_entry(values: pd.Series) -> dict[str, Any]:
    present = values.dropna()
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])) if len(present) else np.array([])
    labels = [f"up to {edges[0]:g}"] if len(edges) else ["any"]
    labels += [f"{lo:g} to {hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    labels += [f"above {edges[-1]:g}"] if len(edges) else []
    return {"kind": NUMBER, "edges": [float(e) for e in edges], "buckets": [*labels, BLANK],
            "range": [float(present.min()), float(present.max())] if len(present) else None,
            "summary": {"count": int(len(present)), "median": _float(present.median()),
                        "mean": _float(present.mean()), "std": _float(present.std())}}


def _category_entry(values: pd.Series) -> dict[str, Any]:
    counts = values.astype(str).value_counts()
    kept = [str(v) for v, c in counts.head(MAX_CATEGORIES).items() if c >= MIN_CUSTOMERS]
    return {"kind": CATEGORY, "buckets": [*kept, OTHER], "known": sorted(value_hash(v) for v in counts.index),
            "summary": {"count": int(len(values)),
                        "counts": {str(v): int(c) for v, c in counts.items() if c >= MIN_CUSTOMERS}}}


def _float(value: Any) -> float | None:
    return float(value) if value is not None and pd.notna(value) else None


def describe(columns: FitColumns, labels: np.ndarray, confidence: np.ndarray, reassigned: np.ndarray,
             traits: dict[str, dict[str, float]] | None = None, trait_reference: str | None = None) -> dict[str, Any]:
    """The saved description of a training base: every fit column's buckets, shares overall and counts per
    segment, plus the base's placement confidence and reassigned share."""
    labels = np.asarray(labels)
    segments = sorted(int(c) for c in set(labels.tolist()) if c >= 0)
    features: dict[str, Any] = {}
    for name, (kind, values) in columns.items():
        entry = _number_entry(values) if kind == NUMBER else _category_entry(values)
        codes = bucket_codes(entry, values)
        width = len(entry["buckets"])
        entry["shares"] = [round(float(s), 6) for s in np.bincount(codes, minlength=width) / max(len(codes), 1)]
        entry["by_segment"] = {str(c): np.bincount(codes[labels == c], minlength=width).astype(int).tolist()
                               for c in segments}
        features[name] = entry
    return {"format": FORMAT, "rows": int(len(labels)),
            "segments": {str(c): int(np.sum(labels == c)) for c in segments},
            "mean_confidence": round(float(np.mean(confidence)), 4) if len(confidence) else None,
            "reassigned_share": round(float(np.mean(reassigned)), 4) if len(reassigned) else None,
            "features": features, "traits": traits or {}, "trait_reference": trait_reference}


def sample_rows(count: int, seed: int = 0) -> np.ndarray:
    """Which training rows are placed to measure the base's own confidence (all of them up to the cap)."""
    if count <= CONFIDENCE_SAMPLE:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=CONFIDENCE_SAMPLE, replace=False))


def trait_shares(traits: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Share of every value of every trait column (the loyalty personas' trait table)."""
    return {column: {str(k): round(float(v), 6) for k, v in traits[column].value_counts(normalize=True).items()}
            for column in traits.columns}


def for_loyalty(model: Any, customers: pd.DataFrame) -> dict[str, Any]:
    """The description of a fitted loyalty model's training customers."""
    from portal.segmentation.features import placement_keys
    from portal.segmentation.personas import trait_reference, trait_table

    keys = placement_keys(customers)
    picked = sample_rows(len(customers))
    placed = model.place_keys(keys.iloc[picked])
    reference = trait_reference(customers)
    return describe(loyalty_fit_columns(keys, model.reference_month_), model.labels_, placed.confidence,
                    placed.reassigned, trait_shares(trait_table(customers, reference)), reference.isoformat())


def for_table(model: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """The description of a fitted learned-schema model's training table."""
    typed = model.features_.columns_.transform(frame.reset_index(drop=True))
    picked = sample_rows(len(typed))
    placed = model.place_typed(typed.iloc[picked])
    return describe(table_fit_columns(typed, model.schema), model.labels_, placed.confidence, placed.reassigned)


def save(folder: Path, description: dict[str, Any]) -> Path:
    path = Path(folder) / FILE
    path.write_text(json.dumps(description, ensure_ascii=False))
    return path


def load(folder: Path) -> dict[str, Any] | None:
    """The release's training-base distributions, or None for a release written without them."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s); no fit check for this release", path, exc.__class__.__name__)
        return None
    return description if isinstance(description, dict) and description.get("format") == FORMAT else None


def unseen_rows(entry: dict[str, Any], values: pd.Series) -> np.ndarray:
    """Which rows hold a category that no training customer held (compared by hash; a blank is a category)."""
    seen = set(entry.get("known", []))
    return by_distinct_value(values, lambda v: value_hash(v) not in seen, value_hash("nan") not in seen).astype(bool)


__all__ = ["BLANK", "CATEGORY", "FILE", "NUMBER", "OTHER", "bucket_codes", "by_distinct_value", "describe",
           "for_loyalty", "for_table", "load",
           "loyalty_fit_columns", "sample_rows", "save", "table_fit_columns", "trait_shares"]

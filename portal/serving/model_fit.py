"""Does this list fit the model? Every upload's ``model_fit``: a score, its parts, a verdict and, when the list
does not look like the training base, the command or admin call that trains a model on it.

The parts, each compared with what the training base itself gives (saved in the release by
``portal.segmentation.base_distributions``):

- ``unseen_categories``: share of placed rows holding a category the model never saw;
- ``out_of_range``: share of placed rows with a number outside the training range;
- ``skipped_rows``: share of received rows that could not be read (unknown levels, bad values);
- ``mean_confidence``: the list's mean placement confidence against the base's (its relative drop counts);
- ``reassigned_share``: rows whose neighbourhood was noise in training (the excess over the base's counts);
- ``distribution_distance``: per feature, how far the list's members of each segment are from the training
  members of the same segment (a sampling-corrected chi-square divergence, which PSI approximates for small
  shifts), weighted by the list's segment shares; the plain PSI against the whole training base is reported
  beside it. A campaign list made of some segments is not a misfit; a list whose members look unlike the
  training members of the segments they were put in is.

Each part ``d`` scores ``1 / (1 + d / scale)`` (1 when the list looks like the base, 0.5 at its scale); the
score is the weakest part's, and the verdict cuts it at thresholds measured by ``bench/model_fit.py`` on lists
that do and do not come from the training population. Only shares and column names leave this module: never a
value of the list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from portal.segmentation.base_distributions import CATEGORY, NUMBER, FitColumns, bucket_codes, unseen_rows

log = logging.getLogger(__name__)

#: At each part's scale its score is 0.5.
SCALES = {"unseen_categories": 0.05, "out_of_range": 0.05, "skipped_rows": 0.10, "mean_confidence": 0.20,
          "reassigned_share": 0.10, "distribution_distance": 0.25}
#: Verdict thresholds on the score, measured in bench/model_fit.py (see the README's figures).
GOOD_AT, POOR_BELOW = 0.6, 0.35
#: Below this many placed rows the distributions are not compared (sampling noise would dominate).
MIN_ROWS_FOR_DISTANCE = 50
TRAIN_COMMAND = "flask --app app train --data FILE"
_FLOOR = 1e-4
_WHAT = {"unseen_categories": "categories the model never saw", "out_of_range": "numbers outside the training range",
         "skipped_rows": "rows that could not be read", "mean_confidence": "low placement confidence",
         "reassigned_share": "rows placed from the model's noise",
         "distribution_distance": "customers unlike the training members of their segments"}


def _psi(observed_counts: np.ndarray, expected: np.ndarray) -> float:
    """PSI with half-count smoothing of the observed shares, so an empty bin of a small list does not explode."""
    n, k = observed_counts.sum(), len(observed_counts)
    observed = (observed_counts + 0.5) / (n + 0.5 * k)
    expected = np.maximum(expected, _FLOOR)
    expected = expected / expected.sum()
    return float(np.sum((observed - expected) * np.log(observed / expected)))


#: Segments with fewer placed rows than this are left out of the distance (their shares are mostly noise).
MIN_SEGMENT_ROWS = 20
#: Standard deviations of the sampling spread allowed before a divergence counts.
SPREAD = 3.0


def _divergence(observed: np.ndarray, training: np.ndarray) -> float:
    """Pearson divergence sum((o - e)^2 / e) between a list's bucket counts and a training segment's, less what
    sampling alone gives: its expectation, (buckets - 1) x (1/rows + 1/training rows), and three of its
    standard deviations, which rare buckets make large for a small list. So a list from the training population
    scores about 0 whatever its size, and a small list must differ more to count. The training shares get half
    a count per bucket, so a bucket the segment never held is large but finite."""
    rows, size, width = observed.sum(), training.sum(), len(observed)
    expected = (training + 0.5) / (size + 0.5 * width)
    chi2 = float(np.sum((observed - rows * expected) ** 2 / (rows * expected)))
    variance = 2 * (width - 1) + (float(np.sum(1 / expected)) - width ** 2 - 2 * width + 2) / rows
    allowance = (width - 1) * (1 / rows + 1 / size) + SPREAD * np.sqrt(max(variance, 0.0)) / rows
    return chi2 / rows - allowance


def _distance(columns: FitColumns, cluster_ids: np.ndarray, base: dict[str, Any]) -> dict[str, Any]:
    """Per feature: within each segment, the divergence between the list's members and the training members of
    that segment, averaged with the list's segment shares as weights; and the plain PSI against the whole base."""
    ids = np.asarray(cluster_ids)
    sizes = base.get("segments", {})
    segments = [(str(int(c)), ids == c) for c in np.unique(ids)
                if str(int(c)) in sizes and int(np.sum(ids == c)) >= MIN_SEGMENT_ROWS]
    compared = sum(int(mask.sum()) for _, mask in segments)
    by_feature: dict[str, Any] = {}
    for name, (_, values) in columns.items():
        entry = base["features"].get(name)
        if entry is None or not compared:
            continue
        width = len(entry["buckets"])
        codes = bucket_codes(entry, values)
        divergence = 0.0
        for segment, mask in segments:
            training = np.asarray(entry["by_segment"].get(segment, [0] * width), dtype=float)
            if training.sum():
                observed = np.bincount(codes[mask], minlength=width).astype(float)
                divergence += mask.sum() / compared * _divergence(observed, training)
        whole = _psi(np.bincount(codes, minlength=width).astype(float), np.asarray(entry["shares"], dtype=float))
        by_feature[name] = {"within_segments": round(max(0.0, divergence), 4), "psi_vs_whole_base": round(whole, 4)}
    worst = max(by_feature, key=lambda f: by_feature[f]["within_segments"], default=None)
    return {"value": by_feature[worst]["within_segments"] if worst else 0.0, "feature": worst,
            "by_feature": by_feature, "segments_compared": len(segments),
            "measure": "per feature, the divergence sum((o - e)^2 / e) between the list's members of each segment "
                       "and that segment's training members, less what sampling gives at these sizes, weighted by "
                       "the list's segment shares (psi_vs_whole_base: the plain PSI against all training "
                       "customers, for reading; it also moves for a list of a few segments)"}


Flag = Callable[[dict[str, Any], pd.Series], np.ndarray | None]


def _flagged_share(columns: FitColumns, base: dict[str, Any], kind: str, flag: Flag) -> tuple[float, dict[str, float]]:
    """Share of rows that ``flag`` marks in any column of ``kind``, and per column (``flag`` gets the column's
    training-base entry and values, and returns None where the entry cannot tell)."""
    rows = len(next(iter(columns.values()))[1]) if columns else 0
    flagged_any = np.zeros(rows, dtype=bool)
    by_column: dict[str, float] = {}
    for name, (column_kind, values) in columns.items():
        entry = base["features"].get(name)
        flagged = flag(entry, values) if column_kind == kind and entry is not None else None
        if flagged is None:
            continue
        flagged_any |= flagged
        by_column[name] = round(float(flagged.mean()), 4) if rows else 0.0
    return (round(float(flagged_any.mean()), 4) if rows else 0.0), by_column


def _unseen_category(entry: dict[str, Any], values: pd.Series) -> np.ndarray | None:
    return unseen_rows(entry, values) if "known" in entry else None


def _out_of_range_number(entry: dict[str, Any], values: pd.Series) -> np.ndarray | None:
    if not entry.get("range"):
        return None
    low, high = entry["range"]
    numbers = values.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.asarray((numbers < low) | (numbers > high))


def _part_score(name: str, value: float) -> float:
    return round(1.0 / (1.0 + max(value, 0.0) / SCALES[name]), 3)


def verdict_of(score: float) -> str:
    return "good" if score >= GOOD_AT else "weak" if score >= POOR_BELOW else "poor"


def check(base: dict[str, Any] | None, columns: FitColumns, cluster_ids: np.ndarray, confidence: np.ndarray,
          reassigned: np.ndarray, received: int, skipped: int, upload_id: str, version: str) -> dict[str, Any]:
    """The ``model_fit`` of one upload (logged with its parts, no customer data)."""
    placed = len(cluster_ids)
    mean_confidence = round(float(np.mean(confidence)), 4) if placed else 0.0
    reassigned_share = round(float(np.mean(reassigned)), 4) if placed else 0.0
    skipped_share = round(skipped / received, 4) if received else 0.0
    if base is None:
        body: dict[str, Any] = {
            "available": False, "score": None, "verdict": None,
            "reason": (f"Model {version} was trained before releases saved their training-base distributions, so "
                       f"this list cannot be compared with them. Retrain it (`{TRAIN_COMMAND}` with its training "
                       "file) to get a fit check on every upload."),
            "parts": {"skipped_rows": {"value": skipped_share},
                      "mean_confidence": {"list": mean_confidence, "training_base": None},
                      "reassigned_share": {"list": reassigned_share, "training_base": None}},
        }
        log.info("upload %s model fit: not available (release %s has no training-base distributions)",
                 upload_id, version)
        return body
    unseen, unseen_by = _flagged_share(columns, base, CATEGORY, _unseen_category)
    out_of_range, out_by = _flagged_share(columns, base, NUMBER, _out_of_range_number)
    base_confidence = base.get("mean_confidence") or 0.0
    confidence_drop = max(0.0, 1.0 - mean_confidence / base_confidence) if base_confidence else 0.0
    base_reassigned = base.get("reassigned_share") or 0.0
    distance = _distance(columns, cluster_ids, base) if placed >= MIN_ROWS_FOR_DISTANCE else None
    values = {"unseen_categories": unseen, "out_of_range": out_of_range, "skipped_rows": skipped_share,
              "mean_confidence": round(confidence_drop, 4),
              "reassigned_share": round(max(0.0, reassigned_share - base_reassigned), 4),
              "distribution_distance": distance["value"] if distance else 0.0}
    scores = {name: _part_score(name, value) for name, value in values.items()
              if name != "distribution_distance" or distance is not None}
    weakest = min(scores, key=lambda k: scores[k])
    score = scores[weakest]
    verdict = verdict_of(score)
    parts: dict[str, Any] = {
        "unseen_categories": {"value": unseen, "by_column": unseen_by},
        "out_of_range": {"value": out_of_range, "by_column": out_by},
        "skipped_rows": {"value": skipped_share},
        "mean_confidence": {"value": values["mean_confidence"], "list": mean_confidence,
                            "training_base": base_confidence, "measure": "relative drop from the training base"},
        "reassigned_share": {"value": values["reassigned_share"], "list": reassigned_share,
                             "training_base": base_reassigned, "measure": "excess over the training base"},
        "distribution_distance": distance if distance is not None else
        {"value": None, "reason": f"fewer than {MIN_ROWS_FOR_DISTANCE} placed rows: too few to compare"},
    }
    for name, part_score in scores.items():
        parts[name]["score"] = part_score
        parts[name]["scale"] = SCALES[name]
    body = {"available": True, "score": score, "verdict": verdict, "weakest": weakest, "parts": parts,
            "thresholds": {"good_at": GOOD_AT, "poor_below": POOR_BELOW}}
    if verdict != "good":
        body["action"] = _action(verdict, weakest, version, upload_id)
    log.info("upload %s model fit %s: score %.3f, weakest %s; unseen %.3f, out of range %.3f, skipped %.3f, "
             "confidence drop %.3f, reassigned excess %.3f, distance %s", upload_id, verdict, score, weakest,
             unseen, out_of_range, skipped_share, values["mean_confidence"], values["reassigned_share"],
             f"{distance['value']:.3f} ({distance['feature']})" if distance else "n/a")
    return body


def _action(verdict: str, weakest: str, version: str, upload_id: str) -> dict[str, Any]:
    """What to do when the list does not fit: train a model on it (CLI or admin call)."""
    strength = "does not fit" if verdict == "poor" else "fits only weakly"
    return {
        "message": (f"This list {strength} model {version} (mostly {_WHAT[weakest]}); its segments and personas "
                    "describe the training customers more than this list. To segment it by its own customers, "
                    f"train on it: `{TRAIN_COMMAND}` with this file, or POST /admin/train with upload_id "
                    f"{upload_id}. If the list is a deliberate selection of your own customers (one tier, one "
                    "area), the segments still apply: each segment's list_profile says how this list differs."),
        "command": TRAIN_COMMAND,
        "admin_call": {"method": "POST", "path": "/admin/train", "form": {"upload_id": upload_id}},
    }


def for_loyalty_upload(release: Any, customers: pd.DataFrame, placement: Any, received: int, skipped: int,
                       upload_id: str) -> dict[str, Any]:
    """``check`` for a list placed on the loyalty model (canonical customer rows)."""
    from portal.segmentation.base_distributions import loyalty_fit_columns
    from portal.segmentation.features import placement_keys

    columns = loyalty_fit_columns(placement_keys(customers), release.model.reference_month_)
    return check(release.base, columns, placement.cluster_id, placement.confidence, placement.reassigned,
                 received, skipped, upload_id, release.version)


def for_table_upload(release: Any, upload: Any, upload_id: str) -> dict[str, Any]:
    """``check`` for a list placed on a learned-schema model (its typed, placed customers)."""
    from portal.segmentation.base_distributions import table_fit_columns

    columns = table_fit_columns(upload.typed, release.model.schema)
    placement = upload.placement
    return check(release.base, columns, placement.cluster_id, placement.confidence, placement.reassigned,
                 upload.rows_received, upload.skipped_count, upload_id, release.version)


__all__ = ["GOOD_AT", "POOR_BELOW", "SCALES", "TRAIN_COMMAND", "check", "for_loyalty_upload", "for_table_upload",
           "verdict_of"]

"""Personas of a learned-schema model, in the file's own words: each segment's most distinctive columns with
their numbers ("Annual_Income(k$) median 86 vs 61 overall", "Genre Female 72% vs 56%"), a name from the top
two, a one-sentence summary, and a tone and content angles from generic signals (money, lifecycle, channel).

Aggregates only: medians and shares of segments, never a customer-level value; a category is named only
when at least ``MIN_CUSTOMERS`` customers of the segment (and of the whole table) hold it. The persona
dict has the shape the prompt builder whitelists, so prompts and the offline writer work unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portal.ingestion.roles import Role, TableSchema
from portal.segmentation.table_features import MISSING, NUMBER_ROLES, SchemaColumns
from schemas import header_key

MIN_CUSTOMERS = 10
TRAIT_LIMIT = 4
#: A trait is named when the segment differs from the whole table by at least this many standard deviations.
MIN_EFFECT = 0.25
_MONEY = re.compile(r"(income|salary|spend|spent|amount|sales|revenue|charge|mnt|value|cltv|price|total|"
                    r"monetary|paid|payment|balance|wealth)")
_TENURE = re.compile(r"(join|signup|since|registered|created|customer|member|first|tenure|enrol|opened)")
_RECENCY = re.compile(r"(recency|last|recent|latest)")
_CHANNEL = re.compile(r"(channel|source|platform|medium|via)")


@dataclass
class _Trait:
    column: str
    text: str
    share: float
    lift: float
    effect: float
    label: str
    value: str | None = None


def _number(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}" if magnitude >= 10 else f"{value:,.2f}"


def _numeric_trait(column: str, role: Role, seg: pd.Series, whole: pd.Series, order: list[str]) -> _Trait | None:
    seg, whole = seg.dropna(), whole.dropna()
    if len(seg) < MIN_CUSTOMERS or whole.std() == 0 or not len(whole):
        return None
    seg_median, whole_median = float(seg.median()), float(whole.median())
    effect = (float(seg.mean()) - float(whole.mean())) / float(whole.std())
    above = float((seg > whole_median).mean())
    lift = seg_median / whole_median if whole_median else 1.0 + effect
    if role == Role.DATE:
        text = f"{column} {_number(seg_median)} days ago (median) vs {_number(whole_median)}"
        label = f"Recent {column}" if effect < 0 else f"Early {column}"
    elif role == Role.ORDINAL:
        seg_level, whole_level = order[int(round(seg_median))], order[int(round(whole_median))]
        text = f"{column} mostly {seg_level} or {'above' if effect > 0 else 'below'} (median {seg_level} vs " \
               f"{whole_level})"
        label = f"{'Higher' if effect > 0 else 'Lower'} {column}"
    elif seg_median == whole_median:  # small counts (children, visits): the medians hide the difference
        text = f"{column} mean {_number(float(seg.mean()))} vs {_number(float(whole.mean()))} overall"
        label = f"{'High' if effect > 0 else 'Low'} {column}"
    else:
        text = f"{column} median {_number(seg_median)} vs {_number(whole_median)} overall"
        label = f"{'High' if effect > 0 else 'Low'} {column}"
    return _Trait(column, text, round(above if effect > 0 else 1 - above, 3), round(float(abs(lift)), 2),
                  abs(effect), label)


def _category_traits(column: str, seg: pd.Series, whole: pd.Series, boolean: bool) -> list[_Trait]:
    out = []
    seg_counts, whole_counts = seg.value_counts(), whole.value_counts()
    for value, count in seg_counts.items():
        if value == MISSING or count < MIN_CUSTOMERS or whole_counts.get(value, 0) < MIN_CUSTOMERS:
            continue
        share, base = count / len(seg), whole_counts[value] / len(whole)
        if share <= base:
            continue
        effect = (share - base) / np.sqrt(base * (1 - base)) if 0 < base < 1 else 0.0
        shown = ("yes" if float(value) == 1 else "no") if boolean else str(value)
        out.append(_Trait(column, f"{column} {shown} {share:.0%} vs {base:.0%}", round(float(share), 3),
                          round(float(share / base), 2), float(effect), f"{column} {shown}", shown))
    return out


def _signals(typed: pd.DataFrame, mask: np.ndarray, schema: TableSchema) -> dict[str, float]:
    """Mean standardised difference of the segment in money, tenure and recency columns (0 when absent)."""
    found: dict[str, list[float]] = {"money": [], "tenure": [], "recency": []}
    for column in schema.features:
        if column.role not in (Role.NUMERIC, Role.DATE):
            continue
        values = typed[column.name]
        std = float(values.std())
        if not std or not np.isfinite(std):
            continue
        effect = (float(values[mask].mean()) - float(values.mean())) / std
        key = header_key(column.name)
        if _RECENCY.search(key):
            found["recency"].append(effect)
        elif column.role == Role.DATE and _TENURE.search(key) or _TENURE.search(key) and "month" in key:
            found["tenure"].append(effect)
        elif column.role == Role.NUMERIC and _MONEY.search(key):
            found["money"].append(effect)
    return {k: float(np.mean(v)) if v else 0.0 for k, v in found.items()}


def _voice(signals: dict[str, float], channel: str | None) -> tuple[str, list[str], str, str]:
    """Tone, content angles, a value word and a lifecycle word from the generic signals."""
    if signals["money"] >= 0.3:
        value, tone, angles = "premium", "Professional", ["exclusive early access", "premium upgrades",
                                                          "personal service"]
    elif signals["money"] <= -0.3:
        value, tone, angles = "value-seeking", "Playful", ["limited-time deals", "bundles that save",
                                                           "first-purchase vouchers"]
    else:
        value, tone, angles = "mainstream", "Casual", ["everyday rewards", "useful product picks"]
    if signals["recency"] >= 0.4:
        life, tone = "lapsed", "Empathetic"
        angles.append("a win-back offer with a reason to return")
    elif signals["tenure"] >= 0.4:
        life = "loyal"
        angles.append("thank-you and anniversary rewards")
    elif signals["tenure"] <= -0.4:
        life = "new"
        tone = "Fun" if tone == "Playful" else tone
        angles.append("onboarding tips and a welcome offer")
    else:
        life = "regular"
        angles.append("habit-building weekly promotions")
    if channel:
        angles.append(f"reach them through {channel}")
    return tone, angles, value, life


def build_table_personas(frame: pd.DataFrame, schema: TableSchema, labels: np.ndarray,
                         columns: SchemaColumns) -> tuple[dict[int, dict], pd.DataFrame]:
    """Personas keyed by segment id and the profile table (one row per segment) for a learned schema."""
    typed = columns.transform(frame.reset_index(drop=True))
    total = len(typed)
    personas: dict[int, dict] = {}
    rows = []
    used: dict[str, int] = {}
    for cluster_id in sorted(set(np.asarray(labels).tolist()) - {-1}):
        mask = np.asarray(labels) == cluster_id
        size = int(mask.sum())
        traits: list[_Trait] = []
        channel = None
        for column in schema.features:
            seg, whole = typed.loc[mask, column.name], typed[column.name]
            if column.role in NUMBER_ROLES and column.role != Role.BOOLEAN:
                trait = _numeric_trait(column.name, column.role, seg, whole, column.values)
                found = [trait] if trait else []
            else:
                found = _category_traits(column.name, seg, whole, column.role == Role.BOOLEAN)
            best = max(found, key=lambda t: t.effect, default=None)
            if best is not None and best.effect >= MIN_EFFECT:
                traits.append(best)
                if column.role == Role.CATEGORICAL and _CHANNEL.search(header_key(column.name)) and channel is None:
                    channel = best.value
        traits.sort(key=lambda t: t.effect, reverse=True)
        traits = traits[:TRAIT_LIMIT] if size >= MIN_CUSTOMERS else []
        tone, angles, value, life = _voice(_signals(typed, mask, schema), channel)
        name = " · ".join(t.label for t in traits[:2]) or f"Segment {cluster_id}"
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name} ({used[name]})"
        described = "; ".join(t.text for t in traits[:2]) or "no column stands out from the whole table"
        summary = (f"{size:,} {life}, {value} customers ({size / total:.0%} of the base): {described}.")
        personas[int(cluster_id)] = {
            "cluster_id": int(cluster_id), "name": name, "summary": summary, "size": size,
            "share": round(size / total, 4), "traits": {},
            "distinguishing_traits": [{"trait": t.text, "share": t.share, "lift": t.lift, "key": t.label}
                                      for t in traits],
            "suggested_tone": tone, "content_angles": angles,
        }
        rows.append({"cluster_id": int(cluster_id), "name": name, "size": size, "share": round(size / total, 4),
                     **_profile_columns(typed.loc[mask], schema, size),
                     "distinguishing_traits": "; ".join(t.text for t in traits)})
    return personas, pd.DataFrame(rows)


def _profile_columns(seg: pd.DataFrame, schema: TableSchema, size: int) -> dict[str, Any]:
    """Median of every number column and the most common category of the others (hidden under 10 customers)."""
    out: dict[str, Any] = {}
    for column in schema.features:
        values = seg[column.name]
        if column.role in NUMBER_ROLES:
            median = values.median()
            out[f"{column.name} (median)"] = round(float(median), 3) if pd.notna(median) else None
        else:
            counts = values.value_counts()
            top = counts.index[0] if len(counts) and counts.iloc[0] >= MIN_CUSTOMERS else None
            out[f"{column.name} (most common)"] = top
            out[f"{column.name} (share)"] = round(float(counts.iloc[0]) / size, 3) if top is not None else None
    return out


__all__ = ["MIN_CUSTOMERS", "build_table_personas"]

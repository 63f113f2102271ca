"""Personas and profiles: aggregate portraits of each segment, derived from the training data.

A persona carries only aggregates (shares, medians, lifts) — never a customer-level value — so it
is safe to show, to log and to put into prompts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from portal.segmentation.geography import region_of
from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER, TIER_ORDER

TOP_N = 3
_QUARTERS = {1: "Q1", 2: "Q2", 3: "Q3", 4: "Q4"}


def _shares(series: pd.Series) -> pd.Series:
    return series.value_counts(normalize=True).sort_values(ascending=False)


def _rounded(shares: pd.Series, top: int | None = None) -> list[dict[str, Any]]:
    items = shares.head(top) if top else shares
    return [{"value": str(k), "share": round(float(v), 3)} for k, v in items.items()]


def _trait_table(frame: pd.DataFrame, reference: pd.Timestamp) -> pd.DataFrame:
    joined = pd.to_datetime(frame[DATE_JOINED])
    tenure_years = ((reference - joined).dt.days / 365.25).clip(lower=0)
    return pd.DataFrame({
        "Location": frame[LOCATION].astype(str),
        "Region": [region_of(x) for x in frame[LOCATION].astype(str)],
        "Gender": frame[GENDER].astype(str) if GENDER in frame else "Unknown",
        "Loyalty Tier": frame[LOYALTY_TIER].astype(str),
        "Join year": joined.dt.year.astype(str),
        "Join quarter": joined.dt.quarter.map(_QUARTERS),
        "Tenure": pd.cut(tenure_years, [-0.1, 1, 3, 6, 200],
                         labels=["under 1 year", "1–3 years", "3–6 years", "6+ years"]).astype(str),
    })


def _describe_trait(column: str, value: str) -> str:
    return {
        "Location": f"Lives in {value}",
        "Region": f"Based in the {value} region",
        "Gender": f"{value}",
        "Loyalty Tier": f"{value} tier member",
        "Join year": f"Joined in {value}",
        "Join quarter": f"Joined in {value}",
        "Tenure": f"Member for {value}",
    }[column]


def _distinguishing(cluster: pd.DataFrame, base: pd.DataFrame, limit: int = 4) -> list[dict[str, Any]]:
    """Traits over-represented in the segment: share in segment vs share in the whole base (lift)."""
    found = []
    for column in cluster.columns:
        if column == "Gender" and cluster[column].nunique() == base[column].nunique() == 1:
            continue
        seg, whole = _shares(cluster[column]), _shares(base[column])
        for value, share in seg.items():
            base_share = float(whole.get(value, 0.0))
            if share < 0.15 or base_share <= 0:
                continue
            found.append({"trait": _describe_trait(column, str(value)), "column": column, "value": str(value),
                          "share": round(float(share), 3), "base_share": round(base_share, 3),
                          "lift": round(float(share) / base_share, 2)})
    found.sort(key=lambda t: (t["lift"], t["share"]), reverse=True)
    picked, seen_columns = [], set()
    for trait in found:
        if trait["lift"] < 1.2 or trait["column"] in seen_columns:
            continue
        picked.append(trait)
        seen_columns.add(trait["column"])
        if len(picked) == limit:
            break
    return picked


def _join_period(years: pd.Series) -> str:
    lo, hi = int(years.quantile(0.1)), int(years.quantile(0.9))
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _name_and_voice(tier_mix: dict[str, float], tenure_months: float, region: str,
                    region_share: float) -> tuple[str, str, list[str]]:
    """A readable name, a suggested tone and content angles, from tier, tenure and place."""
    avg_tier = sum(TIER_ORDER[t] * s for t, s in tier_mix.items() if t in TIER_ORDER)
    if avg_tier >= 2.3:
        status, tone = "Premium", "Professional"
        angles = ["exclusive early access", "premium perks and upgrades", "personal service"]
    elif avg_tier >= 1.7:
        status, tone = "Established", "Casual"
        angles = ["member rewards and points multipliers", "family bundles", "tier upgrade nudges"]
    else:
        status, tone = "Value-seeking", "Playful"
        angles = ["welcome offers and first-purchase vouchers", "easy wins to reach Gold", "limited-time deals"]
    if tenure_months >= 72:
        life, tone_adj = "Loyal veterans", "Empathetic" if tone != "Professional" else tone
        angles.append("thank-you and anniversary rewards")
    elif tenure_months >= 30:
        life, tone_adj = "Regulars", tone
        angles.append("habit-building weekly promotions")
    else:
        life, tone_adj = "Newcomers", "Fun" if tone == "Playful" else tone
        angles.append("onboarding tips and app features")
    place = f"{region}" if region_share >= 0.5 and region != "Other" else "Island-wide"
    return f"{place} {status} {life}", tone_adj, angles


def build_personas(customers: pd.DataFrame, labels: np.ndarray) -> tuple[dict[int, dict], pd.DataFrame]:
    """Personas keyed by cluster id and the profile table (one row per segment)."""
    reference = pd.to_datetime(customers[DATE_JOINED]).max()
    traits = _trait_table(customers, reference)
    tenure_months = ((reference - pd.to_datetime(customers[DATE_JOINED])).dt.days / 30.44).to_numpy()
    total = len(customers)
    personas: dict[int, dict] = {}
    profile_rows = []
    used_names: dict[str, int] = {}
    for cluster_id in sorted(set(labels.tolist()) - {-1}):
        mask = labels == cluster_id
        seg = traits[mask]
        gender_mix = {k: round(float(v), 3) for k, v in _shares(seg["Gender"]).items()}
        tier_mix = {t: round(float((seg["Loyalty Tier"] == t).mean()), 3) for t in TIER_ORDER}
        regions = _shares(seg["Region"])
        median_tenure = float(np.median(tenure_months[mask]))
        name, tone, angles = _name_and_voice(tier_mix, median_tenure, str(regions.index[0]),
                                             float(regions.iloc[0]))
        used_names[name] = used_names.get(name, 0) + 1
        if used_names[name] > 1:
            name = f"{name} ({_rounded(_shares(seg['Location']), 1)[0]['value']})"
        distinguishing = _distinguishing(seg, traits)
        top_locations = _rounded(_shares(seg["Location"]), TOP_N)
        period = _join_period(pd.to_numeric(seg["Join year"]))
        top_tier = max(tier_mix, key=lambda tier: tier_mix[tier])
        summary = (f"{int(mask.sum()):,} customers ({mask.mean():.0%} of the base), mostly {top_tier} members "
                   f"from {', '.join(t['value'] for t in top_locations[:2])}, who joined around {period}"
                   f" (median tenure {median_tenure / 12:.1f} years).")
        personas[int(cluster_id)] = {
            "cluster_id": int(cluster_id),
            "name": name,
            "summary": summary,
            "size": int(mask.sum()),
            "share": round(float(mask.sum()) / total, 4),
            "traits": {
                "gender_mix": gender_mix,
                "top_locations": top_locations,
                "top_regions": _rounded(regions, TOP_N),
                "tier_mix": tier_mix,
                "join_years": {k: round(float(v), 3) for k, v in _shares(seg["Join year"]).head(5).items()},
                "join_quarters": {k: round(float(v), 3) for k, v in _shares(seg["Join quarter"]).items()},
                "typical_join_period": period,
                "median_tenure_months": int(round(median_tenure)),
            },
            "distinguishing_traits": [{**{k: v for k, v in t.items() if k not in ("column", "value")},
                                       "key": f"{t['column']}: {t['value']}"} for t in distinguishing],
            "suggested_tone": tone,
            "content_angles": angles,
        }
        profile_rows.append({
            "cluster_id": int(cluster_id), "name": name, "size": int(mask.sum()),
            "share": round(float(mask.mean()), 4),
            "female_share": gender_mix.get("Female", 0.0), "male_share": gender_mix.get("Male", 0.0),
            **{f"{t.lower()}_share": s for t, s in tier_mix.items()},
            "top_location": top_locations[0]["value"], "top_location_share": top_locations[0]["share"],
            "top_region": str(regions.index[0]), "top_region_share": round(float(regions.iloc[0]), 3),
            "typical_join_period": period, "median_tenure_months": int(round(median_tenure)),
            "distinguishing_traits": "; ".join(f"{t['trait']} (x{t['lift']})" for t in distinguishing),
        })
    return personas, pd.DataFrame(profile_rows)


GENERAL_AUDIENCE: dict[str, Any] = {
    "cluster_id": None,
    "name": "General audience",
    "summary": "All customers of the loyalty programme; no segment was selected.",
    "size": 0,
    "share": 1.0,
    "traits": {},
    "distinguishing_traits": [],
    "suggested_tone": "Professional",
    "content_angles": ["clear value proposition", "member rewards", "easy next step"],
}

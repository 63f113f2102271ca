"""What this list's members of each segment look like: the per-upload segment profile.

A persona describes a segment of the *training base*; a campaign list whose segment 2 is 70% Gold is not the
base where it was 30%. Each segment of an upload gets the profile of the list's own members, computed with
the personas' trait code (``personas.distinguishing`` for the loyalty schema, ``table_personas.column_traits``
for a learned one): its size, its top traits by lift against the whole list and against the training base
(saved in the release), with their numbers.

Aggregates only: shares, medians, lifts. No category is named for fewer than ``MIN_CUSTOMERS`` customers of
the segment, a segment smaller than that gets its size only, and no customer-level value appears.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from portal.ingestion.roles import TableSchema
from portal.segmentation.personas import distinguishing, trait_reference, trait_table
from portal.segmentation.table_personas import MIN_CUSTOMERS, TRAIT_LIMIT, Whole, column_traits, whole_of
from schemas import DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER, TIER_ORDER

TOP_N = 3
VS_LIST, VS_BASE = "in this list", "in the training base"
TOO_FEW = f"fewer than {MIN_CUSTOMERS} customers of this list: too few to describe"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _loyalty_trait(trait: dict[str, Any], against: str) -> dict[str, Any]:
    key = "list_share" if against == VS_LIST else "base_share"
    return {"trait": f"{trait['trait']}: {_pct(trait['share'])} vs {_pct(trait['base_share'])} {against}",
            "column": trait["column"], "value": trait["value"], "share": trait["share"], key: trait["base_share"],
            "lift": trait["lift"]}


def _summary(size: int, share: float, traits: list[dict[str, Any]]) -> str:
    described = "; ".join(t["trait"] for t in traits[:2]) or "no trait stands out"
    return f"{size:,} customers of this list ({share:.0%} of it): {described}."


def _frequent(shares: pd.Series, size: int, top: int | None = None) -> list[dict[str, Any]]:
    """Values held by at least MIN_CUSTOMERS members, most common first."""
    kept = [(str(k), float(v)) for k, v in shares.items() if round(v * size) >= MIN_CUSTOMERS]
    return [{"value": k, "share": round(v, 3)} for k, v in kept[:top]]


#: Each input column of the trait table and the trait columns derived from it alone.
_DERIVED = ((LOCATION, ("Location", "Region")), (GENDER, ("Gender",)), (LOYALTY_TIER, ("Loyalty Tier",)),
            (DATE_JOINED, ("Join year", "Join quarter", "Tenure")))


def trait_categories(customers: pd.DataFrame, reference: pd.Timestamp) -> pd.DataFrame:
    """The personas' ``trait_table`` of a list, as categoricals: each trait column derived by ``trait_table`` once
    per distinct value of its input column (a 100k-row list holds a few dozen places and a few thousand dates)
    and spread back, so segments are counted by category code."""
    out: dict[str, pd.Categorical] = {}
    for source, names in _DERIVED:
        if source not in customers:
            out.update(trait_table(customers.iloc[:1], reference)[list(names)].iloc[np.zeros(len(customers), int)]
                       .reset_index(drop=True).astype("category").to_dict("series"))
            continue
        codes, uniques = pd.factorize(customers[source], use_na_sentinel=False)
        small = customers.iloc[np.zeros(len(uniques), dtype=int)].reset_index(drop=True)
        small[source] = uniques
        derived = trait_table(small, reference)
        for name in names:
            value_codes, categories = pd.factorize(derived[name], use_na_sentinel=False)
            out[name] = pd.Categorical.from_codes(value_codes[codes], categories=categories)
    return pd.DataFrame(out)[list(trait_table(customers.iloc[:1], reference).columns)]


def loyalty_profiles(customers: pd.DataFrame, cluster_ids: np.ndarray,
                     base: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """The profile of every segment of a loyalty-schema list (canonical customer rows, in placement order)."""
    reference = pd.Timestamp(base["trait_reference"]) if base and base.get("trait_reference") else \
        trait_reference(customers)
    traits = trait_categories(customers.reset_index(drop=True), reference)
    list_shares = {c: traits[c].value_counts(normalize=True) for c in traits.columns}
    base_shares = {c: pd.Series(v, dtype=float) for c, v in (base or {}).get("traits", {}).items()}
    tenure = ((reference - pd.to_datetime(customers[DATE_JOINED])).dt.days / 30.44).to_numpy()

    def describe(mask: np.ndarray, size: int) -> dict[str, Any]:
        seg = traits[mask]
        vs_list = [_loyalty_trait(t, VS_LIST) for t in distinguishing(seg, list_shares, min_count=MIN_CUSTOMERS)]
        vs_base = [_loyalty_trait(t, VS_BASE) for t in distinguishing(seg, base_shares, min_count=MIN_CUSTOMERS)] \
            if base_shares else []
        tiers = seg["Loyalty Tier"].value_counts(normalize=True)
        return {
            "summary": _summary(size, size / len(cluster_ids), vs_base or vs_list),
            "traits_vs_list": vs_list,
            "traits_vs_base": vs_base,
            "tier_mix": {t["value"]: t["share"] for t in _frequent(tiers, size) if t["value"] in TIER_ORDER},
            "top_locations": _frequent(seg["Location"].value_counts(normalize=True), size, TOP_N),
            "median_tenure_months": int(round(float(np.median(tenure[mask])))),
        }

    return _profiles(cluster_ids, describe)


def _profiles(cluster_ids: np.ndarray,
              describe: Callable[[np.ndarray, int], dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Every segment of a placed list by id: its size and share, and ``describe(rows in it, size)`` when it holds at
    least MIN_CUSTOMERS of the list's customers (else its size alone, no trait)."""
    ids = np.asarray(cluster_ids)
    out: dict[int, dict[str, Any]] = {}
    for cluster_id in sorted(set(ids.tolist())):
        mask = ids == cluster_id
        size = int(mask.sum())
        profile = {"size": size, "share": round(size / len(ids), 4)}
        described = describe(mask, size) if size >= MIN_CUSTOMERS else \
            {"summary": f"{size} customers: {TOO_FEW}.", "traits_vs_list": [], "traits_vs_base": []}
        out[int(cluster_id)] = {**profile, **described}
    return out


def _table_trait(trait: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {"trait": trait.text, "column": trait.column, "share": trait.share, "lift": trait.lift}
    if trait.base_share is not None:
        shown.update(value=trait.value, compared_share=trait.base_share)
    return shown


def table_profiles(typed: pd.DataFrame, schema: TableSchema, cluster_ids: np.ndarray,
                   base: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """The profile of every segment of a list placed on a learned-schema model (typed feature columns of the
    placed customers, in placement order)."""
    typed = typed.reset_index(drop=True)
    features = (base or {}).get("features", {})
    list_wholes = {c.name: whole_of(c, typed[c.name]) for c in schema.features}
    base_wholes = {c.name: Whole.from_summary(features[c.name]["summary"]) for c in schema.features
                   if c.name in features and "summary" in features[c.name]}

    def describe(mask: np.ndarray, size: int) -> dict[str, Any]:
        seg = typed.loc[mask]
        found: dict[str, list[Any]] = {VS_LIST: [], VS_BASE: []}
        for column in schema.features:
            for against, wholes in ((VS_LIST, list_wholes), (VS_BASE, base_wholes)):
                if column.name in wholes:
                    trait = column_traits(column, seg[column.name], wholes[column.name], against)
                    if trait is not None:
                        found[against].append(trait)
        ranked = {k: [_table_trait(t) for t in sorted(v, key=lambda t: t.effect, reverse=True)[:TRAIT_LIMIT]]
                  for k, v in found.items()}
        return {"summary": _summary(size, size / len(cluster_ids), ranked[VS_BASE] or ranked[VS_LIST]),
                "traits_vs_list": ranked[VS_LIST], "traits_vs_base": ranked[VS_BASE]}

    return _profiles(cluster_ids, describe)


def with_list_profile(persona: dict[str, Any], profile: dict[str, Any] | None) -> dict[str, Any]:
    """The persona as the content job sees it: the archetype plus this list's profile of the segment (the
    prompt builder whitelists both and tells the writer which is which)."""
    return {**persona, "list_profile": profile} if profile else persona


__all__ = ["loyalty_profiles", "table_profiles", "with_list_profile"]

"""Stable segment ids across releases: a new release's clusters take the ids of the live release's segments
they continue, so saved campaigns, dashboards and cached choices keep pointing at the same audience.

HDBSCAN numbers its clusters afresh at every fit. Before a new release's personas and manifest are
written, its clusters are matched to the live release's segments and the fitted model is relabelled
(``relabel``), so every placement, persona, profile, export and table of the release answers stable ids.

Matching places the new release's training rows with the live model (when it reads the same schema) and
cross-tabulates those ids with the new model's labels. That covers shared and new customers alike, keeps
no customer id (hashed or not) with a release, works for train jobs on raw files as for retrains on
snapshots, and measures what a user sees: the id a customer gets from the live model against the one it
gets from the new. Centroid distances were not used: they compare segment centres rather than audiences,
and a live model of another schema has no comparable feature space anyway (its segments then all vanish
and every cluster gets a new id).

A cluster keeps a live id when the two hold a mutual majority of each other: more than ``MATCH_SHARE`` of
the cluster's rows were in that segment, and more than ``MATCH_SHARE`` of the segment's rows (among the
new training rows) are in the cluster; at most one pair per cluster can pass, so no assignment solver is
needed. A split keeps the id on the part that still holds most of the segment, a merge the id of the
segment that makes up most of it; every other cluster gets a new id above every id any kept release has
used (each manifest carries the high-water mark as ``next_id``), and live segments left without a cluster
are reported as vanished with where their customers went.

A kept segment's persona is recomputed, and it keeps its name unless its traits changed beyond
``TRAIT_OVERLAP``: the name is kept while at least half of the live persona's distinguishing traits (a
column with its value or direction) are still among the new persona's, and none of them now points the other
way ("High Spend" then, "Low Spend" now).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from portal.errors import ReleaseError
from portal.segmentation import releases
from portal.segmentation.model import SegmentationModel
from portal.segmentation.table_model import TableSegmentationModel
from portal.segmentation.table_personas import readable

log = logging.getLogger(__name__)

#: A cluster and a live segment match when each holds more than this share of the other's rows.
MATCH_SHARE = 0.5
#: A kept segment keeps its name while at least this share of its live persona's traits remain.
TRAIT_OVERLAP = 0.5
#: Sources and destinations below this share of a segment are not listed in the report.
LISTED_SHARE = 0.05
#: A merge or split is named when a second part holds at least this share.
NOTABLE_SHARE = 0.2
PLACED, NONE = "placement", "none"

AnyModel = SegmentationModel | TableSegmentationModel
Progress = Callable[[str], None]


@dataclass
class SegmentIds:
    """How a new release's clusters map to stable ids, and what changed against the live release."""

    #: the fitted model's own label → stable id
    mapping: dict[int, int]
    #: one entry per segment of the new release (id, kept or new, overlap shares, note)
    segments: list[dict[str, Any]]
    #: live segments no cluster continues, with where their customers went
    vanished: list[dict[str, Any]]
    #: the first id no release has used yet, after this one
    next_id: int
    method: str = PLACED
    reason: str = ""
    compared_with: str | None = None
    rows_compared: int = 0
    #: share of compared customers whose id is the same under the live and the new release
    customers_kept_share: float | None = None
    previous_personas: dict[int, dict[str, Any]] = field(default_factory=dict)

    def name(self, personas: dict[int, dict[str, Any]],
             profiles: pd.DataFrame) -> tuple[dict[int, dict[str, Any]], pd.DataFrame]:
        """Carry the live names over to kept segments whose traits held (``TRAIT_OVERLAP``); a new segment
        whose fresh name is already taken gets its id added."""
        named = dict(personas)
        for segment in self.segments:
            persona = named.get(segment["id"])
            previous = self.previous_personas.get(segment["previous_id"]) if segment["status"] == "kept" else None
            if persona is None or previous is None:
                continue
            segment["name_kept"] = keeps_name(previous, persona)
            if segment["name_kept"]:
                named[segment["id"]] = {**persona, "name": previous["name"]}
            else:
                segment["previous_name"] = previous["name"]
        kept_names = {named[s["id"]]["name"] for s in self.segments if s.get("name_kept") and s["id"] in named}
        for segment in self.segments:
            persona = named.get(segment["id"])
            if persona is None:
                continue
            if not segment.get("name_kept") and persona["name"] in kept_names:
                named[segment["id"]] = {**persona, "name": f"{persona['name']} (segment {segment['id']})"}
            segment["name"] = named[segment["id"]]["name"]
        if len(profiles) and "name" in profiles:
            profiles = profiles.assign(name=[named.get(int(c), {}).get("name", n)
                                             for c, n in zip(profiles["cluster_id"], profiles["name"])])
        return named, profiles

    def counts(self) -> dict[str, int]:
        kept = sum(1 for s in self.segments if s["status"] == "kept")
        return {"kept": kept, "new": len(self.segments) - kept, "vanished": len(self.vanished)}

    def manifest(self) -> dict[str, Any]:
        """The ``segment_ids`` section of the manifest (and of the retrain report)."""
        return {"method": self.method, "reason": self.reason, "compared_with": self.compared_with,
                "rows_compared": self.rows_compared, "customers_kept_share": self.customers_kept_share,
                "match_share": MATCH_SHARE, "trait_overlap": TRAIT_OVERLAP, "next_id": self.next_id,
                "counts": self.counts(), "segments": self.segments, "vanished": self.vanished}

    def summary(self) -> str:
        c = self.counts()
        against = f"against {self.compared_with}" if self.compared_with else f"no comparison ({self.reason})"
        kept = f", {self.customers_kept_share:.1%} of customers keep their id" \
            if self.customers_kept_share is not None else ""
        return f"segment ids {against}: {c['kept']} kept, {c['new']} new, {c['vanished']} vanished{kept}"


def _listed(shares: pd.Series) -> list[dict[str, Any]]:
    return [{"id": int(k), "share": round(float(v), 4)}
            for k, v in shares.sort_values(ascending=False).items() if v >= LISTED_SHARE]


def match_segments(new_labels: np.ndarray, previous_labels: np.ndarray, previous_ids: list[int],
                   next_id: int) -> SegmentIds:
    """Match a new fit's labels (-1 noise) to the live ids of the same rows (mutual majority, see the module)
    and give every other cluster an id from ``next_id`` on, in the order of the fit's own labels."""
    new_labels, previous_labels = np.asarray(new_labels), np.asarray(previous_labels)
    if len(new_labels) != len(previous_labels):
        raise ValueError("new and previous labels must be of the same rows")
    clustered = new_labels >= 0
    new, old = new_labels[clustered], previous_labels[clustered]
    counts = pd.crosstab(pd.Series(new, name="new"), pd.Series(old, name="old"))
    new_size, old_size = counts.sum(axis=1), counts.sum(axis=0)
    mapping: dict[int, int] = {}
    for label in counts.index:
        best = counts.loc[label].idxmax()
        overlap = counts.at[label, best]
        if best in previous_ids and overlap > MATCH_SHARE * new_size[label] and overlap > MATCH_SHARE * old_size[best]:
            mapping[int(label)] = int(best)
    next_id = max([next_id, *[i + 1 for i in previous_ids]])
    for label in counts.index:
        if int(label) not in mapping:
            mapping[int(label)] = next_id
            next_id += 1
    stable = pd.Series(new).map(mapping).to_numpy()
    by_stable = pd.crosstab(pd.Series(stable, name="new"), pd.Series(old, name="old"))
    from_share = by_stable.div(by_stable.sum(axis=1), axis=0)
    to_share = by_stable.div(by_stable.sum(axis=0), axis=1)
    kept = {i for i in mapping.values() if i in previous_ids}
    segments = [_segment_entry(int(s), from_share.loc[s], to_share, kept) for s in sorted(by_stable.index)]
    vanished = [_vanished_entry(o, to_share) for o in sorted(previous_ids) if o not in kept]
    return SegmentIds(mapping, segments, vanished, next_id, rows_compared=int(clustered.sum()),
                      customers_kept_share=round(float(np.mean(stable == old)), 4) if len(old) else None)


def _segment_entry(stable: int, sources: pd.Series, to_share: pd.DataFrame, kept: set[int]) -> dict[str, Any]:
    """One new-release segment: kept (its live id) or new, and where its customers came from."""
    is_kept = stable in kept
    listed = _listed(sources)
    notable = [s["id"] for s in listed if s["share"] >= NOTABLE_SHARE]
    entry: dict[str, Any] = {"id": stable, "status": "kept" if is_kept else "new",
                             "previous_id": stable if is_kept else None, "from": listed}
    if is_kept:
        entry["share_of_segment"] = round(float(sources.get(stable, 0.0)), 4)
        entry["share_of_previous"] = round(float(to_share.at[stable, stable]), 4)
        merged = [i for i in notable if i not in kept]
        entry["note"] = f"kept; merged with segment {', '.join(map(str, merged))}" if merged else "kept"
    elif len(notable) >= 2:
        entry["note"] = "merge of segments " + ", ".join(map(str, notable))
    elif listed and listed[0]["share"] > MATCH_SHARE:
        entry["note"] = f"split from segment {listed[0]['id']}"
    else:
        entry["note"] = "new"
    return entry


def _vanished_entry(previous_id: int, to_share: pd.DataFrame) -> dict[str, Any]:
    """A live segment no cluster continues: where its customers went in the new release."""
    if previous_id not in to_share.columns:
        return {"id": previous_id, "went_to": [], "note": "none of the new training customers is in it"}
    went = _listed(to_share[previous_id])
    notable = [w["id"] for w in went if w["share"] >= NOTABLE_SHARE]
    note = (f"merged into segment {went[0]['id']}" if went and went[0]["share"] > MATCH_SHARE
            else "split into segments " + ", ".join(map(str, notable)) if len(notable) >= 2 else "dissolved")
    return {"id": previous_id, "went_to": went, "note": note}


def fresh_ids(new_labels: np.ndarray, next_id: int, reason: str) -> SegmentIds:
    """Every cluster a new id from ``next_id`` on, when there is no live release to compare with."""
    labels = sorted(set(np.asarray(new_labels).tolist()) - {-1})
    mapping = {int(label): next_id + i for i, label in enumerate(labels)}
    segments: list[dict[str, Any]] = [{"id": s, "status": "new", "previous_id": None, "from": [], "note": "new"}
                for s in sorted(mapping.values())]
    return SegmentIds(mapping, segments, [], next_id + len(labels), method=NONE, reason=reason)


def _trait_keys(persona: dict[str, Any]) -> set[str]:
    return {str(t.get("key") or t.get("trait")) for t in persona.get("distinguishing_traits", [])}


#: Direction words of number, date and level traits ("High Annual Income", "Recent Last Purchase").
_OPPOSITE = {"High": "Low", "Low": "High", "Higher": "Lower", "Lower": "Higher", "Recent": "Early", "Early": "Recent"}


def _flipped(key: str) -> tuple[str, str] | None:
    """A direction trait's opposite word and its column ("High Spend" -> ("Low", "Spend")); None for others."""
    word, _, column = key.partition(" ")
    return (_OPPOSITE[word], column) if word in _OPPOSITE else None


def _reversed(before: set[str], after: set[str]) -> bool:
    """Whether a live trait now points the other way ("High Spend" was, "Low Spend" is)."""
    return any(f"{f[0]} {f[1]}" in after for key in before - after if (f := _flipped(key)))


def _contradicts(name: str, after: set[str]) -> bool:
    """Whether a part of ``name`` says the opposite of a new trait ("High Spend" named, "Low Spend" found)."""
    parts = {part.strip() for part in name.split("·")}
    return any(f"{f[0]} {readable(f[1])}" in parts for key in after if (f := _flipped(key)))


def keeps_name(previous: dict[str, Any], persona: dict[str, Any]) -> bool:
    """Whether a kept segment keeps its live name: its recomputed name is the same, or at least
    ``TRAIT_OVERLAP`` of the live persona's distinguishing traits are still among the new ones, none of them
    now points the other way and the name does not say the opposite of a new trait (a "High Spend" name on a
    segment that now spends less than the rest)."""
    if previous.get("name") == persona.get("name"):
        return True
    before, after = _trait_keys(previous), _trait_keys(persona)
    if _contradicts(str(previous.get("name", "")), after):
        return False
    if not before:
        return True
    return len(before & after) >= TRAIT_OVERLAP * len(before) and not _reversed(before, after)


def used_ids(release_dir: Path) -> int:
    """The first id a release leaves free: its recorded high-water mark, else above its personas' ids."""
    top = -1
    try:
        manifest = releases.read_manifest(release_dir)
        top = int((manifest.get("segment_ids") or {}).get("next_id", 0)) - 1
        personas = json.loads((release_dir / "cluster_personas.json").read_text())
        top = max([top, *(int(k) for k in personas)])
    except (ReleaseError, OSError, ValueError, TypeError):
        pass
    return top + 1


def next_free_id(production_dir: Path, live_dir: Path | None) -> int:
    """The first id that no kept release (nor the live one) has used."""
    folders = [info.path for info in releases.list_releases(production_dir, production_dir)]
    return max([0, *(used_ids(f) for f in [*folders, *([live_dir] if live_dir else [])])])


def _reads_same_schema(previous: AnyModel, model: AnyModel) -> bool:
    if type(previous) is not type(model):
        return False
    if isinstance(previous, TableSegmentationModel) and isinstance(model, TableSegmentationModel):
        return ([(c.name, c.role) for c in previous.schema.features]
                == [(c.name, c.role) for c in model.schema.features])
    return True


def assign_stable_ids(model: AnyModel, rows: pd.DataFrame, production_dir: Path, live_dir: Path | None,
                      progress: Progress | None = None) -> SegmentIds:
    """Match a freshly fitted model's clusters to the live release's segments and relabel the model with
    the stable ids; ``rows`` are its training rows (in ``labels_`` order), as the live model reads them."""
    from portal.serving.live_model import load_release

    say = progress or (lambda m: log.info("%s", m))
    started = time.perf_counter()
    next_id = next_free_id(production_dir, live_dir)
    ids = None
    if live_dir is None:
        ids = fresh_ids(model.labels_, next_id, "no live release")
    else:
        try:
            live = load_release(live_dir, warm_up=False)
        except ReleaseError as exc:
            ids = fresh_ids(model.labels_, next_id, f"the live release cannot be loaded here: {exc}")
        else:
            if not _reads_same_schema(live.model, model):
                ids = fresh_ids(model.labels_, next_id, f"the live release {live.version} reads another schema")
            else:
                say(f"matching segments to the live release {live.version}")
                try:
                    previous = live.model.place(rows).cluster_id
                except Exception as exc:  # noqa: BLE001 - a comparison that fails must not cost the new release
                    # the type only: a message could quote a customer's cell
                    log.warning("the live release %s could not place the training rows (%s); segments get new ids",
                                live.version, type(exc).__name__)
                    ids = fresh_ids(model.labels_, next_id, f"the live release {live.version} could not place the "
                                    f"training rows ({type(exc).__name__})")
                else:
                    ids = match_segments(model.labels_, previous, sorted(live.personas), next_id)
                    ids.compared_with, ids.previous_personas = live.version, live.personas
    model.relabel(ids.mapping)
    if isinstance(getattr(model, "timings_", None), dict):
        model.timings_["segment_ids_s"] = round(time.perf_counter() - started, 2)
    say(ids.summary())
    return ids


def segment_history(production_dir: Path, model_dir: Path, cluster_id: int, top: int = 3) -> list[dict[str, Any]]:
    """The segment's name, size, share and top traits in each kept release that has it, oldest first. Releases
    from before stable ids (no ``segment_ids`` in the manifest) numbered their segments afresh and are left out."""
    found = []
    for info in reversed(releases.list_releases(production_dir, model_dir)):
        try:
            manifest = releases.read_manifest(info.path)
            personas = json.loads((info.path / "cluster_personas.json").read_text())
        except (ReleaseError, OSError, ValueError):
            continue
        lineage = manifest.get("segment_ids")
        persona = personas.get(str(cluster_id))
        if not lineage or persona is None:
            continue
        entry: dict[str, Any] = next((s for s in lineage.get("segments", []) if s.get("id") == cluster_id), {})
        found.append({"version": info.version, "created_at": info.created_at, "live": info.live,
                      "kind": releases.kind_of(manifest), "name": persona.get("name"), "size": persona.get("size"),
                      "share": persona.get("share"), "status": entry.get("status"), "note": entry.get("note"),
                      "top_traits": [t.get("trait") for t in persona.get("distinguishing_traits", [])[:top]]})
    return found


__all__ = ["MATCH_SHARE", "TRAIT_OVERLAP", "SegmentIds", "assign_stable_ids", "fresh_ids", "keeps_name",
           "match_segments", "next_free_id", "segment_history"]

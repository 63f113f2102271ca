"""The façade the routes call: one function per API operation, each reading top-down as
request → validation → ingestion → placement → persona → content → response body.

It holds ``Services`` (what a process shares between requests), the smart form (``generate_promo``,
``generate_post``), the dataset upload (``process_upload``, ``segments_export``) and the read-only
answers (``list_personas``, ``get_persona``, ``persona_history``, ``options``, ``model_changes``,
``health``). Each takes validated input and returns the JSON body, so routes stay a few lines and the
same flows are usable from the CLI.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from portal.content.service import ContentService
from portal.coordination.redis_link import redis_health
from portal.errors import MissingColumns, NotFound, ValidationFailed
from portal.ingestion.reader import read_customer_file
from portal.segmentation import releases
from portal.segmentation.model import SegmentationModel
from portal.segmentation.personas import GENERAL_AUDIENCE
from portal.segmentation.segment_ids import segment_history
from portal.segmentation.table_model import TableSegmentationModel
from portal.serving import model_fit
from portal.serving.export import segments_workbook
from portal.serving.live_model import LiveRelease, ModelHolder
from portal.serving.table_upload import read_upload
from portal.serving.upload_profile import loyalty_profiles, table_profiles, with_list_profile
from portal.serving.upload_store import UploadStore, new_upload_id
from portal.settings import Settings
from schemas import (
    DATE_JOINED,
    ENGAGEMENT_LEVELS,
    FUNNEL_STAGES,
    GENDER,
    GENDERS,
    INDUSTRY_SUGGESTIONS,
    LOCATION,
    LOYALTY_TIER,
    OBJECTIVE_SUGGESTIONS,
    OUTPUTS,
    PLATFORMS,
    TIER_ORDER,
    TONES,
    Audience,
    CampaignInputs,
    ContentPreferences,
    GeneratePostRequest,
    GeneratePromoRequest,
    canonical_column,
    header_key,
)

log = logging.getLogger(__name__)
SERVICE_VERSION = "1.0.0"


@dataclass
class Services:
    """Everything a request needs, created once per process by the app factory."""

    settings: Settings
    models: ModelHolder
    content: ContentService
    uploads: UploadStore
    scheduler: Any = None

    def model_version(self) -> str | None:
        release = self.models.release
        return release.version if release else None


# ---------------------------------------------------------------------------------------------
# Smart form
# ---------------------------------------------------------------------------------------------

def _audience_row(request: GeneratePromoRequest, release: LiveRelease) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One canonical customer row from the form's (already normalised) audience fields; gaps filled with
    the training base's most common value and reported as assumed."""
    assert isinstance(release.model, SegmentationModel)
    defaults = release.model.defaults_
    assumed: dict[str, Any] = {}
    location, gender, tier = request.location, request.gender, request.loyalty_tier
    if location is None:
        location = assumed["location"] = defaults["location"]
    if gender is None:
        gender = assumed["gender"] = defaults["gender"]
    if tier is None:
        tier = assumed["loyalty_tier"] = defaults["tier"]
    if request.date_joined is not None:
        joined = pd.Timestamp(request.date_joined)
    else:
        joined = pd.Timestamp(year=defaults["join_year"], month=defaults["join_month"], day=1)
        assumed["date_joined"] = joined.date().isoformat()
    row = pd.DataFrame({LOCATION: [location], GENDER: [gender], LOYALTY_TIER: [tier], DATE_JOINED: [joined]})
    return row, assumed


_LOYALTY_FIELDS = {LOCATION: "location", GENDER: "gender", LOYALTY_TIER: "loyalty_tier", DATE_JOINED: "date_joined"}


def _with_loyalty_audience(request: GeneratePromoRequest) -> GeneratePromoRequest:
    """``audience: {column: value}`` on the loyalty model: the columns by any upload spelling, validated as the
    named fields are."""
    if not request.audience:
        return request
    named: dict[str, Any] = {}
    unknown = []
    for key, value in request.audience.items():
        column = canonical_column(key)
        if column in _LOYALTY_FIELDS:
            named[_LOYALTY_FIELDS[column]] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValidationFailed(f"audience: {', '.join(repr(k[:40]) for k in unknown[:5])} is not a column of the live "
                               f"model; use {', '.join(_LOYALTY_FIELDS)} (GET /options lists them).",
                               details={"unknown": unknown[:20], "allowed": list(_LOYALTY_FIELDS)})
    try:
        fields = Audience.model_validate({**request.model_dump(include=set(Audience.model_fields) - {"audience"},
                                                                exclude_none=True), **named})
    except PydanticValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ValidationFailed(f"audience: {problems}.") from None
    return request.model_copy(update=fields.model_dump(exclude={"audience"}))


def _table_audience_row(request: GeneratePromoRequest, release: LiveRelease) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row of the learned schema's feature columns from ``audience``; columns left out are blank, which
    the fitted imputers read as the training base's typical value (and are reported as assumed)."""
    schema = cast(TableSegmentationModel, release.model).schema
    features = {header_key(c.name): c.name for c in schema.features}
    seed_columns = {canonical: c.name for c in schema.features if (canonical := canonical_column(c.name))}
    given = {column: getattr(request, field) for column, field in _LOYALTY_FIELDS.items()
             if getattr(request, field) is not None}
    named = [_LOYALTY_FIELDS[column] for column in given if column not in seed_columns]
    if named:
        raise ValidationFailed(f"The live model {release.version} was trained on a table without "
                               f"{', '.join(named)}. Send audience: {{column: value}} with the columns GET /options "
                               "lists, or choose a segment with cluster_id.",
                               details={"allowed": list(features.values())})
    row: dict[str, Any] = {c.name: None for c in schema.features}
    for seed_column, value in given.items():  # the seed's form fields, where the table has those columns
        row[seed_columns[seed_column]] = value.isoformat() if hasattr(value, "isoformat") else value
    unknown: list[str] = []
    for key, value in (request.audience or {}).items():
        target = features.get(header_key(key)) or seed_columns.get(canonical_column(key) or "")
        if target is None:
            unknown.append(key)
        else:
            row[target] = value
    if unknown:
        raise ValidationFailed(f"audience: {', '.join(repr(k[:40]) for k in unknown[:5])} is not a column the live "
                               f"model reads; use {', '.join(list(features.values())[:30])} (GET /options).",
                               details={"unknown": unknown[:20], "allowed": list(features.values())})
    frame = pd.DataFrame([row], dtype=object)
    _, unreadable = cast(TableSegmentationModel, release.model).encode(frame)
    bad = [name for name in unreadable.columns if bool(unreadable[name].iloc[0])]
    if bad:
        raise ValidationFailed(f"audience: the value of {', '.join(repr(b) for b in bad[:5])} cannot be read as the "
                               "model reads that column (a number, a date, yes/no or one of its levels).",
                               details={"unreadable": bad})
    assumed = {name: "typical value" for name, value in row.items() if value is None}
    return frame, assumed


def generate_promo(request: GeneratePromoRequest, services: Services) -> dict[str, Any]:
    """Content for a campaign, aligned with the persona of the audience described (or chosen)."""
    campaign, prefs = request.campaign_and_preferences()
    extra: dict[str, Any] = {}
    release = None
    if request.given():
        release = services.models.current()
        if release.kind != releases.LOYALTY:
            row, assumed = _table_audience_row(request, release)
        else:
            row, assumed = _audience_row(_with_loyalty_audience(request), release)
        placement = release.model.place(row)
        cluster_id = int(placement.cluster_id[0])
        persona, source = release.persona(cluster_id), "audience"
        extra = {"confidence": float(placement.confidence[0]), "audience_assumed": assumed}
    elif request.cluster_id is not None:
        release = services.models.current()
        cluster_id, persona, source = request.cluster_id, release.persona(request.cluster_id), "cluster_id"
    else:
        release = services.models.release
        cluster_id, persona, source = None, GENERAL_AUDIENCE, "general"
    content = services.content.generate(persona, campaign, prefs)
    return {"status": "ok", "model_version": release.version if release else None, "cluster_id": cluster_id,
            "persona": persona, "persona_source": source, **extra, "content": content}


def generate_post(request: GeneratePostRequest, services: Services) -> dict[str, Any]:
    """Regenerate content for one segment of an earlier upload, or for one persona, with new preferences."""
    overrides = request.campaign_overrides()
    if request.upload_id:
        record = services.uploads.record(request.upload_id)
        segment = next((s for s in record["segments"] if s["cluster_id"] == request.cluster_id), None)
        if segment is None:
            raise NotFound(f"Upload {request.upload_id} has no segment {request.cluster_id}; its segments are "
                           f"{[s['cluster_id'] for s in record['segments']]}.")
        persona, model_version, source = segment["persona"], record["model_version"], "upload"
        campaign = CampaignInputs.model_validate({**record["campaign"], **overrides})
        written_for = with_list_profile(persona, segment.get("list_profile"))
    else:
        release = services.models.current()
        persona, model_version, source = release.persona(request.cluster_id), release.version, "cluster_id"
        missing = request.missing_campaign_fields()
        if missing:
            raise ValidationFailed(f"Without upload_id, give the campaign fields: {', '.join(missing)}.",
                                   details={"missing": missing})
        campaign = CampaignInputs.model_validate(overrides)
        written_for = persona
    content = services.content.generate(written_for, campaign, request.preferences())
    return {"status": "ok", "model_version": model_version, "upload_id": request.upload_id,
            "cluster_id": request.cluster_id, "persona": persona, "persona_source": source, "content": content}


# ---------------------------------------------------------------------------------------------
# Dataset upload
# ---------------------------------------------------------------------------------------------

def process_upload(data: bytes, filename: str | None, campaign: CampaignInputs, prefs: ContentPreferences,
                   services: Services) -> dict[str, Any]:
    """Validate a customer file, place every row, and return one persona and content per segment."""
    started = time.perf_counter()
    settings = services.settings
    loaded = services.models.release
    if loaded is not None and loaded.kind == releases.TABLE:
        return _process_table_upload(data, campaign, prefs, services, loaded, started)
    try:
        table = read_customer_file(data, filename=filename, max_rows=settings.max_upload_rows)
    except MissingColumns as exc:  # a table of other columns: say how to segment it by its own
        raise MissingColumns(f"{exc.message} Or segment this file by its own columns: train on it with "
                             f"`{model_fit.TRAIN_COMMAND}` or POST /admin/train with the file.",
                             {**(exc.details or {}), "train_command": model_fit.TRAIN_COMMAND}) from None
    # the release this request started with, even if a swap lands while the file is read
    release = loaded if loaded is not None else services.models.current()
    if release.kind == releases.TABLE:  # the first load finished, with a learned-schema model, meanwhile
        return _process_table_upload(data, campaign, prefs, services, release, started)
    placement = release.model.place(table.frame)
    placed_ms = (time.perf_counter() - started) * 1000
    used = int(len(table.frame))
    upload_id = new_upload_id()
    profiles = loyalty_profiles(table.frame, placement.cluster_id, release.base)
    fit = model_fit.for_loyalty_upload(release, table.frame, placement, table.rows_received, table.skipped_count,
                                       upload_id)
    segments = _segments(placement.cluster_id, placement.confidence, placement.reassigned, used, campaign, prefs,
                         services, release, profiles)
    body = _upload_body(upload_id, release, {"format": table.file_format, "sheet": table.sheet,
                                             "columns": table.columns},
                        {"received": table.rows_received, "used": used, "skipped": table.skipped_count,
                         "reassigned_from_noise": placement.reassigned_count},
                        table.skipped_examples, segments, fit, placed_ms, started)
    services.uploads.save(upload_id, data, table.file_format,
                          {**body, "campaign": campaign.model_dump()},
                          table.frame["source_row"].to_numpy(), placement.cluster_id, placement.confidence,
                          placement.reassigned)
    services.uploads.write_snapshot(upload_id, table.frame)
    log.info("upload %s: %d rows used, %d skipped, %d segments", upload_id, used, table.skipped_count,
             len(segments))
    return body


def _upload_body(upload_id: str, release: LiveRelease, file: dict[str, Any], rows: dict[str, int],
                 skipped: list[Any], segments: list[dict[str, Any]], fit: dict[str, Any], placed_ms: float,
                 started: float) -> dict[str, Any]:
    """The upload response, the same for both model kinds."""
    return {
        "status": "ok",
        "upload_id": upload_id,
        "model_version": release.version,
        "file": file,
        "rows": rows,
        "skipped_examples": [{"row": s.row, "reason": s.reason} for s in skipped],
        "segments": segments,
        "model_fit": fit,
        "timings_ms": {"placement": round(placed_ms, 1),
                       "total": round((time.perf_counter() - started) * 1000, 1)},
    }


def _segments(cluster_ids: Any, confidence: Any, reassigned: Any, used: int, campaign: CampaignInputs,
              prefs: ContentPreferences, services: Services, release: LiveRelease,
              profiles: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per segment found: its persona, the profile of the list's own members, size, share,
    confidence, reassigned count and content (written for the persona and the list's profile)."""
    placement_ids = cluster_ids
    counts = pd.Series(placement_ids).value_counts()
    segment_ids = [int(c) for c in counts.index]
    contents = services.content.generate_many([(with_list_profile(release.persona(c), profiles.get(c)), campaign,
                                                prefs) for c in segment_ids])
    segments = []
    for cluster_id, content in zip(segment_ids, contents):
        in_segment = placement_ids == cluster_id
        segments.append({
            "cluster_id": cluster_id,
            "persona": release.persona(cluster_id),
            "list_profile": profiles.get(cluster_id),
            "size": int(counts[cluster_id]),
            "share": round(int(counts[cluster_id]) / used, 4),
            "mean_confidence": round(float(confidence[in_segment].mean()), 3),
            "reassigned": int(reassigned[in_segment].sum()),
            "content": content,
        })
    return segments


def _process_table_upload(data: bytes, campaign: CampaignInputs, prefs: ContentPreferences, services: Services,
                          release: LiveRelease, started: float) -> dict[str, Any]:
    """``process_upload`` for a model trained on a learned schema: customers placed, segments as usual, and
    the placed customers kept (feature columns and hashed id) in that schema's retraining snapshots."""
    assert isinstance(release.model, TableSegmentationModel)
    upload = read_upload(data, release.model, release.manifest, services.settings.max_upload_rows)
    placement = upload.placement
    placed_ms = (time.perf_counter() - started) * 1000
    upload_id = new_upload_id()
    assert upload.typed is not None
    profiles = table_profiles(upload.typed, release.model.schema, placement.cluster_id, release.base)
    fit = model_fit.for_table_upload(release, upload, upload_id)
    segments = _segments(placement.cluster_id, placement.confidence, placement.reassigned, upload.customers,
                         campaign, prefs, services, release, profiles)
    file_info: dict[str, Any] = {"format": upload.file_format, "sheet": upload.sheet, "columns": upload.columns}
    if upload.left_blank:
        file_info["left_blank"] = upload.left_blank
        file_info["note"] = (f"{', '.join(upload.left_blank)} not in this file: read as blank (the model's other "
                             "columns place these customers)")
    body = _upload_body(upload_id, release, file_info,
                        {"received": upload.rows_received, "used": upload.customers,
                         "skipped": upload.skipped_count, "reassigned_from_noise": placement.reassigned_count},
                        upload.skipped, segments, fit, placed_ms, started)
    if upload.rolled_up is not None:
        body["rolled_up"] = upload.rolled_up
    services.uploads.save(upload_id, data, upload.file_format,
                          {**body, "kind": release.kind, "campaign": campaign.model_dump()},
                          upload.source_rows, upload.row_cluster_id, upload.row_confidence, upload.row_reassigned)
    if upload.customer_rows is not None:
        services.uploads.write_table_snapshot(upload_id, upload.customer_rows, release.model.schema,
                                              release.model.features_.columns_.month_first_)
    log.info("upload %s: %d customers placed, %d rows skipped, %d segments", upload_id, upload.customers,
             upload.skipped_count, len(segments))
    return body


def segments_export(upload_id: str, services: Services) -> bytes:
    """The uploaded customers with segment columns added, as .xlsx."""
    return segments_workbook(upload_id, services.uploads)


# ---------------------------------------------------------------------------------------------
# Personas, options, health
# ---------------------------------------------------------------------------------------------

def list_personas(services: Services) -> dict[str, Any]:
    release = services.models.current()
    return {"status": "ok", "model_version": release.version,
            "personas": [release.personas[c] for c in sorted(release.personas)]}


def get_persona(cluster_id: int, services: Services) -> dict[str, Any]:
    release = services.models.current()
    return {"status": "ok", "model_version": release.version, "persona": release.persona(cluster_id),
            "profile": release.profiles.get(cluster_id)}


def persona_history(cluster_id: int, services: Services) -> dict[str, Any]:
    """One segment id across the releases kept in PRODUCTION_MODELS_DIR (404 when none has it)."""
    settings = services.settings
    found = segment_history(settings.production_models_dir, settings.model_dir, cluster_id)
    if not found:
        raise NotFound(f"Segment {cluster_id} is in no release kept in PRODUCTION_MODELS_DIR (releases trained "
                       "before stable segment ids are not counted). GET /personas lists the live segments.")
    return {"status": "ok", "model_version": services.model_version(), "cluster_id": cluster_id, "releases": found}


def model_changes(services: Services) -> dict[str, Any]:
    """How the live release's segments continue the release it replaced: kept, new and vanished ids with
    their overlap shares (``GET /model/changes``)."""
    release = services.models.current()
    ids = release.manifest.get("segment_ids") or {
        "method": "none", "reason": "this release was trained before stable segment ids", "compared_with": None,
        "segments": [], "vanished": []}
    return {"status": "ok", "model_version": release.version, **ids}


def _typical(entry: dict[str, Any] | None, reference: pd.Timestamp | None) -> dict[str, Any] | None:
    """The training base's 10th percentile, median and 90th percentile of a column (aggregates, never one
    customer's value); a date column's are days before the reference date, shown as dates."""
    edges = (entry or {}).get("edges") or []
    median = ((entry or {}).get("summary") or {}).get("median")
    if len(edges) < 2 or median is None:
        return None
    points = {"low": edges[0], "median": median, "high": edges[-1]}
    if reference is None:
        return {k: round(float(v), 2) for k, v in points.items()}
    # days before the reference: the most days is the earliest date
    dates = {k: (reference - pd.Timedelta(days=float(v))).date().isoformat() for k, v in points.items()}
    return {"low": dates["high"], "median": dates["median"], "high": dates["low"]}


def _audience_fields(release: LiveRelease | None) -> list[dict[str, Any]]:
    """What ``audience`` accepts on the live model: each column, its kind and its values. Categorical and
    many-category columns list the values held by 10 or more training customers, as personas do (any other value
    is accepted too, and read as an unseen category): a rarer one would name a small group."""
    if release is None:
        return []
    if release.kind != releases.LOYALTY:
        model = cast(TableSegmentationModel, release.model)
        features = (release.base or {}).get("features", {})
        fields = []
        for column in model.schema.features:
            values = list(column.values) if column.role.value in ("categorical", "ordinal") else \
                ["yes", "no"] if column.role.value == "boolean" else []
            buckets = (features.get(column.name) or {}).get("buckets")
            if column.role.value == "categorical" and buckets:  # held by 10+ training customers, like personas
                values = [v for v in values if v in set(buckets)]
            elif column.role.value == "high_cardinality" and buckets:  # the same, most frequent first
                values = list(buckets[:-1])
            field: dict[str, Any] = {"name": column.name, "type": column.role.value, "values": values}
            if column.role.value in ("numeric", "date"):
                field["typical"] = _typical(features.get(column.name), model.features_.columns_.reference_date_
                                            if column.role.value == "date" else None)
            fields.append(field)
        return fields
    return [{"name": LOCATION, "type": "high_cardinality", "values": release.model.known_locations()},
            {"name": GENDER, "type": "categorical", "values": list(GENDERS)},
            {"name": LOYALTY_TIER, "type": "ordinal", "values": list(TIER_ORDER)},
            {"name": DATE_JOINED, "type": "date", "values": []}]


def options(services: Services) -> dict[str, Any]:
    """Allowed values for every form dropdown, from the schemas and the live model."""
    release = services.models.release
    fields = _audience_fields(release)
    if release and release.kind == releases.LOYALTY:
        locations = release.model.known_locations()
    else:  # a learned schema with the seed's location column lists that column's values
        locations = next((sorted(f["values"]) for f in fields if canonical_column(f["name"]) == LOCATION), [])
    return {"status": "ok", "model_version": release.version if release else None,
            "audience_fields": fields,
            "locations": locations, "genders": list(GENDERS), "loyalty_tiers": list(TIER_ORDER),
            "objectives": list(OBJECTIVE_SUGGESTIONS), "industries": list(INDUSTRY_SUGGESTIONS),
            "funnel_stages": list(FUNNEL_STAGES), "past_engagement": list(ENGAGEMENT_LEVELS),
            "platforms": list(PLATFORMS), "tones": list(TONES), "outputs": list(OUTPUTS),
            "num_variants": {"min": 1, "max": 5},
            "segments": [{"cluster_id": c, "name": p["name"]} for c, p in sorted(release.personas.items())]
            if release else []}


def model_info(services: Services) -> dict[str, Any]:
    """The live release's kind, every column's role with its reason, and its metrics (``GET /model``)."""
    release = services.models.current()
    manifest = release.manifest
    blocks = None
    if release.kind == releases.TABLE:
        schema = manifest.get("schema", {})
        columns = [{"column": c["name"], "role": c["role"], "reason": c["reason"]} for c in schema.get("columns", [])]
        blocks = schema.get("blocks")
    else:
        columns = [{"column": name, "role": "loyalty", "reason": "a column of the built-in loyalty schema"}
                   for name in manifest.get("feature_schema", {}).get("columns", [])]
    return {"status": "ok", "model_version": release.version, "kind": release.kind,
            "created_at": manifest.get("created_at"), "training_rows": manifest.get("training_rows"),
            "sources": manifest.get("sources", []), "columns": columns, "feature_blocks": blocks,
            "rolled_up": manifest.get("rolled_up"), "metrics": manifest.get("metrics", {}),
            "timings": manifest.get("timings", {})}


def health(services: Services) -> tuple[dict[str, Any], int]:
    """Service and model state; 503 with the reason and the fix when no usable model is loaded. Redis
    being unreachable is reported but keeps 200: the API serves without it."""
    release = services.models.release
    schedule = services.scheduler.info() if services.scheduler else {"role": "not started", "next_run": None}
    body: dict[str, Any] = {
        "status": "ok" if release else "error",
        "service_version": SERVICE_VERSION,
        "model_version": release.version if release else None,
        "model_created_at": release.manifest.get("created_at") if release else None,
        "persona_count": len(release.personas) if release else 0,
        "content_provider": services.content.provider_name,
        "next_retrain": schedule.get("next_run"),
        "scheduler": schedule.get("role"),
        "redis": redis_health(services.settings),
    }
    if release and services.models.warning:
        body["warning"] = services.models.warning
    elif release and services.models.error:
        body["warning"] = f"Still serving {release.version}; a newer release was not loaded: {services.models.error}"
    if not release:
        body["error"] = {"code": "model_unavailable", "message": services.models.error, "details": None}
        return body, 503
    return body, 200

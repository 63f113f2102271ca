"""Read-only model routes: personas and their history, options, health, the model, its changes and segment map."""

from __future__ import annotations

from flask import send_file
from flask_openapi3 import APIBlueprint, Tag

import generate
from portal.routes import services
from schemas import (
    ERROR_RESPONSES,
    HealthResponse,
    ModelChangesResponse,
    ModelResponse,
    OptionsResponse,
    PersonaHistoryResponse,
    PersonaPath,
    PersonaResponse,
    PersonasResponse,
)

models_api = APIBlueprint("models", __name__, abp_tags=[Tag(name="Segments and personas")],
                          abp_responses=ERROR_RESPONSES)


@models_api.get("/personas", responses={200: PersonasResponse})
def personas():
    """Every segment's persona in the live model."""
    return generate.list_personas(services())


@models_api.get("/personas/<int:cluster_id>", responses={200: PersonaResponse})
def persona(path: PersonaPath):
    """One segment's persona and profile."""
    return generate.get_persona(path.cluster_id, services())


@models_api.get("/personas/<int:cluster_id>/history", responses={200: PersonaHistoryResponse})
def persona_history(path: PersonaPath):
    """One segment id in every release kept: its name, size, share and top traits, oldest release first."""
    return generate.persona_history(path.cluster_id, services())


@models_api.get("/options", responses={200: OptionsResponse})
def options():
    """Allowed values for every form dropdown, from the live model and the schemas."""
    return generate.options(services())


@models_api.get("/health", responses={200: HealthResponse, 503: HealthResponse})
def health():
    """Service version, live model, content provider and next retrain; 503 when no usable model."""
    body, status = generate.health(services())
    return body, status


@models_api.get("/model", responses={200: ModelResponse})
def model():
    """The live model: its kind (loyalty or a learned table schema), each column's role and why, its metrics."""
    return generate.model_info(services())


@models_api.get("/model/changes", responses={200: ModelChangesResponse})
def model_changes():
    """Which segments of the live release kept their id, which are new and which vanished, with overlap shares."""
    return generate.model_changes(services())


@models_api.get("/model/segments.png",
                responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "Segment map of the training customers."}})
def segments_png():
    """A 2-D map of the training customers coloured by segment."""
    release = services().models.current()
    return send_file(release.path / "segments.png", mimetype="image/png", max_age=60)

"""Smart-form content routes: POST /generate-promo and POST /generate-post."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

import generate
from portal.routes import services
from schemas import ERROR_RESPONSES, GeneratePostRequest, GeneratePromoRequest, PromoResponse

content_api = APIBlueprint("content", __name__, abp_tags=[Tag(name="Content")],
                           abp_responses=ERROR_RESPONSES)


@content_api.post("/generate-promo", responses={200: PromoResponse})
def generate_promo(body: GeneratePromoRequest):
    """Generate promotional content from campaign inputs, aligned with a persona.

    The persona comes from the segmentation pipeline when audience fields are given, from
    `cluster_id` when given, else a general audience; `persona_source` says which.
    """
    return generate.generate_promo(body, services())


@content_api.post("/generate-post", responses={200: PromoResponse})
def generate_post(body: GeneratePostRequest):
    """Regenerate content for one segment of an earlier upload (`upload_id` + `cluster_id`) or a persona."""
    return generate.generate_post(body, services())

"""Dataset routes: POST /upload-excel and the per-upload Excel export."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

import generate
from portal.errors import BadRequest
from portal.routes import services
from schemas import ERROR_RESPONSES, UploadPath, UploadRequest, UploadResponse

uploads_api = APIBlueprint("uploads", __name__, abp_tags=[Tag(name="Uploads")], abp_responses=ERROR_RESPONSES)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@uploads_api.post("/upload-excel", responses={200: UploadResponse})
def upload_excel(form: UploadRequest):
    """Upload a customer list (.xlsx, .xls or .csv): every customer is placed in a segment, and each
    segment gets its persona and generated content. Bad rows are skipped and reported."""
    data = form.file.read()
    if not data:
        raise BadRequest("The uploaded file is empty; choose a customer list with a header row and data.")
    campaign, prefs = form.campaign_and_preferences()
    return generate.process_upload(data, form.file.filename, campaign, prefs, services())


@uploads_api.get("/uploads/<upload_id>/segments.xlsx",
                 responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                                  "description": "The uploaded customers with segment columns added."}})
def segments_xlsx(path: UploadPath):
    """Download the uploaded customers with segment id, persona name and confidence columns added."""
    body = generate.segments_export(path.upload_id, services())
    return Response(body, mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="segments-{path.upload_id}.xlsx"'})

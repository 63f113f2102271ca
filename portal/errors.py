"""One error hierarchy, and its mapping to HTTP: every error, whatever the route or status, is answered
in one JSON envelope ``{"status": "error", "model_version": ..., "error": {code, message, details}}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class PortalError(Exception):
    """Base of every error a client can cause or needs to hear about."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(PortalError):
    status, code = 400, "bad_request"


class Unauthorized(PortalError):
    status, code = 401, "unauthorized"


class NotFound(PortalError):
    status, code = 404, "not_found"


class Conflict(PortalError):
    status, code = 409, "conflict"


class PayloadTooLarge(PortalError):
    status, code = 413, "payload_too_large"


class UnsupportedFile(PortalError):
    status, code = 415, "unsupported_file"


class InvalidFile(PortalError):
    """The file is of a supported type but cannot be used (corrupt, encrypted, a bomb, no data)."""

    status, code = 422, "invalid_file"


class MissingColumns(PortalError):
    status, code = 422, "missing_columns"


class ValidationFailed(PortalError):
    status, code = 422, "validation_error"


class RateLimited(PortalError):
    status, code = 429, "rate_limited"


class ModelUnavailable(PortalError):
    """No usable segmentation model is loaded; the message says how to build one."""

    status, code = 503, "model_unavailable"


class ServiceUnavailable(PortalError):
    """A shared dependency (Redis) cannot be reached; the request may succeed when retried."""

    status, code = 503, "service_unavailable"


class ReleaseError(Exception):
    """A model release cannot be used (missing file, checksum, environment mismatch)."""


class TrainingError(Exception):
    """Training could not produce a usable release (too little data, degenerate clustering)."""


# ---------------------------------------------------------------------------------------------
# HTTP mapping
# ---------------------------------------------------------------------------------------------

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}
_MAX_FIELD_NAME = 60  # unknown keys are named back to the client, but never at any length


def _live_model_version() -> str | None:
    """The served model's version for error bodies; None before the factory has wired the services."""
    services = current_app.extensions.get("portal")
    return services.model_version() if services else None


def _envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error body: every error, whatever the route or status, carries model_version too."""
    return {"status": "error", "model_version": _live_model_version(),
            "error": {"code": code, "message": message, "details": details}}


def validation_error_response(exc: ValidationError) -> Response:
    """422 listing each bad field and why, without echoing the submitted values back."""
    errors = exc.errors(include_input=False, include_url=False, include_context=True)
    problems: list[dict[str, Any]] = [
        {"field": ".".join(str(p) for p in e["loc"])[:_MAX_FIELD_NAME] or "body",
         "problem": e["msg"].removeprefix("Value error, "),
         **({"allowed": e["ctx"]["allowed"]} if isinstance(e.get("ctx", {}).get("allowed"), list) else {})}
        for e in errors]
    if any(p["field"] == "file" for p in problems):
        message = "Attach the customer list (.xlsx, .xls or .csv) as multipart/form-data field 'file'."
    elif any(not e["loc"] and e["type"] != "value_error" for e in errors):  # not a JSON object at all
        message = ("The request body must be a JSON object; send it with Content-Type: application/json "
                   "(uploads: multipart/form-data with the file in field 'file').")
    else:
        message = "The request is not valid. " + "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    response = jsonify(_envelope("validation_error", message, problems))
    response.status_code = 422
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer PortalErrors, HTTP errors and anything unexpected in the envelope (never a traceback)."""

    @app.errorhandler(PortalError)
    def _portal_error(exc: PortalError):
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return jsonify(_envelope(exc.code, exc.message, exc.details)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        messages = {
            404: "No such endpoint. See /docs for the API.",
            405: f"Method not allowed here; allowed: {', '.join(sorted(getattr(exc, 'valid_methods', None) or []))}."
            if getattr(exc, "valid_methods", None) else "Method not allowed on this endpoint.",
            413: f"The upload is larger than MAX_UPLOAD_MB ({app.config['MAX_CONTENT_LENGTH'] // 2**20} MB); "
                 "split the file or ask an operator to raise the limit.",
            400: "The request could not be read: send valid JSON with Content-Type: application/json, "
                 "or multipart/form-data for uploads.",
        }
        body = _envelope(_HTTP_CODES.get(status, "http_error"), messages.get(status, exc.description or exc.name))
        return jsonify(body), status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, MemoryError):
            body = _envelope("too_large_to_process", "The request needed more memory than this server has; "
                             "send a smaller file or fewer rows.")
            return jsonify(body), 413
        log.exception("unexpected error")
        return jsonify(_envelope("internal_error", "Something went wrong on our side; the error was logged. "
                                 f"Quote request id {g.get('request_id', '-')} when reporting it.")), 500

"""One error hierarchy; `app.py` maps it to HTTP and the JSON envelope in one place."""

from __future__ import annotations

from typing import Any


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


class ReleaseError(Exception):
    """A model release cannot be used (missing file, checksum, environment mismatch)."""


class TrainingError(Exception):
    """Training could not produce a usable release (too little data, degenerate clustering)."""

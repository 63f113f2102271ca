"""Flask entry point: the app factory, wiring, error handlers and CLI commands.

Run it any of these ways: ``make run`` (gunicorn), ``python app.py``,
``flask --app app run --port 5000``, ``gunicorn -w 2 -b 0.0.0.0:5000 app:app``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import current_app, g, jsonify, redirect
from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from generate import SERVICE_VERSION, Services
from portal.cli import register_cli
from portal.content import ContentService
from portal.errors import PortalError
from portal.live_model import ModelHolder
from portal.logging_setup import configure_logging, install_request_logging
from portal.routes.admin import admin_api
from portal.routes.content import content_api
from portal.routes.models import models_api
from portal.routes.uploads import uploads_api
from portal.settings import Settings, load_settings
from portal.upload_store import UploadStore

log = logging.getLogger(__name__)

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


def validation_error_response(exc: ValidationError):
    """422 listing each bad field and why, without echoing the submitted values back."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    problems = [{"field": ".".join(str(p) for p in e["loc"])[:_MAX_FIELD_NAME] or "body",
                 "problem": e["msg"].removeprefix("Value error, ")} for e in errors]
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


def _register_error_handlers(app: OpenAPI) -> None:
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
            405: f"Method not allowed here; allowed: {', '.join(sorted(exc.valid_methods or []))}."
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


def _is_cli_command_other_than_run() -> bool:
    """`flask --app app train` must not spend CPU loading and warming the served model."""
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    return program == "flask" and "run" not in sys.argv[1:]


def create_app(test_config: dict[str, Any] | None = None) -> OpenAPI:
    """Build the app; ``test_config`` overrides settings (field names) for tests."""
    overrides = dict(test_config or {})
    start_background = overrides.pop("start_background", None)
    settings: Settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)

    app = OpenAPI(__name__, info=Info(title="AI Content Portal API", version=SERVICE_VERSION),
                  security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
                  doc_prefix="/docs", doc_url="/openapi.json",
                  validation_error_callback=validation_error_response, validation_error_status=422)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_upload_bytes,
                      TESTING=settings.flask_env == "testing", DEBUG=settings.flask_debug)
    app.json.sort_keys = False
    CORS(app, origins=settings.allow_origins, methods=["GET", "POST", "OPTIONS"], expose_headers=["X-Request-ID"])

    models = ModelHolder(settings.model_dir, settings.model_reload_interval_s, settings.persona_path)
    services = Services(settings=settings, models=models, content=ContentService(settings),
                        uploads=UploadStore(settings.upload_dir, settings.base_data_dir,
                                            settings.snapshot_salt.get_secret_value()))
    app.extensions["portal"] = services

    install_request_logging(app)
    _register_error_handlers(app)
    for blueprint in (content_api, uploads_api, models_api, admin_api):
        app.register_api(blueprint)

    @app.get("/docs", doc_ui=False)
    def _docs():
        return redirect("/docs/swagger")

    @app.get("/openapi.json", doc_ui=False)
    def _openapi():
        return jsonify(app.api_doc)

    register_cli(app)
    if start_background if start_background is not None else not _is_cli_command_other_than_run():
        models.start()
        from retraining.scheduler import start_scheduler
        start_scheduler(app, services)
    log.info("content provider: %s; model dir: %s", services.content.provider_name, settings.model_dir)
    return app


if __name__ == "__main__":
    application = create_app()
    port = application.extensions["portal"].settings.port
    application.run(host="0.0.0.0", port=port, debug=application.config["DEBUG"], use_reloader=False)


def __getattr__(name: str) -> Any:
    """`gunicorn app:app` and `flask --app app` find ``app``; build it on first access, not on import."""
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)

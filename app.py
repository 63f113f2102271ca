"""Flask entry point: the app factory that wires settings, services, routes, error handlers and CLI commands.

Run it any of these ways: ``make run`` (gunicorn), ``python app.py``,
``flask --app app run --port 5000``, ``gunicorn -w 2 -b 0.0.0.0:5000 app:app``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from flask import jsonify, redirect
from flask_cors import CORS
from flask_openapi3 import Info, OpenAPI
from werkzeug.middleware.proxy_fix import ProxyFix

from generate import SERVICE_VERSION, Services
from portal.cli import register_cli
from portal.content.service import ContentService
from portal.errors import register_error_handlers, validation_error_response
from portal.logging_setup import configure_logging, install_request_logging
from portal.routes.admin import admin_api
from portal.routes.content import content_api
from portal.routes.models import models_api
from portal.routes.rate_limit import init_rate_limits
from portal.routes.uploads import uploads_api
from portal.serving.live_model import ModelHolder
from portal.serving.upload_store import UploadStore
from portal.settings import Settings, load_settings

log = logging.getLogger(__name__)

def is_cli_command_other_than_run(argv: list[str]) -> bool:
    """`flask --app app train` (or `python -m flask ...`, whose argv[0] is flask's `__main__.py`) must not
    spend CPU loading and warming the served model or electing a scheduler."""
    program = Path(argv[0]) if argv else Path()
    is_flask = program.name == "flask" or (program.name == "__main__.py" and program.parent.name == "flask")
    return is_flask and "run" not in argv[1:]


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
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's setting
    if settings.trusted_proxies:  # otherwise X-Forwarded-* are the client's own words and are ignored
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    CORS(app, origins=settings.allow_origins, methods=["GET", "POST", "OPTIONS"], expose_headers=["X-Request-ID"])

    models = ModelHolder(settings.model_dir, settings.model_reload_interval_s, settings.personas_file,
                         settings.production_models_dir)
    services = Services(settings=settings, models=models, content=ContentService(settings),
                        uploads=UploadStore(settings.upload_dir, settings.base_data_dir,
                                            settings.snapshot_salt.get_secret_value()))
    app.extensions["portal"] = services

    install_request_logging(app)
    register_error_handlers(app)
    for blueprint in (content_api, uploads_api, models_api, admin_api):
        app.register_api(blueprint)
    init_rate_limits(app, settings)

    @app.get("/docs", doc_ui=False)
    def _docs():
        return redirect("/docs/swagger")

    @app.get("/openapi.json", doc_ui=False)
    def _openapi():
        return jsonify(app.api_doc)

    register_cli(app)
    if start_background if start_background is not None else not is_cli_command_other_than_run(sys.argv):
        models.start()
        from retraining.scheduler import start_scheduler
        start_scheduler(services)
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

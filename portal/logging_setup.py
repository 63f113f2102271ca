"""Logging: one line per request (method, path, status, ms, client, request id), text or JSON lines.

The client is ``request.remote_addr``: the peer, or the address a trusted proxy named (TRUSTED_PROXIES).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Flask, g, request

REQUEST_ID_HEADER = "X-Request-ID"
log = logging.getLogger("portal.requests")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = g.get("request_id", "-")
            except RuntimeError:  # outside a request
                record.request_id = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage(),
                 "request_id": getattr(record, "request_id", "-")}
        for key in ("method", "path", "status", "ms", "client"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("numba", "matplotlib", "PIL", "httpx", "httpcore", "openai._base_client"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def install_request_logging(app: Flask) -> None:
    """Give every request an id (or keep the caller's) and log one line when it ends."""

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming[:64] if incoming.replace("-", "").isalnum() else uuid.uuid4().hex[:16]
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
        client = request.remote_addr or "-"
        log.info("%s %s %s %.1fms client %s", request.method, request.path, response.status_code, elapsed, client,
                 extra={"method": request.method, "path": request.path, "status": response.status_code,
                        "ms": round(elapsed, 1), "client": client})
        return response

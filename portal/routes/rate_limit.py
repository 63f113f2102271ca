"""Per-client rate limits by route group, with Flask-Limiter: one count per client across every worker
and host when REDIS_URL is set (in-process memory otherwise), ``X-RateLimit-*`` and ``Retry-After``
headers, and the 429 in the one error envelope.

Groups: generation (POST /generate-promo and /generate-post, one shared window), upload (POST
/upload-excel) and admin (/admin/*). The client is ``request.remote_addr``, which ProxyFix rewrites from
X-Forwarded-For only as far as TRUSTED_PROXIES vouch for it.

Redis unreachable: with RATE_LIMIT_FAIL_OPEN (the default) requests are served without limits, because
the limits protect capacity, not data, and an outage of the counter should not become an outage of the
API; with RATE_LIMIT_FAIL_OPEN=false the limited routes answer 503 until Redis is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded

from portal.coordination.redis_link import RedisLink, describe, known_links, shared_link
from portal.errors import RateLimited, ServiceUnavailable
from portal.routes.admin import admin_api
from portal.routes.content import content_api
from portal.routes.uploads import uploads_api
from portal.settings import Settings

log = logging.getLogger(__name__)
#: Route group → the blueprint it covers and the methods limited (None: all).
GROUPS = {"generation": (content_api, None), "upload": (uploads_api, ("POST",)), "admin": (admin_api, None)}


def client_address() -> str:
    """The rate-limit key: the peer, or the client a trusted proxy named (see TRUSTED_PROXIES)."""
    return request.remote_addr or "unknown"


def group_limits(settings: Settings) -> dict[str, int]:
    """Requests per minute per client for each route group; 0 = no limit."""
    upload = settings.rate_limit_upload_per_minute
    return {"generation": settings.rate_limit_per_minute,
            "upload": settings.rate_limit_per_minute if upload is None else upload,
            "admin": settings.rate_limit_admin_per_minute}


class _StorageErrorsReachTheLink(logging.Filter):
    """Flask-Limiter reports the storage errors it swallows (fail open) only through its logger, with a
    traceback per request: record them on the Redis link, which then skips the limiter for a while and
    logs one line, and drop the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, redis.RedisError):
            for link in known_links():
                link.failed(exc)
            return False
        return True


_storage_errors = _StorageErrorsReachTheLink()


def init_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Bind a Limiter to ``app`` with the configured group limits; None when every group is off."""
    limits = group_limits(settings)
    if not any(limits.values()):
        return None
    link = shared_link(settings)
    fail_open = settings.rate_limit_fail_open
    limiter = Limiter(client_address, storage_uri=settings.redis_url if link else "memory://",
                      storage_options=cast(dict[str, Any], {"connection_pool": link.pool} if link else {}),
                      strategy="moving-window", headers_enabled=True, key_prefix="portal",
                      swallow_errors=fail_open)
    for group, (blueprint, methods) in GROUPS.items():
        if limits[group]:
            limiter.shared_limit(f"{limits[group]}/minute", scope=group,
                                 methods=list(methods) if methods else None)(blueprint)

    def limited() -> bool:
        return any(limits[group] and request.blueprint == blueprint.name
                   and (methods is None or request.method in methods)
                   for group, (blueprint, methods) in GROUPS.items())

    if link is not None:
        _guard_redis(app, limiter, link, fail_open, limited)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        retry = max(1, int(current.reset_at - time.time())) if current else 60  # as Retry-After says
        group = str(exc.limit.scope) if exc.limit else ""
        error = RateLimited(f"Too many {group} requests: the limit is {limits.get(group, '?')} per minute per "
                            f"client. Retry in {retry} s.", details={"retry_after_s": retry})
        return app.handle_user_exception(error)

    limiter.init_app(app)
    return limiter


def _guard_redis(app: Flask, limiter: Limiter, link: RedisLink, fail_open: bool,
                 limited: Callable[[], bool]) -> None:
    """While Redis is known to be down, skip the limiter (fail open) or refuse limited routes (fail closed)
    without waiting for a timeout on every request."""
    if fail_open:
        logging.getLogger("flask-limiter").addFilter(_storage_errors)
        limiter.request_filter(lambda: not link.usable())
        return

    def refuse(reason: str | None) -> ServiceUnavailable:
        return ServiceUnavailable(f"Rate limiting is unavailable (Redis: {reason}) and RATE_LIMIT_FAIL_OPEN is "
                                  "false, so limited routes are refused; retry in a few seconds.")

    @app.before_request
    def _closed_while_down() -> None:
        if limited() and not link.usable():
            raise refuse(link.reason)

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError):
        link.failed(exc)
        return app.handle_user_exception(refuse(describe(exc)))

"""One Redis connection pool per process, with bounded timeouts, and what the process last learnt about it.

The content cache, the rate limiter, the leases and the retraining status all go through the same link.
After a failed call the link is marked down for ``RETRY_AFTER_S``: callers skip Redis instantly in that
window, so an outage costs each process one failed (time-bounded) call per window instead of a timeout
on every request, and the first call after the window finds out whether Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from portal.errors import ServiceUnavailable
from portal.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_AFTER_S = 1.0


def describe(exc: BaseException) -> str:
    """A short reason for logs and /health, without the URL (it may carry a password)."""
    text = str(exc).split("\n")[0][:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RedisLink:
    """A redis-py client whose every call is bounded by ``timeout_s``, plus an up/down state."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.pool = redis.ConnectionPool.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.client = redis.Redis(connection_pool=self.pool)
        self._failed_at: float | None = None
        self._reason: str | None = None
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """False only within RETRY_AFTER_S of a failure: then skip Redis rather than wait for it."""
        failed_at = self._failed_at
        return failed_at is None or time.monotonic() - failed_at >= RETRY_AFTER_S

    @property
    def reason(self) -> str | None:
        return self._reason

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self._failed_at is None
            self._failed_at, self._reason = time.monotonic(), describe(exc)
        if first:
            log.warning("Redis unreachable (%s); carrying on without it, retrying every %.0f s",
                        self._reason, RETRY_AFTER_S)

    def succeeded(self) -> None:
        if self._failed_at is not None:
            with self._lock:
                self._failed_at, self._reason = None, None
            log.warning("Redis reachable again")

    def run(self, operation: Callable[[redis.Redis], T], what: str) -> T:
        """One Redis operation; ServiceUnavailable (503) naming ``what`` when Redis cannot be reached."""
        if not self.usable():
            raise ServiceUnavailable(f"{what} is kept in Redis, which is unreachable ({self._reason}); "
                                     "retry in a few seconds.")
        try:
            result = operation(self.client)
        except redis.RedisError as exc:
            self.failed(exc)
            raise ServiceUnavailable(f"{what} is kept in Redis, which is unreachable ({describe(exc)}); "
                                     "retry in a few seconds.") from None
        self.succeeded()
        return result

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}`` or ``{"status": "unavailable", "reason": ...}``, from one bounded PING."""
        if not self.usable():
            return {"status": "unavailable", "reason": self._reason}
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self.failed(exc)
            return {"status": "unavailable", "reason": self._reason}
        self.succeeded()
        return {"status": "ok", "reason": None}


_links: dict[tuple[str, float], RedisLink] = {}
_links_lock = threading.Lock()


def shared_link(settings: Settings) -> RedisLink | None:
    """This process's link to REDIS_URL (one per URL, shared by every user), or None without REDIS_URL."""
    if not settings.redis_url:
        return None
    key = (settings.redis_url, settings.redis_timeout_s)
    with _links_lock:
        if key not in _links:
            _links[key] = RedisLink(*key)
        return _links[key]


def known_links() -> list[RedisLink]:
    """Every link this process has opened, for failures that only a library's logger reports."""
    with _links_lock:
        return list(_links.values())


def redis_health(settings: Settings) -> dict[str, Any]:
    """The ``redis`` part of /health: ok, unavailable (with the reason) or not configured."""
    link = shared_link(settings)
    return link.health() if link is not None else {"status": "not configured", "reason": None}

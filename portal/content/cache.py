"""Content cache: the same normalised request returns the stored result for a TTL.

In-process by default; Redis when REDIS_URL is set so gunicorn workers and hosts share hits. A cache
outage must never break generation, so Redis errors are treated as misses, and while the shared link
knows Redis is down the cache is skipped without a round-trip (see portal.coordination.redis_link).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from portal.coordination.redis_link import RedisLink, shared_link
from portal.errors import ServiceUnavailable
from portal.settings import Settings

log = logging.getLogger(__name__)
KEY_PREFIX = "portal:content:"


def cache_key(parts: dict[str, Any]) -> str:
    """A stable key: canonical JSON (sorted keys, collapsed whitespace) hashed with SHA-256."""

    def tidy(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split())
        if isinstance(value, dict):
            return {str(k): tidy(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [tidy(v) for v in value]
        return value

    raw = json.dumps(tidy(parts), sort_keys=True, ensure_ascii=False, default=str)
    return KEY_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


class ContentCache(Protocol):
    """Get and set JSON-serialisable content by key."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullCache:
    """CACHE_TTL_S=0: never stores anything."""

    def get(self, key: str) -> dict[str, Any] | None:
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryCache:
    """A thread-safe TTL cache with an LRU bound, private to one process."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the stored value, so callers cannot mutate the cache."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return copy.deepcopy(item[1])

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store a copy; the oldest entries go first when the bound is reached."""
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl_s, copy.deepcopy(value))
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            self._items.clear()


class RedisCache:
    """JSON values with an expiry; shared by every worker that points at the same Redis."""

    def __init__(self, link: RedisLink, ttl_s: int) -> None:
        self.link, self.ttl_s = link, ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or None on a miss or when Redis is unreachable."""
        try:
            raw = self.link.run(lambda r: r.get(key), "The content cache")
            return json.loads(raw) if raw else None
        except ServiceUnavailable:  # a cache outage is a miss, not an error; the link has logged it
            return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store with the TTL; a failed write only costs a future miss."""
        body = json.dumps(value, ensure_ascii=False)
        try:
            self.link.run(lambda r: r.set(key, body, ex=self.ttl_s), "The content cache")
        except ServiceUnavailable:
            return None

    def close(self) -> None:
        """Nothing to close: the link belongs to the process, not to this cache."""
        return None


def make_cache(settings: Settings) -> ContentCache:
    """Redis when REDIS_URL is set, otherwise in-process; nothing when the TTL is 0."""
    if settings.cache_ttl_s <= 0:
        return NullCache()
    link = shared_link(settings)
    if link is not None:
        return RedisCache(link, settings.cache_ttl_s)
    return MemoryCache(settings.cache_ttl_s)

"""A small per-client rate limit for the generation routes (off unless RATE_LIMIT_PER_MINUTE > 0)."""

from __future__ import annotations

import threading
import time
from collections import deque

from flask import current_app, request

from portal.errors import RateLimited
from portal.routes import services

_lock = threading.Lock()
#: Above this many tracked clients, clients idle for a minute are forgotten (their windows are empty).
_PRUNE_ABOVE = 1024


def limit_generation() -> None:
    """Raise 429 when this client made more than the allowed generation calls in the last minute."""
    limit = services().settings.rate_limit_per_minute
    if limit <= 0:
        return
    # The peer address only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    client = request.remote_addr or "?"
    now = time.monotonic()
    with _lock:
        seen: dict[str, deque[float]] = current_app.extensions.setdefault("rate_limit_windows", {})
        if len(seen) > _PRUNE_ABOVE:
            for idle in [c for c, w in seen.items() if not w or now - w[-1] > 60]:
                del seen[idle]
        window = seen.setdefault(client, deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= limit:
            retry = int(60 - (now - window[0])) + 1
            raise RateLimited(f"Too many generation requests: the limit is {limit} per minute. "
                              f"Retry in {retry} s.", details={"retry_after_s": retry})
        window.append(now)

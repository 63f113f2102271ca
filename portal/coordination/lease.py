"""A named lease in Redis: one holder at a time across every host, gone ``ttl_s`` after its last renewal.

Built on redis-py's ``Lock`` (a random token under ``SET NX PX``; renewal and release are Lua scripts
that check the token, so nobody renews or frees a lease they do not hold). A holder that dies stops
renewing and the lease expires; a holder that cannot reach Redis gives the lease up a third of the TTL
before Redis would expire it, so two holders never both believe they hold it while Redis is reachable.
The token can be handed to a child process, which adopts the lease and keeps it alive itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import LockError, LockNotOwnedError

from portal.coordination.redis_link import RedisLink, describe
from portal.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class Lease:
    """Acquire, keep (a renewal thread), verify, hand over and release one named lease."""

    def __init__(self, link: RedisLink, name: str, ttl_s: float, token: str | None = None) -> None:
        self.link, self.name, self.ttl_s = link, name, ttl_s
        self._lock = link.client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        self._valid_until = 0.0
        if token:
            self._lock.local.token = token.encode()
            self._valid_until = time.monotonic() + ttl_s / 3  # until the first renewal confirms it
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._keeper: threading.Thread | None = None

    @property
    def token(self) -> str | None:
        raw = self._lock.local.token
        return raw.decode() if isinstance(raw, bytes) else raw

    @property
    def held(self) -> bool:
        """This holder's belief: acquired, not released, not lost, and not past its last renewal's TTL."""
        return self.token is not None and not self._lost.is_set() and time.monotonic() < self._valid_until

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    def acquire(self) -> bool:
        """True when this holder has the lease now (an adopted token is confirmed by renewing it);
        False when another holds it; ServiceUnavailable when Redis cannot be reached."""
        if self.token is not None:
            return self.renew()
        sent = time.monotonic()
        got = self.link.run(lambda _: self._lock.acquire(blocking=False), f"The lease {self.name}")
        if got:
            self._valid_until = sent + self.ttl_s
            self._lost.clear()
        return got

    def renew(self) -> bool:
        """Reset the TTL; False when the lease is no longer ours or Redis did not answer."""
        if self.token is None:
            return False
        sent = time.monotonic()
        try:
            self._lock.reacquire()
        except LockNotOwnedError:
            self._lose("it expired and may be held by another host")
            return False
        except LockError as exc:  # no token (released meanwhile)
            log.debug("lease %s not renewed: %s", self.name, exc)
            return False
        except redis.RedisError as exc:
            self.link.failed(exc)
            if sent + self.renew_every_s >= self._valid_until:  # the next try would come after expiry
                self._lose(f"Redis unreachable ({describe(exc)})")
            return False
        self.link.succeeded()
        self._valid_until = sent + self.ttl_s
        return True

    def _lose(self, why: str) -> None:
        self._lock.local.token = None  # a later acquire() starts afresh
        if not self._lost.is_set():
            self._lost.set()
            log.warning("lease %s lost: %s", self.name, why)

    def keep(self, on_lost: Callable[[], None] | None = None) -> None:
        """Renew every third of the TTL in a daemon thread; ``on_lost`` runs once if the lease is lost."""

        def run() -> None:
            while not self._stop.wait(self.renew_every_s):
                self.renew()
                if self._lost.is_set():
                    if on_lost is not None:
                        on_lost()
                    return

        self._stop.clear()
        self._keeper = threading.Thread(target=run, name=f"lease-{self.name}", daemon=True)
        self._keeper.start()

    def still_held(self) -> bool:
        """Ask Redis (one GET): True only when the lease is still this holder's token."""
        if not self.held:
            return False
        try:
            owned = self._lock.owned()
        except redis.RedisError as exc:
            self.link.failed(exc)
            return False
        if not owned:
            self._lose("it is no longer ours")
        return owned

    def is_locked_elsewhere(self) -> bool:
        """True while anyone holds the lease (ServiceUnavailable when Redis cannot be reached)."""
        if self.held:
            return False
        return self.link.run(lambda _: self._lock.locked(), f"The lease {self.name}")

    def hand_over(self, while_alive: Callable[[], bool] | None = None) -> None:
        """Stop renewing without releasing: a child process that adopted the token keeps it alive.

        With ``while_alive``, a thread here also renews the token until that returns False: a child still
        importing on a busy host may first renew after a short TTL has run out (a 4 s lease was lost that way
        while four workers compiled numba). The same token renewed twice is harmless, and the renewal script
        checks it, so this never extends anyone else's lease; once it is no longer ours (the child released it
        or lost it), the thread ends quietly."""
        self._stop.set()
        token, self._lock.local.token = self._lock.local.token, None
        if while_alive is None or token is None:
            return
        lock = self.link.client.lock(self.name, timeout=self.ttl_s, blocking=False, thread_local=False)
        lock.local.token = token

        def run() -> None:
            while True:
                time.sleep(self.renew_every_s)
                if not while_alive():
                    return
                try:
                    lock.reacquire()
                except LockError:  # released by the child, or expired: no longer ours to renew
                    return
                except redis.RedisError as exc:
                    self.link.failed(exc)

        threading.Thread(target=run, name=f"lease-{self.name}-handed-over", daemon=True).start()

    def release(self) -> None:
        """Free the lease now (best effort: unreachable Redis lets it expire on its own)."""
        self._stop.set()
        if self.token is None:
            return
        try:
            self._lock.release()
        except LockError:  # expired or never ours: nothing to free
            self._lock.local.token = None
        except redis.RedisError as exc:
            self.link.failed(exc)
            self._lock.local.token = None
            log.warning("lease %s not released (%s); it expires within %.0f s", self.name, describe(exc),
                        self.ttl_s)

    # FileLock's interface, so the retraining code does not care which one it holds.
    def child_args(self) -> list[str]:
        return ["--lease-token", self.token or ""]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return ()


__all__ = ["Lease", "ServiceUnavailable"]

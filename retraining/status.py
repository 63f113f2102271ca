"""Run lock, scheduler lock, status and reports of retraining: per host on disk, or across hosts in Redis.

One host (no REDIS_URL): the locks are ``fcntl.flock`` on files, which the kernel releases when the
holder dies, even by ``kill -9``, so a crashed run never blocks the next one; status is a JSON file. A web
worker that starts a run takes the lock itself and hands the locked descriptor to the child process, so
two concurrent requests cannot both start one; the lock then lives exactly as long as the child.

Several hosts (REDIS_URL): the same two locks are Redis leases (``portal.coordination.lease``) that a
dead holder loses within RETRAIN_LEASE_S, and the status is a Redis key, so every host answers alike.
The child adopts the run lease's token and renews it while it runs. Reports are files either way, on
the shared PRODUCTION_MODELS_DIR; the last one is also part of the status.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from portal.coordination.lease import Lease
from portal.coordination.redis_link import RedisLink, shared_link
from portal.errors import ServiceUnavailable
from portal.settings import Settings

log = logging.getLogger(__name__)

STATE_DIR = ".retrain"
IDLE, RUNNING, SUCCEEDED, FAILED, REJECTED = "idle", "running", "succeeded", "failed", "rejected"


def state_dir(production_dir: Path) -> Path:
    folder = Path(production_dir) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class RunLock(Protocol):
    """What the scheduler, the job and the CLI need of a lock: a host's flock or a lease in Redis."""

    @property
    def held(self) -> bool: ...

    @property
    def pass_fds(self) -> tuple[int, ...]: ...

    def acquire(self) -> bool: ...

    def release(self) -> None: ...

    def hand_over(self, while_alive: Callable[[], bool] | None = None) -> None: ...

    def is_locked_elsewhere(self) -> bool: ...

    def keep(self, on_lost: Callable[[], None] | None = None) -> None: ...

    def still_held(self) -> bool: ...

    def child_args(self) -> list[str]: ...


class FileLock:
    """A non-blocking exclusive flock; ``acquire`` returns False when another process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @classmethod
    def inherited(cls, path: Path, fd: int) -> FileLock:
        """Adopt a descriptor, already locked, that the parent process passed down."""
        lock = cls(path)
        lock._fd = fd
        return lock

    @property
    def fd(self) -> int | None:
        return self._fd

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def hand_over(self, while_alive: Callable[[], bool] | None = None) -> None:
        """Close this process's descriptor without unlocking: a child that inherited it keeps the lock (it cannot
        expire, so ``while_alive`` is not needed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def is_locked_elsewhere(self) -> bool:
        """True when some other process holds the lock right now."""
        if self.held:
            return False
        if self.acquire():
            self.release()
            return False
        return True

    # The Redis lease's interface: a flock cannot be lost while its process lives.
    def keep(self, on_lost: Callable[[], None] | None = None) -> None:
        return None

    def still_held(self) -> bool:
        return self.held

    def child_args(self) -> list[str]:
        return ["--lock-fd", str(self._fd)]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._fd,) if self._fd is not None else ()


def run_lock(production_dir: Path) -> FileLock:
    return FileLock(state_dir(production_dir) / "run.lock")


def write_status(production_dir: Path, status: dict[str, Any]) -> None:
    path = state_dir(production_dir) / "status.json"
    temp = path.with_name(f".status-{uuid.uuid4().hex[:6]}.json")
    temp.write_text(json.dumps({**status, "updated_at": now_iso()}, indent=2, default=str))
    os.replace(temp, path)


def read_status(production_dir: Path) -> dict[str, Any]:
    """Last known state; a 'running' state while nobody holds the run lock is reported as failed.

    Every run holds the run lock from before its process starts until it ends (the kernel drops it
    when the process dies), so the lock, not a pid that may have been reused, says whether it runs.
    """
    path = state_dir(production_dir) / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"state": IDLE}
    return _failed_if_unlocked(status, run_lock(production_dir).is_locked_elsewhere)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _failed_if_unlocked(status: dict[str, Any], locked_elsewhere: Callable[[], bool]) -> dict[str, Any]:
    if status.get("state") == RUNNING and not locked_elsewhere():
        return {**status, "state": FAILED, "reason": "the retraining process ended without finishing "
                "(killed or crashed); nothing was changed. Start it again."}
    return status


def save_report_files(production_dir: Path, report: dict[str, Any], summary: str) -> Path:
    """The report as JSON and a short text summary under .retrain/reports (on the shared storage)."""
    folder = state_dir(production_dir) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = str(report["started_at"]).replace(":", "").replace("+0000", "Z")
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / f"{stem}.txt").write_text(summary + "\n")
    return folder / f"{stem}.json"


class LocalState:
    """One host: flock locks and the status file under PRODUCTION_MODELS_DIR/.retrain."""

    shared = False

    def __init__(self, production_dir: Path) -> None:
        self.production_dir = Path(production_dir)

    def run_lock(self) -> RunLock:
        return run_lock(self.production_dir)

    def leader_lock(self) -> RunLock:
        return FileLock(state_dir(self.production_dir) / "scheduler.lock")

    def adopt_run_lock(self, fd: int | None = None, token: str | None = None) -> RunLock | None:
        """The run lock a parent process handed down (a locked descriptor), or None."""
        return FileLock.inherited(run_lock(self.production_dir).path, fd) if fd is not None else None

    def read_status(self) -> dict[str, Any]:
        return read_status(self.production_dir)

    def write_status(self, status: dict[str, Any]) -> None:
        write_status(self.production_dir, status)

    def save_report(self, report: dict[str, Any], summary: str) -> Path:
        return save_report_files(self.production_dir, report, summary)


class SharedState(LocalState):
    """Several hosts: leases and status in Redis, reports on the shared storage and in a short Redis list."""

    shared = True
    RUN, LEADER = "portal:retrain:run", "portal:retrain:leader"
    STATUS, REPORTS = "portal:retrain:status", "portal:retrain:reports"
    KEEP_REPORTS = 50

    def __init__(self, production_dir: Path, link: RedisLink, lease_s: float) -> None:
        super().__init__(production_dir)
        self.link, self.lease_s = link, lease_s

    def run_lock(self) -> RunLock:
        return Lease(self.link, self.RUN, self.lease_s)

    def leader_lock(self) -> RunLock:
        return Lease(self.link, self.LEADER, self.lease_s)

    def adopt_run_lock(self, fd: int | None = None, token: str | None = None) -> RunLock | None:
        return Lease(self.link, self.RUN, self.lease_s, token=token) if token else None

    def read_status(self) -> dict[str, Any]:
        raw = self.link.run(lambda r: r.get(self.STATUS), "The retraining status")
        try:
            status = json.loads(raw) if raw else {"state": IDLE}
        except ValueError:
            status = {"state": IDLE}
        return _failed_if_unlocked(status, self.run_lock().is_locked_elsewhere)

    def write_status(self, status: dict[str, Any]) -> None:
        body = json.dumps({**status, "host": socket.gethostname(), "updated_at": now_iso()}, default=str)
        self.link.run(lambda r: r.set(self.STATUS, body), "The retraining status")

    def save_report(self, report: dict[str, Any], summary: str) -> Path:
        path = save_report_files(self.production_dir, report, summary)
        body = json.dumps(report, default=str)
        try:
            def push(r: Any) -> Any:
                pipe = r.pipeline()
                pipe.lpush(self.REPORTS, body)
                pipe.ltrim(self.REPORTS, 0, self.KEEP_REPORTS - 1)
                return pipe.execute()

            self.link.run(push, "The retraining reports")
        except ServiceUnavailable as exc:
            log.warning("report kept on disk only: %s", exc.message)
        return path


def retrain_state(settings: Settings) -> LocalState:
    """Redis-backed state when REDIS_URL is set (several hosts), file-backed otherwise (one host)."""
    link = shared_link(settings)
    if link is None:
        return LocalState(settings.production_models_dir)
    return SharedState(settings.production_models_dir, link, settings.retrain_lease_s)

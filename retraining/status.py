"""Run lock and status file shared by every process on the host.

The lock is an ``fcntl.flock`` on a file: the kernel releases it when the holder dies, even by
``kill -9``, so a crashed run never blocks the next one. A web worker that starts a run takes the
lock itself and hands the locked descriptor to the child process, so two concurrent requests cannot
both start one; the lock then lives exactly as long as the child.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_DIR = ".retrain"
IDLE, RUNNING, SUCCEEDED, FAILED, REJECTED = "idle", "running", "succeeded", "failed", "rejected"


def state_dir(production_dir: Path) -> Path:
    folder = Path(production_dir) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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

    def hand_over(self) -> None:
        """Close this process's descriptor without unlocking: a child that inherited it keeps the lock."""
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
    if status.get("state") == RUNNING and not run_lock(production_dir).is_locked_elsewhere():
        status = {**status, "state": FAILED, "reason": "the retraining process ended without finishing "
                  "(killed or crashed); nothing was changed. Start it again."}
    return status


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

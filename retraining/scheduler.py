"""The in-process quarterly schedule, run by exactly one process: per host, or across hosts with REDIS_URL.

Every gunicorn worker imports the app, so every worker would start its own scheduler. Instead each
worker tries the leader lock (a host-wide ``fcntl.flock``, or with REDIS_URL a Redis lease shared by
every host); the winner runs APScheduler, the others retry every TAKEOVER_POLL_S and take over when the
winner dies (flock: at once; lease: within RETRAIN_LEASE_S + TAKEOVER_POLL_S). A leader that loses its
lease stops scheduling. A fire, scheduled or catch-up, starts a run only under the run lock and only
if no run has finished since the fire was due, so a late or duplicate fire on another host is a no-op.
The job itself starts a child process, so a crash or out-of-memory during fitting never takes a web
worker down.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from portal.errors import Conflict, PortalError, ServiceUnavailable
from portal.segmentation import releases
from portal.settings import PROJECT_ROOT, Settings
from retraining.job import TrainJob
from retraining.status import REJECTED, RUNNING, SUCCEEDED, LocalState, retrain_state, state_dir

log = logging.getLogger(__name__)
TAKEOVER_POLL_S = 2.0
MISFIRE_GRACE_S = 6 * 3600


def quarterly_trigger(settings: Settings) -> CronTrigger:
    """Cron trigger in the configured timezone, whatever the server's own timezone is."""
    return CronTrigger.from_crontab(settings.retrain_cron, timezone=ZoneInfo(settings.retrain_timezone))


def next_run_time(settings: Settings, now: datetime | None = None) -> datetime | None:
    if not settings.retrain_enabled:
        return None
    now = now or datetime.now(ZoneInfo(settings.retrain_timezone))
    return quarterly_trigger(settings).get_next_fire_time(None, now)


def previous_run_time(settings: Settings, now: datetime | None = None) -> datetime:
    """The last scheduled fire time at or before ``now`` (searched back over a year)."""
    now = now or datetime.now(ZoneInfo(settings.retrain_timezone))
    trigger = quarterly_trigger(settings)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=400))
    last = fire
    while fire is not None and fire <= now:
        last, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def finished_since(state: LocalState, due: datetime) -> bool:
    """True when a run has succeeded or been rejected at or after ``due`` (a rejected run would only be
    rejected again)."""
    status = state.read_status()
    finished = (status.get("report") or {}).get("finished_at")
    return bool(status.get("state") in (SUCCEEDED, REJECTED) and finished
                and datetime.fromisoformat(finished) >= due)


def missed_run(settings: Settings, now: datetime | None = None) -> bool:
    """True when the most recent scheduled run left no trace: the live model predates it and no run
    has succeeded or been rejected since."""
    release = releases.live_release_dir(settings.model_dir)
    if release is None:
        return False
    due = previous_run_time(settings, now)
    if finished_since(retrain_state(settings), due):
        return False
    try:
        created = datetime.fromisoformat(releases.read_manifest(release)["created_at"])
    except (KeyError, ValueError, releases.ReleaseError):
        return True
    return created < due


def settings_as_env(settings: Settings) -> dict[str, str]:
    """The running settings as environment variables, so a child process sees the same configuration.

    Paths are made absolute (the child runs from the project root, the parent may not), and a setting
    that is unset here is removed from the environment rather than left to a stale variable.
    """
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = name.upper()
        if value is None:
            env.pop(key, None)
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, Path):  # absolute, but links kept: model/... must follow later swaps
            value = os.path.abspath(value)
        elif isinstance(value, list):
            value = ",".join(value)
        env[key] = str(value)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def launch_retraining(settings: Settings, unless_finished_since: datetime | None = None,
                      job: TrainJob | None = None) -> int | None:
    """Start the job in a child process; 409 when a run is already in progress (on any host with
    REDIS_URL), 503 when Redis cannot be reached. None, starting nothing, when a run has finished since
    ``unless_finished_since`` (checked under the lock, so two hosts' fires of one due time run once).

    The run lock is taken here, before the child exists, and handed to it: a second request arriving
    while the child is still importing gets 409 instead of starting a duplicate run. With ``job`` the
    child trains on that file (POST /admin/train) under the same lock, gates and swap.
    """
    state = retrain_state(settings)
    lock = state.run_lock()
    try:
        acquired = lock.acquire()
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(f"No retraining run was started: {exc.message}") from None
    if not acquired:
        raise Conflict("A retraining or training run is already in progress; follow it at "
                       "GET /admin/retrain/status and try again when it has finished.")
    try:
        if unless_finished_since is not None and finished_since(state, unless_finished_since):
            lock.release()
            log.info("a run has finished since %s; nothing to do", unless_finished_since.isoformat())
            return None
        state.write_status({"state": RUNNING, "stage": "starting", "job_id": job.job_id if job else None})
        log_path = state_dir(settings.production_models_dir) / "last-run.log"
        with log_path.open("ab") as log_file:
            child = subprocess.Popen([sys.executable, "-m", "retraining.job", *lock.child_args(),
                                      *(job.child_args() if job else [])],
                                     cwd=PROJECT_ROOT, env=settings_as_env(settings), stdout=log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True, pass_fds=lock.pass_fds)
    except BaseException:
        lock.release()
        raise
    lock.hand_over(while_alive=lambda: child.poll() is None)  # renewed here too while it runs
    threading.Thread(target=child.wait, name="retrain-reaper", daemon=True).start()
    log.info("retraining started in process %d", child.pid)
    return child.pid


def _scheduled_job(settings: Settings) -> None:
    """A quarterly fire: run unless some host's run has already finished since this fire was due."""
    try:
        launch_retraining(settings, unless_finished_since=previous_run_time(settings))
    except PortalError as exc:
        log.warning("scheduled retraining skipped: %s", exc.message)


def _catch_up_job(settings: Settings) -> None:
    """The delayed catch-up: checked again when it fires, since another host may have caught up meanwhile."""
    try:
        if missed_run(settings):
            launch_retraining(settings, unless_finished_since=previous_run_time(settings))
        else:
            log.info("catch-up not needed any more: the missed run has been made up")
    except PortalError as exc:
        log.warning("catch-up retraining skipped: %s", exc.message)


class RetrainScheduler:
    """Leader election (flock or Redis lease), then APScheduler in the leader; standby workers poll to
    take over, and a leader that loses its lease steps down to standby."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.role = "disabled" if not settings.retrain_enabled else "standby"
        self._lock = retrain_state(settings).leader_lock()
        self._scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._guard = threading.Lock()

    def info(self) -> dict[str, Any]:
        upcoming = next_run_time(self.settings)
        return {"role": self.role, "next_run": upcoming.isoformat() if upcoming else None}

    def start(self) -> None:
        if self.settings.retrain_enabled:
            threading.Thread(target=self._elect, name="retrain-election", daemon=True).start()

    def _elect(self) -> None:
        while not self._stop.is_set():
            try:
                won = self._lock.acquire()
            except ServiceUnavailable:  # no lease without Redis: nobody schedules until it is back
                won = False
            if won:
                self._lost.clear()
                self._lock.keep(on_lost=self._lost.set)
                self._lead()
                self._lost.wait()
                self._step_down()
                continue
            self._stop.wait(TAKEOVER_POLL_S)

    def _shut_scheduler(self) -> None:
        with self._guard:
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
                self._scheduler = None

    def _step_down(self) -> None:
        self._shut_scheduler()
        if not self._stop.is_set():
            self.role = "standby"
            log.warning("this process (%d) no longer runs the retraining schedule (leader lease lost)", os.getpid())

    def _lead(self) -> None:
        scheduler = BackgroundScheduler(timezone=ZoneInfo(self.settings.retrain_timezone))
        scheduler.add_job(_scheduled_job, quarterly_trigger(self.settings), args=[self.settings],
                          id="quarterly-retrain", coalesce=True, misfire_grace_time=MISFIRE_GRACE_S,
                          max_instances=1, replace_existing=True)
        try:
            catch_up = missed_run(self.settings)
        except Exception:  # never let a bad status file stop the schedule itself
            log.exception("could not tell whether a scheduled retrain was missed")
            catch_up = False
        if catch_up:
            when = datetime.now(UTC) + timedelta(seconds=self.settings.retrain_catchup_delay_s)
            scheduler.add_job(_catch_up_job, "date", run_date=when, args=[self.settings], id="catch-up",
                              misfire_grace_time=MISFIRE_GRACE_S)
            log.warning("the live model predates the last scheduled retrain; catching up at %s", when.isoformat())
        with self._guard:
            if self._stop.is_set():
                return
            scheduler.start()
            self._scheduler = scheduler
        self.role = "leader"
        log.info("this process (%d) runs the retraining schedule; next run %s", os.getpid(),
                 self.info()["next_run"])

    def stop(self) -> None:
        """Stop scheduling and free the leader lock at once, so another process takes over without waiting."""
        self._stop.set()
        self._lost.set()
        self._shut_scheduler()
        self._lock.release()


def start_scheduler(services: Any) -> RetrainScheduler:
    """Start leader election for this process and expose the schedule to /health."""
    scheduler = RetrainScheduler(services.settings)
    services.scheduler = scheduler
    scheduler.start()
    atexit.register(scheduler.stop)  # a worker that exits cleanly hands the lease over at once
    return scheduler


__all__ = ["RetrainScheduler", "launch_retraining", "next_run_time", "quarterly_trigger", "start_scheduler"]

"""Two "hosts" on one machine: two gunicorn masters with two workers each, their own working folders,
sharing MODEL_DIR, PRODUCTION_MODELS_DIR, UPLOAD_DIR, BASE_DATA_DIR and one real Redis.

One test walks through what a team running several hosts relies on, in order: one scheduler leader
for all four workers and a missed run caught up exactly once; a retrain triggered on host A reported
running by host B (which refuses a second one) and served by both within seconds, with no failed
request from clients spread over both; one rate limit across hosts, blind to a spoofed
X-Forwarded-For; Redis stopped under load (no 5xx, /health says so) and restarted (leader, run lock,
limits and cache work again without a restart); the leader host killed and the lease taken over
within RETRAIN_LEASE_S + TAKEOVER_POLL_S.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from portal.segmentation import releases
from portal.settings import PROJECT_ROOT
from retraining.scheduler import TAKEOVER_POLL_S
from tests.helpers import wait_for
from tests.test_gunicorn import GUNICORN, LOCATIONS, _free_port, _serving
from tests.test_retraining import _set_created_at

TOKEN = "hosts-admin-token"
LEASE_S = 4.0
UPLOAD_LIMIT = 6
LEAD = re.compile(r"\[(\d+)\] retraining\.scheduler .*?(no longer runs|runs) the retraining schedule")
STARTED = re.compile(r"retraining started in process (\d+)")


def _call(url: str, body: dict | None = None, headers: dict | None = None, data: bytes | None = None,
          timeout: float = 30) -> tuple[int, dict, dict]:
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json",
                                                                 **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


class Host:
    """One gunicorn master (2 workers) in its own working folder, on the shared folders and Redis."""

    def __init__(self, name: str, root: Path, workspace: dict[str, Path], env: dict[str, str]) -> None:
        self.name, self.port = name, _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cwd = root / name
        self.cwd.mkdir()
        self.log = self.cwd / "gunicorn.log"
        with self.log.open("wb") as log_file:
            self.master = subprocess.Popen(
                [*GUNICORN, "-c", str(PROJECT_ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{self.port}",
                 "--no-control-socket"], cwd=self.cwd, env={**env, "PORT": str(self.port)}, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        try:
            return {child.pid for child in psutil.Process(self.master.pid).children()}
        except psutil.NoSuchProcess:
            return set()

    def serving(self) -> dict[int, str]:
        return {pid: v for pid, v in _serving(self.log).items() if pid in self.workers()}

    def leaders(self) -> set[int]:
        """Live workers whose last word on the schedule was that they run it."""
        last: dict[int, str] = {}
        for pid, verb in LEAD.findall(self.text()):
            last[int(pid)] = verb
        return {pid for pid, verb in last.items() if verb == "runs" and pid in self.workers()}

    def started_runs(self) -> list[int]:
        return [int(pid) for pid in STARTED.findall(self.text())]

    def admin(self, method: str, path: str) -> tuple[int, dict, dict]:
        return _call(f"{self.base}{path}", {} if method == "POST" else None,
                     headers={"Authorization": f"Bearer {TOKEN}"})

    def kill(self) -> None:
        """The host dies at once: no worker gets to release anything."""
        if self.master.poll() is None:
            os.killpg(self.master.pid, signal.SIGKILL)
            self.master.wait(10)

    def stop(self) -> None:
        if self.master.poll() is None:
            os.killpg(self.master.pid, signal.SIGTERM)
            try:
                self.master.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Load:
    """Client threads spreading /generate-promo over every host; remembers each answer."""

    def __init__(self, hosts: list[Host], threads: int = 3) -> None:
        self.results: list[tuple[str, int, str | None, float]] = []
        self._stop = threading.Event()
        self._count = itertools.count()
        self._threads = [threading.Thread(target=self._run, args=(hosts, seed), daemon=True) for seed in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self, hosts: list[Host], seed: int) -> None:
        while not self._stop.is_set():
            i = next(self._count)
            host = hosts[i % len(hosts)]
            body = {"objective": f"Increase sales {i}", "industry": "Retail", "funnel_stage": "Awareness",
                    "past_engagement": "Low", "location": LOCATIONS[(i + seed) % len(LOCATIONS)],
                    "gender": "Female" if i % 2 else "Male", "join_year": 2015 + i % 9, "join_month": 1 + i % 12}
            try:
                status, reply, _ = _call(f"{host.base}/generate-promo", body)
            except OSError:
                status, reply = 0, {}
            self.results.append((host.name, status, reply.get("model_version"), time.monotonic()))

    def stop(self) -> Counter:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return Counter(status for _, status, _, _ in self.results)


def _uploads(hosts: list[Host], count: int) -> list[tuple[int, dict]]:
    """Empty uploads (answered 422 when allowed) over both hosts, each with a different spoofed X-Forwarded-For."""
    out = []
    for i in range(count):
        status, _, headers = _call(f"{hosts[i % 2].base}/upload-excel", data=b"",
                                   headers={"Content-Type": "multipart/form-data; boundary=x",
                                            "X-Forwarded-For": f"203.0.113.{i + 1}"})
        out.append((status, headers))
    return out


def _kill_run(pid: int) -> None:
    """Kill a retraining child this test started, if it still runs (never a process that reused its pid)."""
    try:
        process = psutil.Process(pid)
        if "retraining.job" in " ".join(process.cmdline()):
            process.kill()
    except psutil.Error:
        pass


@pytest.mark.slow
def test_two_hosts_share_the_schedule_the_run_lock_the_limits_and_survive_redis_and_a_host_dying(
        workspace, training_file, redis_server, redis_url, tmp_path) -> None:
    _set_created_at(workspace, datetime(2020, 1, 1, tzinfo=UTC))  # this quarter's run was missed
    env = {**{k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")},
           "WEB_CONCURRENCY": "2", "MODEL_DIR": str(workspace["model"]),
           "PERSONA_PATH": str(workspace["model"] / "cluster_personas.pkl"),
           "PRODUCTION_MODELS_DIR": str(workspace["production_models"]), "UPLOAD_DIR": str(workspace["uploads"]),
           "BASE_DATA_DIR": str(workspace["base_data"]), "SAMPLE_DATA_PATH": str(training_file),
           "REDIS_URL": redis_url, "REDIS_TIMEOUT_S": "0.3", "RETRAIN_ENABLED": "true",
           "RETRAIN_LEASE_S": str(LEASE_S), "RETRAIN_CATCHUP_DELAY_S": "1", "ADMIN_TOKEN": TOKEN,
           "RATE_LIMIT_UPLOAD_PER_MINUTE": str(UPLOAD_LIMIT), "TRUSTED_PROXIES": "0",
           "MODEL_RELOAD_INTERVAL_S": "0.5", "LOG_LEVEL": "INFO", "LOG_FORMAT": "text",
           "PYTHONPATH": str(PROJECT_ROOT)}
    first_version = releases.live_release_dir(workspace["model"]).name  # before the catch-up can replace it
    hosts = [Host(name, tmp_path, workspace, env) for name in ("host-a", "host-b")]
    a, b = hosts
    children: list[int] = []
    try:
        wait_for(lambda: all(len(h.serving()) == 2 for h in hosts) or any(h.master.poll() is not None
                                                                         for h in hosts), timeout_s=120, every_s=0.5)
        assert all(h.master.poll() is None for h in hosts), a.text()[-2000:] + b.text()[-2000:]

        # One leader for four workers; the missed run is caught up once, whichever host leads.
        wait_for(lambda: sum(len(h.leaders()) for h in hosts) == 1, timeout_s=20)
        catch_up = wait_for(lambda: [pid for h in hosts for pid in h.started_runs()], timeout_s=30)
        children += catch_up
        status = wait_for(lambda: (s := a.admin("GET", "/admin/retrain/status")[1])["state"] != "running" and s,
                          timeout_s=120, every_s=0.5)
        assert status["state"] == "succeeded", status
        time.sleep(TAKEOVER_POLL_S + 1)
        assert sum(len(h.started_runs()) for h in hosts) == 1 and sum(len(h.leaders()) for h in hosts) == 1
        caught_up = status["report"]["version"]
        wait_for(lambda: all(set(h.serving().values()) == {caught_up} for h in hosts), timeout_s=15)
        assert caught_up != first_version

        # A retrain triggered on A: B reports it and refuses a second; both swap under load with no failure.
        load = Load(hosts)
        time.sleep(1)
        started, body, _ = a.admin("POST", "/admin/retrain")
        assert started == 202, body
        children.append(body["pid"])
        on_b = b.admin("GET", "/admin/retrain/status")[1]
        second = b.admin("POST", "/admin/retrain")
        assert on_b["state"] == "running" and second[0] == 409 and second[1]["error"]["code"] == "conflict"
        status = wait_for(lambda: (s := b.admin("GET", "/admin/retrain/status")[1])["state"] != "running" and s,
                          timeout_s=120, every_s=0.5)
        assert status["state"] == "succeeded", status
        new_version = status["report"]["version"]
        finished_at = time.monotonic()
        wait_for(lambda: all(set(h.serving().values()) == {new_version} for h in hosts), timeout_s=15, every_s=0.1)
        both_serve_s = time.monotonic() - finished_at
        time.sleep(1)
        statuses = load.stop()
        versions = Counter(v for _, _, v, _ in load.results)
        per_host = Counter(name for name, _, _, _ in load.results)
        print(f"swap over two hosts: {len(load.results)} requests {dict(per_host)}, statuses {dict(statuses)}, "
              f"versions {dict(versions)}; both hosts on the new release {both_serve_s:.2f} s after the run ended")
        assert statuses == {200: len(load.results)} and min(per_host.values()) >= 10
        assert {caught_up, new_version} <= set(versions)
        assert both_serve_s < 5

        # One upload limit across both hosts and four workers; a spoofed X-Forwarded-For is not a new client.
        answers = _uploads(hosts, UPLOAD_LIMIT + 2)
        assert [s for s, _ in answers] == [422] * UPLOAD_LIMIT + [429, 429]
        assert all(0 < int(h["Retry-After"]) <= 60 and h["X-RateLimit-Limit"] == str(UPLOAD_LIMIT)
                   for _, h in answers[UPLOAD_LIMIT:])

        # Redis stopped under load: no 5xx, /health on both hosts says so, no retrain starts.
        load = Load(hosts)
        time.sleep(1)
        redis_server.stop()
        stopped_at = time.monotonic()
        time.sleep(2)
        healths = [_call(f"{h.base}/health") for h in hosts for _ in range(4)]
        refused = a.admin("POST", "/admin/retrain")
        time.sleep(1)
        statuses = load.stop()
        down = [s for _, s, _, at in load.results if at > stopped_at]
        print(f"redis stopped under load: {len(load.results)} requests, statuses {dict(statuses)}, "
              f"{len(down)} while down")
        assert statuses == {200: len(load.results)} and len(down) >= 10
        assert {(s, body["redis"]["status"]) for s, body, _ in healths} == {(200, "unavailable")}
        assert refused[0] == 503 and "Redis" in refused[1]["error"]["message"]

        # Redis back (empty, as after a crash): lease, run lock, limits and cache work again, no restart.
        redis_server.start()
        wait_for(lambda: all(_call(f"{h.base}/health")[1]["redis"]["status"] == "ok" for h in hosts for _ in range(4)),
                 timeout_s=10)
        wait_for(lambda: sum(len(h.leaders()) for h in hosts) == 1, timeout_s=LEASE_S + TAKEOVER_POLL_S + 5)
        answers = _uploads(hosts, UPLOAD_LIMIT + 1)
        assert [s for s, _ in answers] == [422] * UPLOAD_LIMIT + [429]
        promo = {"objective": "Back again", "industry": "Retail", "funnel_stage": "Awareness", "past_engagement": "Low"}
        assert not _call(f"{a.base}/generate-promo", promo)[1]["content"]["cached"]
        assert all(_call(f"{h.base}/generate-promo", promo)[1]["content"]["cached"] for h in hosts for _ in range(2))
        started, body, _ = b.admin("POST", "/admin/retrain")
        assert started == 202, body
        children.append(body["pid"])
        assert a.admin("POST", "/admin/retrain")[0] == 409
        _kill_run(body["pid"])  # not needed further

        # The leader host dies: the other host takes the schedule over once the lease expires.
        leader_host = next(h for h in hosts if h.leaders())
        other = b if leader_host is a else a
        leader_host.kill()
        killed_at = time.monotonic()
        wait_for(lambda: other.leaders(), timeout_s=LEASE_S + TAKEOVER_POLL_S + 10, every_s=0.1)
        takeover_s = time.monotonic() - killed_at
        print(f"leader host killed: {other.name} leads {takeover_s:.2f} s later (bound {LEASE_S + TAKEOVER_POLL_S} s)")
        assert takeover_s <= LEASE_S + TAKEOVER_POLL_S + 1
        assert _call(f"{other.base}/health")[0] == 200
    finally:
        if not redis_server.running:
            redis_server.start()
        for host in hosts:
            host.stop()
        for pid in children:
            _kill_run(pid)

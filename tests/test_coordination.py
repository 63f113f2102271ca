"""Several hosts' coordination on a real Redis, in one process: leases, leader election, exactly-once
fires, shared status and 409s, shared rate limits, and Redis outages. Real gunicorn hosts: test_several_hosts."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portal.coordination import redis_link
from portal.coordination.lease import Lease
from portal.coordination.redis_link import RedisLink
from portal.settings import load_settings
from retraining import scheduler as retrain_scheduler
from retraining.status import RUNNING, SUCCEEDED, retrain_state
from tests.conftest import make_settings_overrides
from tests.helpers import wait_for
from tests.test_retraining import _set_created_at

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMPAIGN = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
            "past_engagement": "Low"}


def _settings(workspace: dict[str, Path], redis_url: str, **extra):
    overrides = make_settings_overrides(workspace, redis_url=redis_url, **extra)
    overrides.pop("start_background")
    return load_settings(**overrides)


# -- the lease ---------------------------------------------------------------------------------

def test_a_lease_has_one_holder_and_expires_unless_kept(redis_url) -> None:
    link = RedisLink(redis_url, 0.5)
    first, second = Lease(link, "t:lease", ttl_s=1.0), Lease(link, "t:lease", ttl_s=1.0)
    assert first.acquire() and not second.acquire()
    assert second.is_locked_elsewhere()
    time.sleep(1.2)  # not renewed: gone
    assert not first.still_held() and second.acquire()

    second.keep()
    time.sleep(2.0)  # two TTLs, renewed every third
    assert second.still_held() and not first.acquire()
    second.release()
    assert first.acquire()
    first.release()


def test_a_child_adopts_the_token_and_keeps_the_lease(redis_url) -> None:
    link = RedisLink(redis_url, 0.5)
    parent = Lease(link, "t:run", ttl_s=1.0)
    assert parent.acquire()
    token = parent.token
    parent.hand_over()
    child = Lease(RedisLink(redis_url, 0.5), "t:run", ttl_s=1.0, token=token)
    assert child.acquire()  # confirms the token by renewing it
    child.keep()
    time.sleep(1.5)
    assert child.still_held() and not Lease(link, "t:run", ttl_s=1.0).acquire()
    child.release()
    assert not Lease(link, "t:run", ttl_s=1.0).is_locked_elsewhere()


def test_a_handed_over_lease_outlives_a_slow_child_start_and_ends_with_the_child(redis_url, caplog) -> None:
    link = RedisLink(redis_url, 0.5)
    parent = Lease(link, "t:slow", ttl_s=1.0)
    assert parent.acquire()
    token = parent.token
    child_running = threading.Event()
    child_running.set()
    parent.hand_over(while_alive=child_running.is_set)
    assert parent.token is None and not parent.held
    time.sleep(2.5)  # the child is still importing: two and a half TTLs before its first renewal
    assert Lease(link, "t:slow", ttl_s=1.0).is_locked_elsewhere()
    child = Lease(RedisLink(redis_url, 0.5), "t:slow", ttl_s=1.0, token=token)
    with caplog.at_level(logging.WARNING, logger="portal.coordination.lease"):
        assert child.acquire()
        child.keep()
        time.sleep(0.5)
        child.release()  # the run ends; the parent's next renewal finds the lease gone and stops quietly
        time.sleep(0.6)
        other = Lease(link, "t:slow", ttl_s=1.0)
        assert other.acquire()
        time.sleep(0.6)  # still running in the parent, it cannot renew another holder's token
        assert other.still_held() and other.token != token
        other.release()
    assert not [r for r in caplog.records if "lost" in r.getMessage()]


def test_a_handed_over_lease_is_renewed_only_while_the_child_lives(redis_url) -> None:
    link = RedisLink(redis_url, 0.5)
    without, with_child = Lease(link, "t:plain", ttl_s=1.0), Lease(link, "t:child", ttl_s=1.0)
    assert without.acquire() and with_child.acquire()
    child_running = threading.Event()
    child_running.set()
    without.hand_over()
    with_child.hand_over(while_alive=child_running.is_set)
    time.sleep(1.3)
    assert not Lease(link, "t:plain", ttl_s=1.0).is_locked_elsewhere()  # nobody renewed it
    assert Lease(link, "t:child", ttl_s=1.0).is_locked_elsewhere()
    child_running.clear()  # the child died without releasing: the lease expires within its TTL
    time.sleep(1.6)
    assert not Lease(link, "t:child", ttl_s=1.0).is_locked_elsewhere()


def test_a_holder_that_cannot_reach_redis_gives_the_lease_up_before_it_expires(redis_server, redis_url) -> None:
    lease = Lease(RedisLink(redis_url, 0.2), "t:lost", ttl_s=1.5)
    lost = []
    assert lease.acquire()
    lease.keep(on_lost=lambda: lost.append(time.monotonic()))
    acquired_at = time.monotonic()
    redis_server.stop()
    wait_for(lambda: lost, timeout_s=5, every_s=0.05)
    assert lost[0] - acquired_at < 1.5  # before Redis itself would have expired it
    assert not lease.held


# -- leader election and exactly-once fires ----------------------------------------------------

def test_two_hosts_elect_one_leader_and_the_other_takes_over(workspace, redis_url) -> None:
    hosts = [retrain_scheduler.RetrainScheduler(_settings(workspace, redis_url, retrain_enabled=True,
                                                          retrain_lease_s=3)) for _ in range(2)]
    for host in hosts:
        host.start()
    try:
        wait_for(lambda: any(h.role == "leader" for h in hosts), timeout_s=10)
        time.sleep(retrain_scheduler.TAKEOVER_POLL_S + 0.5)
        leaders = [h for h in hosts if h.role == "leader"]
        assert len(leaders) == 1
        standby = hosts[1 - hosts.index(leaders[0])]
        leaders[0].stop()  # a clean stop frees the lease: takeover within one poll
        stopped_at = time.monotonic()
        wait_for(lambda: standby.role == "leader", timeout_s=10, every_s=0.05)
        assert time.monotonic() - stopped_at < retrain_scheduler.TAKEOVER_POLL_S + 1
    finally:
        for host in hosts:
            host.stop()


def test_a_leader_that_loses_its_lease_steps_down_and_is_elected_again(workspace, redis_server, redis_url) -> None:
    host = retrain_scheduler.RetrainScheduler(_settings(workspace, redis_url, retrain_enabled=True,
                                                        retrain_lease_s=3, redis_timeout_s=0.2))
    host.start()
    try:
        wait_for(lambda: host.role == "leader", timeout_s=10)
        redis_server.stop()
        wait_for(lambda: host.role == "standby", timeout_s=10, every_s=0.1)
        assert host._scheduler is None  # no schedule runs without the lease
        redis_server.start()
        wait_for(lambda: host.role == "leader", timeout_s=15, every_s=0.1)
    finally:
        host.stop()


def test_a_fire_runs_once_whichever_hosts_fire_it(workspace, redis_url, monkeypatch) -> None:
    """Two leaders at once (a split brain) or a late second fire: one run for one due time."""
    spawned = []

    class Child:
        def __init__(self, args, **kwargs) -> None:
            self.pid, self.args = 4242 + len(spawned), args
            spawned.append(self)

        def wait(self) -> int:
            return 0

        def poll(self) -> int | None:  # still running: the worker renews its lease until it is released or gone
            return None

    monkeypatch.setattr(retrain_scheduler.subprocess, "Popen", Child)
    host_a, host_b = (_settings(workspace, redis_url, retrain_enabled=True) for _ in range(2))
    retrain_scheduler._scheduled_job(host_a)
    retrain_scheduler._scheduled_job(host_b)  # while A's run holds the run lease: skipped (409)
    assert len(spawned) == 1 and "--lease-token" in spawned[0].args

    state = retrain_state(host_a)
    assert state.read_status()["state"] == RUNNING  # as any host sees it
    token = spawned[0].args[spawned[0].args.index("--lease-token") + 1]
    run = state.adopt_run_lock(token=token)
    assert run.acquire()
    state.write_status({"state": SUCCEEDED, "report": {"finished_at": datetime.now(UTC).isoformat()}})
    run.release()
    retrain_scheduler._scheduled_job(host_b)  # late: a run has finished since the fire was due
    assert len(spawned) == 1


def test_the_catch_up_runs_once_across_hosts(workspace, redis_url, monkeypatch) -> None:
    launched = []
    monkeypatch.setattr(retrain_scheduler, "launch_retraining",
                        lambda settings, **kw: launched.append(kw) or None)
    _set_created_at(workspace, datetime(2020, 1, 1, tzinfo=UTC))
    settings = _settings(workspace, redis_url, retrain_enabled=True, retrain_catchup_delay_s=1)
    hosts = [retrain_scheduler.RetrainScheduler(settings) for _ in range(2)]
    for host in hosts:
        host.start()
    try:
        wait_for(lambda: launched, timeout_s=10)
        time.sleep(2)
        assert len(launched) == 1 and [h.role for h in hosts].count("leader") == 1
        assert launched[0]["unless_finished_since"] <= datetime.now(UTC)
    finally:
        for host in hosts:
            host.stop()


# -- admin routes across hosts -----------------------------------------------------------------

def test_status_and_409_are_the_same_on_every_host(workspace, make_app, redis_url, monkeypatch) -> None:
    class Child:
        pid = 4242

        def __init__(self, *args, **kwargs) -> None:
            pass

        def wait(self) -> int:
            return 0

        def poll(self) -> int | None:  # still running: the worker renews its lease until it is released or gone
            return None

    monkeypatch.setattr(retrain_scheduler.subprocess, "Popen", Child)
    host_a = make_app(admin_token=TOKEN, redis_url=redis_url).test_client()
    host_b = make_app(admin_token=TOKEN, redis_url=redis_url).test_client()
    assert host_a.post("/admin/retrain", headers=AUTH).status_code == 202
    status = host_b.get("/admin/retrain/status", headers=AUTH).get_json()
    assert status["state"] == RUNNING and status["host"]
    refused = host_b.post("/admin/retrain", headers=AUTH)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "conflict"

    state = retrain_state(_settings(workspace, redis_url))
    state.link.client.delete(state.RUN)  # the child died: its lease is gone
    status = host_b.get("/admin/retrain/status", headers=AUTH).get_json()
    assert status["state"] == "failed" and "killed or crashed" in status["reason"]


def test_without_redis_no_retrain_starts_and_the_answer_says_why(make_app, redis_server, redis_url) -> None:
    client = make_app(admin_token=TOKEN, redis_url=redis_url, redis_timeout_s=0.2).test_client()
    redis_server.stop()
    for method, path in (("post", "/admin/retrain"), ("get", "/admin/retrain/status")):
        response = getattr(client, method)(path, headers=AUTH)
        body = response.get_json()
        assert response.status_code == 503 and body["error"]["code"] == "service_unavailable"
        assert "Redis" in body["error"]["message"] and "retry" in body["error"]["message"]


# -- rate limits and health --------------------------------------------------------------------

def test_the_limit_is_one_count_across_workers(make_app, redis_url) -> None:
    workers = [make_app(redis_url=redis_url, rate_limit_per_minute=3).test_client() for _ in range(2)]
    statuses = [workers[i % 2].post("/generate-promo", json=CAMPAIGN).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.parametrize(("fail_open", "while_down"), [(True, 200), (False, 503)])
def test_redis_down_fails_open_or_closed_and_resumes(make_app, redis_server, redis_url, fail_open,
                                                     while_down) -> None:
    client = make_app(redis_url=redis_url, rate_limit_per_minute=2, rate_limit_fail_open=fail_open,
                      redis_timeout_s=0.2).test_client()
    assert client.get("/health").get_json()["redis"] == {"status": "ok", "reason": None}
    redis_server.stop()
    statuses = [client.post("/generate-promo", json=CAMPAIGN).status_code for _ in range(4)]
    health = client.get("/health")
    assert statuses == [while_down] * 4
    assert health.status_code == 200 and health.get_json()["redis"]["status"] == "unavailable"
    assert "Connection" in health.get_json()["redis"]["reason"]

    redis_server.start()
    time.sleep(redis_link.RETRY_AFTER_S)
    assert client.get("/health").get_json()["redis"]["status"] == "ok"
    assert [client.post("/generate-promo", json=CAMPAIGN).status_code for _ in range(3)] == [200, 200, 429]


def test_a_frozen_redis_costs_a_bounded_wait_not_an_outage(make_app, redis_server, redis_url) -> None:
    client = make_app(redis_url=redis_url, rate_limit_per_minute=100, redis_timeout_s=0.3).test_client()
    assert client.post("/generate-promo", json=CAMPAIGN).status_code == 200
    redis_server.pause()
    try:
        started = time.perf_counter()
        statuses = [client.post("/generate-promo", json={**CAMPAIGN, "objective": f"Sales {i}"}).status_code
                    for i in range(10)]
        elapsed = time.perf_counter() - started
    finally:
        redis_server.resume()
    assert statuses == [200] * 10
    assert elapsed < 10 * 0.3  # well under one timeout per request: the link skips Redis once it knows


def test_without_redis_url_health_says_not_configured(client) -> None:
    assert client.get("/health").get_json()["redis"] == {"status": "not configured", "reason": None}


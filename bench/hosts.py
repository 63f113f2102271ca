"""Section `hosts`: /generate-promo on 2 hosts x 2 workers vs 1 host x 2 workers (one Redis, shared
folders, all on this machine's loopback), and what the Redis round-trips of limiter + cache cost."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.api import GUNICORN, _bodies, _free_port, _load, _settings_env, _workspace
from bench.common import ROOT, Context, Table, child_env, fmt, median, secs

#: A limit no bench client reaches, so the limiter counts every request without refusing any.
UNREACHED_LIMIT = "1000000"


class _Redis:
    """A throwaway redis-server on a free loopback port, persistence off."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (`make bench` installs it)")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _start_host(ctx: Context, name: str, dirs: dict[str, Path], extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cwd = ctx.workdir / "hosts" / name
    cwd.mkdir(parents=True, exist_ok=True)
    env = child_env(PORT=str(port), WEB_CONCURRENCY="2", LOG_LEVEL="WARNING", **_settings_env(dirs), **extra)
    with (cwd / "gunicorn.log").open("w") as log:
        master = subprocess.Popen([*GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}"],
                                  cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT)
    return master, f"http://127.0.0.1:{port}"


def _healthy(masters: list[subprocess.Popen], bases: list[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(bases)
    while pending:
        if any(m.poll() is not None for m in masters):
            raise RuntimeError("a gunicorn host exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"hosts not healthy within {timeout_s} s: {sorted(pending)}")
        for base in list(pending):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        pending.discard(base)
            except (OSError, urllib.error.HTTPError):
                pass
        time.sleep(0.1)


def _stop(masters: list[subprocess.Popen]) -> None:
    for master in masters:
        master.send_signal(signal.SIGTERM)
    for master in masters:
        try:
            master.wait(timeout=40)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


def _spread_load(bases: list[str], bodies: list[dict], threads: int) -> dict[str, Any]:
    """The api section's load, its client threads split evenly over the hosts."""
    import threading

    results: list[dict[str, Any]] = [{} for _ in bases]
    share = [bodies[i::len(bases)] for i in range(len(bases))]
    started = time.perf_counter()
    pool = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, _load(f"{bases[i]}/generate-promo", share[i], max(1, threads // len(bases))))) for i in range(len(bases))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    n = sum(r["n"] for r in results)
    return {"n": n, "rps": n / wall, "p50": max(r["p50"] for r in results), "p99": max(r["p99"] for r in results),
            "failures": sum(len(r["failures"]) for r in results)}


def _run_setup(ctx: Context, release: str, hosts: int, extra: dict[str, str], total: int, threads: int,
               label: str) -> dict[str, Any]:
    dirs = _workspace(ctx, f"hosts_{label}", release)  # shared by every host of this setup
    started = [_start_host(ctx, f"{label}-{i}", dirs, extra) for i in range(hosts)]
    masters, bases = [m for m, _ in started], [b for _, b in started]
    try:
        _healthy(masters, bases)
        _spread_load(bases, _bodies(4 * hosts, distinct=True), 2 * hosts)  # every worker warm
        return _spread_load(bases, _bodies(total, distinct=True), threads)
    finally:
        _stop(masters)


def _round_trips(url: str, rounds: int) -> dict[str, float]:
    """What one limited, cached generation request asks of Redis, timed alone on loopback."""
    import redis
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    pool = redis.ConnectionPool.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    client = redis.Redis(connection_pool=pool)
    limiter = MovingWindowRateLimiter(storage_from_string(url, connection_pool=pool))
    limit = parse(f"{UNREACHED_LIMIT}/minute")
    timings: dict[str, list[float]] = {"limiter hit": [], "limiter window (headers)": [], "cache get (miss)": [],
                                       "cache set": []}
    body = '{"variants": [' + ",".join(['{"text": "' + "x" * 400 + '"}'] * 3) + "]}"
    for i in range(rounds):
        key = f"portal:content:bench{i}"
        for name, call in (("limiter hit", lambda: limiter.hit(limit, "bench", "generation")),
                           ("limiter window (headers)", lambda: limiter.get_window_stats(limit, "bench", "generation")),
                           ("cache get (miss)", lambda k=key: client.get(k)),
                           ("cache set", lambda k=key: client.set(k, body, ex=60))):
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return {name: median(values) for name, values in timings.items()}


def run(ctx: Context) -> list[Table]:
    release = ctx.fitted("ours", 2000 if ctx.quick else 5000, 42)["release"]
    threads, total = (4, 80) if ctx.quick else (8, 400)
    redis_server = _Redis(ctx.workdir / "redis")
    try:
        shared = {"REDIS_URL": redis_server.url, "RATE_LIMIT_PER_MINUTE": UNREACHED_LIMIT}
        setups = [("1 host x 2 workers, no Redis (memory limiter + cache)", 1,
                   {"RATE_LIMIT_PER_MINUTE": UNREACHED_LIMIT}, "local"),
                  ("1 host x 2 workers, Redis limiter + cache", 1, shared, "one"),
                  ("2 hosts x 2 workers, Redis limiter + cache", 2, shared, "two")]
        rows = [(name, _run_setup(ctx, release, hosts, extra, total, threads, label))
                for name, hosts, extra, label in setups]
        trips = _round_trips(redis_server.url, 200 if ctx.quick else 2000)
    finally:
        redis_server.stop()

    load = Table(f"hosts: POST /generate-promo, {threads} client threads spread over the hosts, distinct requests",
                 ["setup", "n", "p50 (worst host)", "p99 (worst host)", "req/s", "failed"])
    for name, r in rows:
        load.add(name, r["n"], secs(r["p50"]), secs(r["p99"]), fmt(r["rps"], 1), r["failures"])
    load.notes += ["every host is a gunicorn master (WEB_CONCURRENCY=2, gthread x4) in its own working folder; the "
                   "hosts of a setup share MODEL_DIR, PRODUCTION_MODELS_DIR, UPLOAD_DIR, BASE_DATA_DIR and one "
                   "redis-server, all on this machine's loopback, so two hosts share its cores: the figure is the "
                   "coordination overhead, not the scale-out a second machine would give",
                   f"RATE_LIMIT_PER_MINUTE={UNREACHED_LIMIT}: the limiter counts every request and refuses none; "
                   "bodies as in the api section (audience fields, objective varies so nothing is a cache hit)"]
    cost = Table("hosts: Redis round-trips of one limited, cached generation request (loopback, median)",
                 ["operation", "median", "per request"])
    for name, seconds in trips.items():
        cost.add(name, f"{seconds * 1e6:.0f} µs", "1")
    cost.add("total", f"{sum(trips.values()) * 1e6:.0f} µs", "4 round-trips")
    cost.notes += ["the same calls the service makes per /generate-promo with REDIS_URL and a rate limit: "
                   "Flask-Limiter's moving-window hit and window stats (for X-RateLimit-*), then the cache read "
                   "and, on a miss, the write; compare with the p50 difference between the first two setups above"]
    return [load, cost]

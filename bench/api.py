"""Section `api`: /upload-excel end to end (Flask test client) and /generate-promo under load (real gunicorn)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    NEW_ROWS_SEED,
    ROOT,
    Context,
    Table,
    child_env,
    fmt,
    median,
    percentile,
    run_child,
    secs,
)

GUNICORN = [sys.executable, "-m", "gunicorn"]  # the running interpreter's, whichever venv it is
SERVING = re.compile(r"serving model \S+ \(loaded in ([\d.]+)s, warm-up ([\d.]+)s\)")


def _workspace(ctx: Context, name: str, release: str) -> dict[str, Path]:
    """A temp MODEL_DIR / PRODUCTION_MODELS_DIR / UPLOAD_DIR / BASE_DATA_DIR serving a copy of ``release``."""
    from portal.segmentation import releases

    root = ctx.workdir / name
    dirs = {k: root / k for k in ("model", "production_models", "uploads", "base_data")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    copy = dirs["production_models"] / Path(release).name
    if not copy.exists():
        shutil.copytree(release, copy)
    releases.set_live(dirs["model"], copy)
    return dirs


def _settings_env(dirs: dict[str, Path]) -> dict[str, str]:
    return {"MODEL_DIR": str(dirs["model"]), "PERSONA_PATH": str(dirs["model"] / "cluster_personas.pkl"),
            "PRODUCTION_MODELS_DIR": str(dirs["production_models"]), "UPLOAD_DIR": str(dirs["uploads"]),
            "BASE_DATA_DIR": str(dirs["base_data"]), "RETRAIN_ENABLED": "false"}


# -- /upload-excel ------------------------------------------------------------------------------

def child_upload(workspace: dict[str, str], file: str, runs: int) -> dict[str, Any]:
    """Upload one file ``runs`` times through the Flask test client (offline provider)."""
    import io

    from app import create_app

    dirs = {k: Path(v) for k, v in workspace.items()}
    app = create_app({"model_dir": dirs["model"], "production_models_dir": dirs["production_models"],
                      "upload_dir": dirs["uploads"], "base_data_dir": dirs["base_data"],
                      "retrain_enabled": False,
                      "openai_api_key": None, "redis_url": None, "max_upload_mb": 100, "start_background": False})
    app.extensions["portal"].models.reload_if_changed()  # load and warm up, as a worker does at start
    client = app.test_client()
    data = Path(file).read_bytes()
    out: dict[str, Any] = {"bytes": len(data), "runs": []}
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post("/upload-excel", data={"file": (io.BytesIO(data), Path(file).name)},
                               content_type="multipart/form-data")
        wall = time.perf_counter() - started
        body = response.get_json()
        if response.status_code != 200:
            raise RuntimeError(f"upload answered {response.status_code}: {json.dumps(body)[:500]}")
        out["runs"].append({"wall_s": wall, "placement_ms": body["timings_ms"]["placement"],
                            "server_total_ms": body["timings_ms"]["total"], "rows_used": body["rows"]["used"],
                            "segments": len(body["segments"]), "provider": body["segments"][0]["content"]["provider"]})
    return out


def _upload_table(ctx: Context, release: str) -> Table:
    sizes = [2000] if ctx.quick else [5000, 100_000]
    table = Table("api: POST /upload-excel end to end (Flask test client, offline provider)",
                  ["rows", "file MB", "first upload", "later uploads (median)", "of which read+place (first)",
                   "segments", "peak RSS MB"])
    for rows in sizes:
        file = ctx.customer_file(rows, NEW_ROWS_SEED, fmt="xlsx")
        dirs = _workspace(ctx, "api_upload", release)
        runs = 1 if ctx.quick else (3 if rows <= 10_000 else 2)
        child = run_child("bench.api:child_upload", {"workspace": {k: str(v) for k, v in dirs.items()},
                                                     "file": str(file), "runs": runs}, timeout_s=3600)
        v = child.value
        first, later = v["runs"][0], v["runs"][1:]
        table.add(rows, fmt(v["bytes"] / 2**20, 1), secs(first["wall_s"]),
                  secs(median([r["wall_s"] for r in later])) if later else "—",
                  secs(first["placement_ms"] / 1000), first["segments"], fmt(child.peak_mb, 0))
    table.notes += [
        "Flask test client in a fresh process (create_app, model loaded and warmed up first); no HTTP server, so "
        "network and multipart parsing by gunicorn are not included",
        f"file: generate_customers(rows, seed={NEW_ROWS_SEED}) as .xlsx with names, emails, phones and notes; "
        "MAX_UPLOAD_MB raised to 100 for the bench",
        "each upload reads the file, validates rows, places every customer, generates offline content per segment, "
        "stores the upload and writes the retraining snapshot; 'read+place' is the server's own timings_ms.placement",
        "later uploads of the same file answer repeated unseen keys from the remembered-key cache",
        "peak RSS: ru_maxrss of the child",
    ]
    return table


# -- /generate-promo under gunicorn -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _bodies(count: int, distinct: bool) -> list[dict]:
    """Smart-form bodies with audience fields from new customers; distinct objectives defeat the cache."""
    from portal.segmentation.sample_data import generate_customers

    customers, _ = generate_customers(max(count, 50), seed=NEW_ROWS_SEED)
    bodies = []
    for i in range(count):
        row = customers.iloc[i if distinct else i % 10]
        joined = row["Date Joined"]
        bodies.append({"objective": f"Increase sales {i}" if distinct else "Increase sales",
                       "industry": "Retail", "funnel_stage": "Consideration", "past_engagement": "Medium",
                       "prefer_output": "text", "location": row["Location"], "gender": row["Gender"],
                       "loyalty_tier": row["Loyalty Tier"], "join_year": int(joined.year),
                       "join_month": int(joined.month)})
    return bodies


def _load(url: str, bodies: list[dict], threads: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures, cached = [], 0
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def worker() -> None:
        nonlocal cached
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop()
            started = time.perf_counter()
            try:
                status, payload = _post(url, body)
            except OSError as exc:
                status, payload = type(exc).__name__, {}
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    failures.append(status)
                elif payload.get("content", {}).get("cached"):
                    cached += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies),
            "rps": len(latencies) / wall, "failures": failures, "cached": cached, "n": len(latencies)}


def _promo_tables(ctx: Context, release: str) -> list[Table]:
    threads = 4 if ctx.quick else 8
    total = 60 if ctx.quick else 400
    dirs = _workspace(ctx, "api_gunicorn", release)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = ctx.workdir / "gunicorn.log"
    env = child_env(PORT=str(port), WEB_CONCURRENCY="2", LOG_LEVEL="INFO", **_settings_env(dirs))
    with log_path.open("w") as log:
        spawned = time.perf_counter()
        master = subprocess.Popen([*GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}"],
                                  cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        healthy_s = None
        while time.perf_counter() - spawned < 120:
            if master.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {master.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        healthy_s = time.perf_counter() - spawned
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.1)
        if healthy_s is None:
            raise RuntimeError(f"gunicorn not healthy within 120 s; see {log_path}")
        url = f"{base}/generate-promo"
        sequential = []
        for body in _bodies(3, distinct=True):
            started = time.perf_counter()
            status, _ = _post(url, body)
            sequential.append((time.perf_counter() - started, status))
        runs = {"distinct requests (no cache hits)": _load(url, _bodies(total, distinct=True)[3:], threads),
                "10 repeated requests (cache hits)": _load(url, _bodies(total, distinct=False), threads)}
        workers = [child.pid for child in psutil.Process(master.pid).children()]
        peaks = [p for p in (_vm_hwm_mb(pid) for pid in workers) if p is not None]
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=40)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()

    loaded = SERVING.findall(log_path.read_text(errors="replace"))
    start = Table("api: gunicorn start (2 workers, gthread x4) and first requests",
                  ["spawn -> /health 200", "1st /generate-promo", "2nd", "3rd", "per worker: load / warm-up",
                   "worker peak RSS MB"])
    start.add(secs(healthy_s), *(secs(t) + ("" if s == 200 else f" ({s})") for t, s in sequential),
              ", ".join(f"{a} s / {b} s" for a, b in loaded) or "—", " / ".join(fmt(p, 0) for p in peaks))
    start.notes += ["gunicorn -c gunicorn.conf.py -b 127.0.0.1:<free port>, WEB_CONCURRENCY=2, RETRAIN_ENABLED=false, "
                    "a temp workspace holding a copy of this run's bundled-style release (5k rows; 2k in --quick); "
                    "numba cache warm (NUMBA_CACHE_DIR)",
                    "1st-3rd: sequential requests right after /health turned 200 (distinct bodies); load / warm-up: "
                    "from each worker's 'serving model' log line (a worker serves from its key table while its "
                    "numba warm-up runs; a request with an unseen key before warm-up ends waits for the compile)",
                    "worker peak RSS: VmHWM of each worker from /proc at the end of the load test",
                    "target (issue 3): healthy <= 10 s once the machine has run it before; first request no slower "
                    "than the next"]
    load = Table(f"api: POST /generate-promo under load ({threads} client threads, offline provider, real gunicorn)",
                 ["requests", "n", "p50", "p99", "max", "req/s", "failed", "cached"])
    for name, r in runs.items():
        load.add(name, r["n"], secs(r["p50"]), secs(r["p99"]), secs(r["max"]), fmt(r["rps"], 1),
                 len(r["failures"]), r["cached"])
    load.notes += ["bodies carry audience fields (location, gender, tier, join month/year) of new customers, so each "
                   "request is placed by the pipeline; client: urllib, one connection per request, on 127.0.0.1",
                   "distinct: objective varies per request (every request generates); repeated: 10 bodies cycled, "
                   "answered from each worker's in-process cache after their first call"]
    return [start, load]


def run(ctx: Context) -> list[Table]:
    release = ctx.fitted("ours", 2000 if ctx.quick else 5000, 42)["release"]
    return [_upload_table(ctx, release), *_promo_tables(ctx, release)]

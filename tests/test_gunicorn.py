"""A real gunicorn with two workers: a release swap under load fails no request and reaches every worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from portal.segmentation import releases
from portal.settings import PROJECT_ROOT
from tests.helpers import wait_for
from tests.test_releases import copy_release

GUNICORN = [sys.executable, "-m", "gunicorn"]  # the running interpreter's, whichever venv it is
LOCATIONS = ["Bedok", "Tampines", "Jurong West", "Woodlands", "Yishun", "Nowhere Town"]
SERVING = re.compile(r"\[(\d+)\] portal\.serving\.live_model .*serving model (\S+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _serving(log_path: Path) -> dict[int, str]:
    """Worker pid → the model version it last said it serves, from the server log."""
    return {int(pid): version for pid, version in SERVING.findall(log_path.read_text(errors="replace"))}


def _workers(master_pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(master_pid).children()}



@contextlib.contextmanager
def _gunicorn(workspace: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """Two gunicorn workers on the workspace, both serving, then stopped (process group)."""
    port = _free_port()
    log_path = tmp_path / "gunicorn.log"
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "2", "MODEL_DIR": str(workspace["model"]),
           "PERSONA_PATH": str(workspace["model"] / "cluster_personas.pkl"),
           "PRODUCTION_MODELS_DIR": str(workspace["production_models"]), "UPLOAD_DIR": str(workspace["uploads"]),
           "BASE_DATA_DIR": str(workspace["base_data"]), "RETRAIN_ENABLED": "false", "ADMIN_TOKEN": "t",
           "OPENAI_API_KEY": "", "REDIS_URL": "", "MODEL_RELOAD_INTERVAL_S": "0.5", "LOG_LEVEL": "INFO",
           "LOG_FORMAT": "text", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("REDIS_URL")
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([*GUNICORN, "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                                   "--no-control-socket"],
                                  cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_for(lambda: len(_serving(log_path)) == 2 or server.poll() is not None, timeout_s=120, every_s=0.5)
        assert server.poll() is None, log_path.read_text()[-3000:]
        workers = _workers(server.pid)
        assert set(_serving(log_path)) == workers and len(workers) == 2
        assert _call(f"http://127.0.0.1:{port}/health")[0] == 200
        yield f"http://127.0.0.1:{port}", log_path, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


Request = Callable[[int], tuple[int, dict]]


def _swap_under_load(workspace: dict[str, Path], log_path: Path, server: subprocess.Popen, new_release: Path,
                     send: Request) -> tuple[list[tuple[int, str | None, float]], float, float]:
    """Three clients send requests while the live pointer moves to ``new_release``; returns every result,
    when the swap happened and how long every worker took to serve the new release."""
    results: list[tuple[int, str | None, float]] = []
    stop = threading.Event()
    workers = _workers(server.pid)

    def client(seed: int) -> None:
        for i in range(2000):
            if stop.is_set():
                return
            try:
                status, reply = send(i + seed)
            except OSError as exc:
                status, reply = 0, {"error": str(exc)}
            results.append((status, reply.get("model_version"), time.monotonic()))

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        swapped_at = time.monotonic()
        releases.set_live(workspace["model"], new_release)
        wait_for(lambda: set(_serving(log_path).values()) == {new_release.name}, timeout_s=30, every_s=0.1)
        reload_s = time.monotonic() - swapped_at
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert set(_serving(log_path)) == _workers(server.pid) == workers  # no worker was restarted
    return results, swapped_at, reload_s


def _check_swap(results: list[tuple[int, str | None, float]], swapped_at: float, reload_s: float,
                old_version: str, new_version: str, label: str) -> None:
    statuses = Counter(status for status, _, _ in results)
    versions = Counter(version for _, version, _ in results)
    print(f"{label}: {len(results)} requests, statuses {dict(statuses)}, versions {dict(versions)}, "
          f"every worker on the new release {reload_s:.2f} s after the swap")
    assert statuses == {200: len(results)} and len(results) >= 20
    assert set(versions) == {old_version, new_version}
    assert all(version == new_version for _, version, at in results if at > swapped_at + reload_s + 0.5)
    assert reload_s < 10


@pytest.mark.slow
def test_swap_under_load_fails_no_request_and_every_worker_moves(workspace, tmp_path: Path) -> None:
    old_version = releases.live_release_dir(workspace["model"]).name
    with _gunicorn(workspace, tmp_path) as (base, log_path, server):
        def promo(i: int) -> tuple[int, dict]:
            return _call(f"{base}/generate-promo", {
                "objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
                "past_engagement": "Low", "location": LOCATIONS[i % len(LOCATIONS)],
                "gender": "Female" if i % 2 else "Male", "join_year": 2015 + i % 9, "join_month": 1 + i % 12})

        new_release = copy_release(releases.live_release_dir(workspace["model"]),
                                   workspace["production_models"], "29990101T000000Z-swapped")
        results, swapped_at, reload_s = _swap_under_load(workspace, log_path, server, new_release, promo)
        _check_swap(results, swapped_at, reload_s, old_version, new_release.name, "swap under load")
        health = [_call(f"{base}/health") for _ in range(20)]
        assert {(status, body["model_version"]) for status, body in health} == {(200, new_release.name)}


def _both_schemas_file(rows: int = 300) -> bytes:
    """One customer list holding the loyalty columns and the retail list's, readable by either model."""
    from portal.segmentation.sample_data import generate_customers
    from portal.segmentation.table_sample_data import generate_retail

    retail, _ = generate_retail(rows, seed=5)
    loyalty, _ = generate_customers(rows=rows, seed=5)
    combined = pd.concat([retail.reset_index(drop=True),
                          loyalty[["Date Joined", "Location", "Gender", "Loyalty Tier"]].reset_index(drop=True)],
                         axis=1)
    return combined.to_csv(index=False, date_format="%Y-%m-%d").encode()


def _upload(base: str, content: bytes) -> tuple[int, dict]:
    boundary = "portalboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"customers.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{base}/upload-excel", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.slow
def test_swap_to_a_release_of_another_schema_under_load_fails_no_request(workspace, tmp_path: Path) -> None:
    """Uploads, the general smart form and GET /model keep answering while the live model moves from the
    loyalty schema to a learned one; requests in flight finish on the model they started with."""
    from portal.segmentation.table_sample_data import generate_retail
    from portal.segmentation.table_training import train_table_release

    retail, _ = generate_retail(800, seed=7)
    retail_path = tmp_path / "retail.csv"
    retail.to_csv(retail_path, index=False, date_format="%Y-%m-%d")
    staging, manifest, _ = train_table_release(retail_path, workspace["production_models"],
                                               measure_stability=False)
    table_release = releases.publish_release(staging, workspace["production_models"], manifest["version"])
    content = _both_schemas_file()
    old_version = releases.live_release_dir(workspace["model"]).name
    with _gunicorn(workspace, tmp_path) as (base, log_path, server):
        def mixed(i: int) -> tuple[int, dict]:
            if i % 3 == 0:
                return _upload(base, content)
            if i % 3 == 1:
                return _call(f"{base}/generate-promo", {"objective": "Increase sales", "industry": "Retail",
                                                        "funnel_stage": "Awareness", "past_engagement": "Low"})
            return _call(f"{base}/model")

        results, swapped_at, reload_s = _swap_under_load(workspace, log_path, server, table_release, mixed)
        _check_swap(results, swapped_at, reload_s, old_version, table_release.name, "schema swap under load")
        status, model = _call(f"{base}/model")
        assert status == 200 and model["kind"] == "table"
        status, placed = _upload(base, content)
        assert status == 200 and placed["file"]["columns"].get("Membership") == "Membership"
        assert "Loyalty Tier" not in placed["file"]["columns"]

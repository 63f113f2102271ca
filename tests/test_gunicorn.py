"""A real gunicorn with two workers: a release swap under load fails no request and reaches every worker."""

from __future__ import annotations

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
from pathlib import Path

import psutil
import pytest

from portal.segmentation import releases
from portal.settings import PROJECT_ROOT
from tests.helpers import wait_for
from tests.test_model_store import copy_release

GUNICORN = Path(sys.executable).with_name("gunicorn")  # the running venv's, whichever it is
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



@pytest.mark.slow
def test_swap_under_load_fails_no_request_and_every_worker_moves(workspace, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gunicorn.log"
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "2", "MODEL_DIR": str(workspace["model"]),
           "PERSONA_PATH": str(workspace["model"] / "cluster_personas.pkl"),
           "PRODUCTION_MODELS_DIR": str(workspace["production_models"]), "UPLOAD_DIR": str(workspace["uploads"]),
           "BASE_DATA_DIR": str(workspace["base_data"]), "RETRAIN_ENABLED": "false", "ADMIN_TOKEN": "t",
           "OPENAI_API_KEY": "", "REDIS_URL": "", "MODEL_RELOAD_INTERVAL_S": "0.5", "LOG_LEVEL": "INFO",
           "LOG_FORMAT": "text", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("REDIS_URL")
    old_version = releases.live_release_dir(workspace["model"]).name
    with log_path.open("wb") as log_file:
        server = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                                   "--no-control-socket"],
                                  cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    results: list[tuple[int, str | None, float]] = []
    stop = threading.Event()

    def client(seed: int) -> None:
        for i in range(2000):
            if stop.is_set():
                return
            body = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
                    "past_engagement": "Low", "location": LOCATIONS[(i + seed) % len(LOCATIONS)],
                    "gender": "Female" if i % 2 else "Male", "join_year": 2015 + i % 9, "join_month": 1 + i % 12}
            try:
                status, reply = _call(f"{base}/generate-promo", body)
            except OSError as exc:
                status, reply = 0, {"error": str(exc)}
            results.append((status, reply.get("model_version"), time.monotonic()))

    try:
        wait_for(lambda: len(_serving(log_path)) == 2 or server.poll() is not None, timeout_s=120, every_s=0.5)
        assert server.poll() is None, log_path.read_text()[-3000:]
        workers = _workers(server.pid)
        assert set(_serving(log_path)) == workers and len(workers) == 2
        assert _call(f"{base}/health")[0] == 200

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        new_release = copy_release(releases.live_release_dir(workspace["model"]),
                                   workspace["production_models"], "29990101T000000Z-swapped")
        swapped_at = time.monotonic()
        releases.set_live(workspace["model"], new_release)
        wait_for(lambda: set(_serving(log_path).values()) == {new_release.name}, timeout_s=30, every_s=0.1)
        reload_s = time.monotonic() - swapped_at
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(60)

        statuses = Counter(status for status, _, _ in results)
        versions = Counter(version for _, version, _ in results)
        print(f"swap under load: {len(results)} requests, statuses {dict(statuses)}, versions {dict(versions)}, "
              f"every worker on the new release {reload_s:.2f} s after the swap")
        assert statuses == {200: len(results)} and len(results) >= 20
        assert set(versions) == {old_version, new_release.name}
        assert all(version == new_release.name for _, version, at in results if at > swapped_at + reload_s + 0.5)
        assert set(_serving(log_path)) == _workers(server.pid) == workers  # no worker was restarted
        health = [_call(f"{base}/health") for _ in range(20)]
        assert {(status, body["model_version"]) for status, body in health} == {(200, new_release.name)}
        assert reload_s < 10
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)

"""Retraining: schedule, leader election, missed runs, the job's safety, rollback and the admin routes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from portal.segmentation import releases
from portal.settings import PROJECT_ROOT, Settings, load_settings
from retraining import scheduler as retrain_scheduler
from retraining.job import run_retraining
from retraining.snapshots import loyalty_files
from retraining.status import FAILED, REJECTED, RUNNING, SUCCEEDED, read_status, run_lock, write_status
from tests.conftest import make_settings_overrides
from tests.helpers import wait_for
from tests.test_releases import copy_release

SGT = ZoneInfo("Asia/Singapore")
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(workspace: dict[str, Path], **extra) -> Settings:
    overrides = make_settings_overrides(workspace, **extra)
    overrides.pop("start_background")
    return load_settings(**overrides)



@pytest.fixture
def utc_process(monkeypatch: pytest.MonkeyPatch):
    """Run the test with the process's own timezone set to UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- schedule ----------------------------------------------------------------------------------

def test_quarterly_fire_times_over_two_years_are_0200_singapore_in_a_utc_process(utc_process,
                                                                                 workspace) -> None:
    settings = _settings(workspace, retrain_enabled=True)
    assert time.localtime().tm_gmtoff == 0
    trigger = retrain_scheduler.quarterly_trigger(settings)
    fire = retrain_scheduler.next_run_time(settings, now=datetime(2025, 12, 20, tzinfo=UTC))
    fires = []
    while fire is not None and len(fires) < 8:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))

    assert fires == [datetime(year, month, 1, 2, 0, tzinfo=SGT) for year in (2026, 2027) for month in (1, 4, 7, 10)]
    assert all(f.utcoffset() == timedelta(hours=8) for f in fires)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in fires[:4]] == [
        "12-31 18:00", "03-31 18:00", "06-30 18:00", "09-30 18:00"]


def test_next_run_is_none_when_retraining_is_disabled(workspace) -> None:
    assert retrain_scheduler.next_run_time(_settings(workspace, retrain_enabled=False)) is None


# -- missed runs -------------------------------------------------------------------------------

def _set_created_at(workspace, when: datetime) -> None:
    live = releases.live_release_dir(workspace["model"])
    manifest = json.loads((live / "manifest.json").read_text())
    (live / "manifest.json").write_text(json.dumps({**manifest, "created_at": when.isoformat()}))


def test_missed_run_is_detected_from_the_live_model_age(workspace) -> None:
    settings = _settings(workspace, retrain_enabled=True)
    now = datetime(2026, 11, 22, 9, 0, tzinfo=SGT)  # the quarter's run was due 2026-10-01 02:00 SGT
    _set_created_at(workspace, datetime(2026, 9, 30, 17, 59, tzinfo=UTC))
    assert retrain_scheduler.missed_run(settings, now)
    _set_created_at(workspace, datetime(2026, 9, 30, 18, 1, tzinfo=UTC))
    assert not retrain_scheduler.missed_run(settings, now)


def test_a_run_rejected_after_the_due_time_is_not_caught_up_again(workspace) -> None:
    settings = _settings(workspace, retrain_enabled=True)
    now = datetime(2026, 11, 22, 9, 0, tzinfo=SGT)
    _set_created_at(workspace, datetime(2026, 6, 1, tzinfo=UTC))
    write_status(workspace["production_models"], {"state": REJECTED, "report": {
        "finished_at": datetime(2026, 10, 1, 3, 0, tzinfo=SGT).isoformat()}})
    assert not retrain_scheduler.missed_run(settings, now)
    write_status(workspace["production_models"], {"state": FAILED, "report": {
        "finished_at": datetime(2026, 10, 1, 3, 0, tzinfo=SGT).isoformat()}})
    assert retrain_scheduler.missed_run(settings, now)


def test_leader_schedules_one_catch_up_run_when_the_quarter_was_missed(workspace, monkeypatch) -> None:
    launched = []
    monkeypatch.setattr(retrain_scheduler, "launch_retraining", lambda settings, **_: launched.append(time.time()))
    _set_created_at(workspace, datetime(2020, 1, 1, tzinfo=UTC))
    settings = _settings(workspace, retrain_enabled=True, retrain_catchup_delay_s=1)
    leader = retrain_scheduler.RetrainScheduler(settings)
    leader.start()
    try:
        wait_for(lambda: leader.role == "leader", timeout_s=10)
        assert leader._scheduler.get_job("quarterly-retrain") is not None
        wait_for(lambda: launched, timeout_s=10)
        time.sleep(1.5)
        assert len(launched) == 1
        assert leader.info()["next_run"] is not None
    finally:
        leader.stop()


def test_no_catch_up_when_the_live_model_is_recent(workspace) -> None:
    leader = retrain_scheduler.RetrainScheduler(_settings(workspace, retrain_enabled=True,
                                                          retrain_catchup_delay_s=3600))
    leader.start()
    try:
        wait_for(lambda: leader.role == "leader", timeout_s=10)
        assert leader._scheduler.get_job("catch-up") is None
    finally:
        leader.stop()


# -- exactly one scheduler per host -------------------------------------------------------------

ELECTION_SCRIPT = """
import sys, time
from portal.settings import load_settings
from retraining.scheduler import RetrainScheduler
settings = load_settings(_env_file=None, retrain_enabled=True, production_models_dir=sys.argv[1],
                         model_dir=sys.argv[2], log_level="WARNING")
scheduler = RetrainScheduler(settings)
scheduler.start()
role = None
for _ in range(1200):
    if scheduler.role != role:
        role = scheduler.role
        print(role, flush=True)
    time.sleep(0.05)
"""


class _Candidate:
    """A real process running leader election; remembers the roles it printed and when."""

    def __init__(self, workspace) -> None:
        self.roles: list[tuple[str, float]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", ELECTION_SCRIPT, str(workspace["production_models"]), str(workspace["model"])],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.roles.append((line.strip(), time.monotonic()))

    def leader_since(self) -> float | None:
        return next((at for role, at in self.roles if role == "leader"), None)


@pytest.mark.slow
def test_two_processes_race_for_the_scheduler_and_the_survivor_takes_over(workspace) -> None:
    first, second = _Candidate(workspace), _Candidate(workspace)
    try:
        wait_for(lambda: first.roles and second.roles and (first.leader_since() or second.leader_since()),
                  timeout_s=30)
        time.sleep(retrain_scheduler.TAKEOVER_POLL_S + 1)  # the loser has polled at least once since
        leaders = [c for c in (first, second) if c.leader_since()]
        assert len(leaders) == 1
        leader, standby = leaders[0], (second if leaders[0] is first else first)
        assert standby.roles[-1][0] == "standby"

        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait(10)
        killed_at = time.monotonic()
        took_over_at = wait_for(standby.leader_since, timeout_s=15, every_s=0.05)
        takeover_s = took_over_at - killed_at
        print(f"scheduler takeover after SIGKILL: {takeover_s:.2f} s")
        assert takeover_s < retrain_scheduler.TAKEOVER_POLL_S + 1.5
    finally:
        for candidate in (first, second):
            if candidate.process.poll() is None:
                candidate.process.kill()
            candidate.process.wait(10)


# -- the job -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_retrain_leaves_a_loadable_model_and_the_next_run_cleans_up(workspace,
                                                                                training_file) -> None:
    from portal.serving.live_model import load_release

    settings = _settings(workspace, sample_data_path=training_file)
    production = workspace["production_models"]
    old_live = releases.live_release_dir(workspace["model"])
    pid = retrain_scheduler.launch_retraining(settings)
    try:
        wait_for(lambda: list(production.glob(releases.TMP_PREFIX + "*")), timeout_s=120, every_s=0.01)
        os.kill(pid, signal.SIGKILL)
    finally:
        wait_for(lambda: _reaped(pid), timeout_s=10)

    assert list(production.glob(releases.TMP_PREFIX + "*")), "the kill should have left a staging folder"
    assert releases.live_release_dir(workspace["model"]) == old_live
    assert load_release(old_live, warm_up=False).version == old_live.name
    status = read_status(production)
    assert status["state"] == FAILED and "killed or crashed" in status["reason"]
    assert run_lock(production).is_locked_elsewhere() is False

    messages: list[str] = []
    report = run_retraining(settings, progress=messages.append)

    assert report.state == SUCCEEDED, report.reason
    assert any("removed 1 stale temporary folder" in m for m in messages)
    assert not list(production.glob(releases.TMP_PREFIX + "*"))
    new_live = releases.live_release_dir(workspace["model"])
    assert new_live.name == report.version != old_live.name
    assert load_release(new_live, warm_up=False).version == report.version
    assert read_status(production)["state"] == SUCCEEDED


def _reaped(pid: int) -> bool:
    """True once the process is gone (the launcher's reaper thread collects its exit status)."""
    return not Path(f"/proc/{pid}").exists()


def _shapeless_customers(path: Path, rows: int = 800) -> Path:
    """Customers drawn uniformly at random: a small, quick fit with no real groups."""
    import numpy as np

    from portal.segmentation.geography import REGION_OF_AREA
    from schemas import CUSTOMER_ID, DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER

    rng = np.random.default_rng(3)
    pd.DataFrame({CUSTOMER_ID: [f"R{i}" for i in range(rows)], LOCATION: rng.choice(list(REGION_OF_AREA), rows),
                  GENDER: rng.choice(["Female", "Male"], rows), LOYALTY_TIER: rng.choice(["Silver", "Gold"], rows),
                  DATE_JOINED: pd.Timestamp("2010-01-01") + pd.to_timedelta(rng.integers(0, 5000, rows), unit="D"),
                  }).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_rejected_model_keeps_the_old_one_and_the_report_says_why(workspace, tmp_path, monkeypatch) -> None:
    from retraining import job

    monkeypatch.setattr(job, "MIN_SEGMENTS", 1000)  # a gate no real fit passes, whatever the features
    (workspace["base_data"] / "2026-01-01").mkdir()
    _shapeless_customers(workspace["base_data"] / "2026-01-01" / "shapeless.csv")  # the live model's lineage
    settings = _settings(workspace)
    production = workspace["production_models"]
    old_live = releases.live_release_dir(workspace["model"])
    releases_before = sorted(p.name for p in production.iterdir() if p.name != ".retrain")

    report = run_retraining(settings)

    assert report.state == REJECTED, report.reason
    assert report.reason == (f"kept {old_live.name}: only {report.metrics['clusters']} segment(s) found; "
                             "at least 1000 are required")
    assert report.metrics["agreement_ari"] is not None
    assert report.rows_read == 800 and report.rows_used == 800 and "fit" in report.timings_s
    assert releases.live_release_dir(workspace["model"]) == old_live
    assert sorted(p.name for p in production.iterdir() if p.name != ".retrain") == releases_before
    saved = sorted((production / ".retrain" / "reports").glob("*.json"))
    assert json.loads(saved[-1].read_text())["state"] == REJECTED
    assert "retrain rejected" in saved[-1].with_suffix(".txt").read_text()
    assert read_status(production)["state"] == REJECTED


@pytest.mark.slow
def test_a_retrain_keeps_the_segment_ids_and_reports_the_mapping(workspace, training_file) -> None:
    settings = _settings(workspace, sample_data_path=training_file)
    old_live = releases.live_release_dir(workspace["model"])
    old_ids = {int(k) for k in json.loads((old_live / "cluster_personas.json").read_text())}

    report = run_retraining(settings)

    assert report.state == SUCCEEDED, report.reason
    new_live = releases.live_release_dir(workspace["model"])
    assert report.segment_ids == releases.read_manifest(new_live)["segment_ids"]
    assert report.segment_ids["compared_with"] == old_live.name
    assert {s["id"] for s in report.segment_ids["segments"] if s["status"] == "kept"} == old_ids
    assert report.segment_ids["customers_kept_share"] >= 0.95
    assert f"segment ids against {old_live.name}: {len(old_ids)} kept, 0 new, 0 vanished" in report.summary()


def test_snapshots_are_read_and_deduplicated_latest_wins(workspace, training_file) -> None:
    from portal.segmentation.training import collect_training_data
    from portal.serving.upload_store import UploadStore, hash_customer_ids
    from schemas import CUSTOMER_ID, DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER

    settings = _settings(workspace, sample_data_path=training_file)
    store = UploadStore(workspace["uploads"], workspace["base_data"], "salt")

    def customers(location: str) -> pd.DataFrame:
        return pd.DataFrame({CUSTOMER_ID: ["C-1", "C-2", None], LOCATION: [location, "Bedok", "Tampines"],
                             GENDER: ["Female", "Male", "Female"], LOYALTY_TIER: ["Gold", "Silver", "Platinum"],
                             DATE_JOINED: pd.to_datetime(["2020-01-05", "2021-02-06", "2022-03-07"])})

    older = store.write_snapshot("a" * 32, customers("Yishun"))
    newer = store.write_snapshot("b" * 32, customers("Woodlands"))
    os.utime(older, (1_700_000_000, 1_700_000_000))
    (workspace["base_data"] / "notes.txt").write_text("not a snapshot")

    files = loyalty_files(settings)
    assert files == [training_file, older, newer]
    data = collect_training_data(files)
    hashed = data.customers[data.customers[CUSTOMER_ID] == hash_customer_ids(pd.Series(["C-1"]), "salt").iloc[0]]
    assert hashed[LOCATION].tolist() == ["Woodlands"]
    assert (data.customers[CUSTOMER_ID] == "C-1").sum() == 0  # snapshots never hold raw ids
    assert data.rows_read == 1500 + 6
    assert len(data.customers) == 1500 + 2 + 2  # C-1 and C-2 once each, both rows without an id kept


def test_a_company_model_retrains_on_its_own_customers_and_not_on_the_bundled_sample(workspace, runner,
                                                                                      tmp_path) -> None:
    """`flask train` on a company loyalty file trains a model of its own columns and keeps its customers
    (hashed, feature columns only) for retraining; from then on the bundled sample is no part of the data."""
    from portal.segmentation.sample_data import write_sample
    from retraining.snapshots import hash_customer_ids, schema_of, table_files
    from schemas import CUSTOMER_ID

    settings = runner.app.extensions["portal"].settings
    assert settings.sample_data_path.is_file()
    company = write_sample(tmp_path / "company.xlsx", rows=900, seed=5)
    result = runner.invoke(args=["train", "--data", str(company), "--no-stability"])
    assert result.exit_code == 0, result.output
    live = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    assert releases.kind_of(live) == releases.TABLE and live["sources"] == ["company.xlsx"]
    schema = schema_of(live)
    (kept,) = table_files(settings, schema)
    assert kept.name == f"training-{live['version']}.csv"
    rows = pd.read_csv(kept, dtype=str)
    assert list(rows.columns) == [CUSTOMER_ID, *(c.name for c in schema.features)]
    assert len(rows) == live["training_rows"]
    raw = pd.read_excel(company, dtype=str)[CUSTOMER_ID]
    assert set(rows[CUSTOMER_ID]) == set(hash_customer_ids(raw, settings.snapshot_salt.get_secret_value()))

    report = run_retraining(settings)
    assert report.state == SUCCEEDED, report.reason
    assert report.sources == [str(kept)]
    assert report.rows_used == live["training_rows"]


def test_the_sample_model_retrains_on_the_sample_and_the_uploads_of_its_schema(workspace, make_app, tmp_path) -> None:
    """`flask train` with no file trains the bundled sample as a table of its own columns; no snapshot is kept
    of it, yet the quarterly retrain reads it (hashed ids, feature columns) with the uploads of its schema, and
    the new release still says it came from the sample."""
    from portal.segmentation.sample_data import write_sample
    from retraining.snapshots import came_from_sample, sample_snapshot, schema_of, table_files, write_table_snapshot

    sample = write_sample(tmp_path / "sample.xlsx", rows=600, seed=3)
    settings = _settings(workspace, sample_data_path=sample)
    result = make_app(sample_data_path=sample).test_cli_runner().invoke(args=["train", "--no-stability"])
    assert result.exit_code == 0, result.output
    live = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    assert releases.kind_of(live) == releases.TABLE and came_from_sample(live, settings)
    schema = schema_of(live)
    assert table_files(settings, schema) == []
    uploaded = write_sample(tmp_path / "upload.xlsx", rows=150, seed=4)
    write_table_snapshot(settings.base_data_dir, "upload-1", pd.read_excel(uploaded), schema, "salt")

    report = run_retraining(settings)
    assert report.state == SUCCEEDED, report.reason
    assert report.rows_used == 600 + 150
    retrained = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    assert came_from_sample(retrained, settings) and releases.kind_of(retrained) == releases.TABLE
    assert report.sources == [str(sample), *(str(p) for p in table_files(settings, schema))]
    # the sample is read in memory: nothing of it is written under BASE_DATA_DIR, and no row there holds PII
    written = [p for p in workspace["base_data"].rglob("*") if p.is_file()]
    assert [p.name for p in written] == ["upload-1.csv"]
    assert all("@" not in line for p in written for line in p.read_text().splitlines()[1:])
    rows = sample_snapshot(settings, schema, retrained)
    assert rows is not None and len(rows) == 600
    assert list(rows.columns) == [schema.identifier, *(c.name for c in schema.features)]
    assert not rows.apply(lambda column: column.str.contains("@", na=False)).any().any()


def test_settings_reach_the_child_process_unchanged(workspace, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-a-stale-shell")
    settings = _settings(workspace, admin_token="t0ken", retrain_max_noise_share=0.3,
                         upload_dir=Path("relative/uploads"), allow_origins=["http://a", "http://b"])

    env = retrain_scheduler.settings_as_env(settings)

    assert "OPENAI_API_KEY" not in env
    assert env["UPLOAD_DIR"] == str(tmp_path / "relative" / "uploads")
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(PROJECT_ROOT)
    child = load_settings(_env_file=None)
    assert child.model_dump(exclude={"upload_dir"}) == settings.model_dump(exclude={"upload_dir"})
    assert child.upload_dir == tmp_path / "relative" / "uploads"


# -- rollback ----------------------------------------------------------------------------------

@pytest.fixture
def two_releases(workspace):
    """The workspace's release plus a newer copy, the newer one live."""
    first = releases.live_release_dir(workspace["model"])
    second = copy_release(first, workspace["production_models"], "29990101T000000Z-newer")
    releases.set_live(workspace["model"], second)
    return first, second


def test_rollback_from_the_cli(workspace, two_releases, runner) -> None:
    first, second = two_releases
    listing = runner.invoke(args=["model", "list"])
    assert f"* {second.name}" in listing.output and f"  {first.name}" in listing.output

    result = runner.invoke(args=["model", "rollback", first.name])

    assert result.exit_code == 0, result.output
    assert releases.live_release_dir(workspace["model"]) == first.resolve()
    unknown = runner.invoke(args=["model", "rollback", "no-such-version"])
    assert unknown.exit_code != 0 and "known releases" in unknown.output and second.name in unknown.output


def test_rollback_refuses_a_release_that_does_not_verify(workspace, two_releases, runner) -> None:
    first, second = two_releases
    (first / "umap.pkl").write_bytes(b"garbage")
    result = runner.invoke(args=["model", "rollback", first.name])
    assert result.exit_code != 0 and "umap.pkl" in result.output
    assert releases.live_release_dir(workspace["model"]) == second.resolve()


def test_rollback_through_the_admin_route(workspace, two_releases, make_app) -> None:
    first, second = two_releases
    client = make_app(admin_token=TOKEN).test_client()

    response = client.post("/admin/model/rollback", json={"version": first.name}, headers=AUTH)

    assert response.status_code == 200 and response.get_json()["model_version"] == first.name
    assert releases.live_release_dir(workspace["model"]) == first.resolve()
    for bad in ("no-such-version", "../model", ".retrain"):
        refused = client.post("/admin/model/rollback", json={"version": bad}, headers=AUTH)
        assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert releases.live_release_dir(workspace["model"]) == first.resolve()


# -- admin routes ------------------------------------------------------------------------------

ADMIN_CALLS = [("post", "/admin/retrain", None), ("get", "/admin/retrain/status", None),
               ("post", "/admin/model/rollback", {"version": "x"})]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_routes_are_off_without_a_token(make_app, method, path, body) -> None:
    response = getattr(make_app(admin_token=None).test_client(), method)(path, json=body, headers=AUTH)
    assert response.status_code == 404
    assert "ADMIN_TOKEN" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_admin_routes_need_the_bearer_token(make_app, method, path, body, headers) -> None:
    response = getattr(make_app(admin_token=TOKEN).test_client(), method)(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.slow
def test_admin_retrain_runs_in_the_background_and_a_second_request_gets_409(workspace, make_app,
                                                                            training_file) -> None:
    app = make_app(admin_token=TOKEN, sample_data_path=training_file)
    client = app.test_client()
    old_version = client.get("/health").get_json()["model_version"]
    assert client.get("/admin/retrain/status", headers=AUTH).get_json()["state"] == "idle"

    started = client.post("/admin/retrain", headers=AUTH)
    second = client.post("/admin/retrain", headers=AUTH)  # the child is still importing

    try:
        assert started.status_code == 202 and started.get_json()["status_url"] == "/admin/retrain/status"
        assert second.status_code == 409 and second.get_json()["error"]["code"] == "conflict"
        assert client.get("/admin/retrain/status", headers=AUTH).get_json()["state"] == RUNNING
        states = []

        def finished():
            status = client.get("/admin/retrain/status", headers=AUTH).get_json()
            states.append(status["state"])
            return status if status["state"] != RUNNING else None

        status = wait_for(finished, timeout_s=150, every_s=0.5)
    finally:
        wait_for(lambda: _reaped(started.get_json()["pid"]), timeout_s=150, every_s=0.5)

    assert status["state"] == SUCCEEDED, status
    assert set(states) == {RUNNING, SUCCEEDED}
    new_version = status["report"]["version"]
    assert new_version != old_version and status["report"]["rows_read"] == 1500
    assert app.extensions["portal"].models.reload_if_changed()
    assert client.get("/health").get_json()["model_version"] == new_version

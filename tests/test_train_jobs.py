"""POST /admin/train: a customer file or an earlier upload trained in the background, through the
retraining gates and atomic swap, followed at GET /admin/train/<job>."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from portal.segmentation import releases
from tests.helpers import wait_for
from tests.test_retraining import AUTH, TOKEN, _reaped

DATA = Path(__file__).parent / "data"


def _train(client, path: Path | None = None, **form):
    data = dict(form)
    if path is not None:
        data["file"] = (io.BytesIO(path.read_bytes()), path.name)
    return client.post("/admin/train", data=data, headers=AUTH, content_type="multipart/form-data")


def _finished(client, job_id: str) -> dict:
    return wait_for(lambda: (s := client.get(f"/admin/train/{job_id}", headers=AUTH).get_json())["state"] != "running"
                    and s, timeout_s=150, every_s=0.5)


@pytest.mark.slow
def test_a_train_job_goes_live_and_a_second_one_meanwhile_gets_409(workspace, make_app, training_file):
    app = make_app(admin_token=TOKEN)
    client = app.test_client()
    old_version = client.get("/health").get_json()["model_version"]

    started = _train(client, training_file)
    second = _train(client, training_file)
    try:
        assert started.status_code == 202, started.get_json()
        job = started.get_json()
        assert job["status_url"] == f"/admin/train/{job['job_id']}" and job["publish"] is True
        assert second.status_code == 409 and "in progress" in second.get_json()["error"]["message"]
        status = _finished(client, job["job_id"])
    finally:
        wait_for(lambda: _reaped(started.get_json()["pid"]), timeout_s=150, every_s=0.5)

    assert status["state"] == "succeeded", status
    report = status["report"]
    assert report["job_id"] == job["job_id"] and report["rows_read"] == 1500 and report["version"] != old_version
    assert releases.live_release_dir(workspace["model"]).name == report["version"]
    assert app.extensions["portal"].models.reload_if_changed()
    assert client.get("/health").get_json()["model_version"] == report["version"]


@pytest.mark.slow
def test_a_staged_train_job_and_a_rejected_file_leave_the_live_model_alone(workspace, make_app, training_file):
    client = make_app(admin_token=TOKEN).test_client()
    live = releases.live_release_dir(workspace["model"])
    upload_id = client.post("/upload-excel", content_type="multipart/form-data",
                            data={"file": (io.BytesIO(training_file.read_bytes()), training_file.name)}
                            ).get_json()["upload_id"]

    rejected = _train(client, DATA / "wrong_columns.xlsx").get_json()
    status = _finished(client, rejected["job_id"])
    assert status["state"] == "rejected" and "2 usable customers is too few" in status["report"]["reason"]
    assert releases.live_release_dir(workspace["model"]) == live

    staged = _train(client, upload_id=upload_id, publish="false").get_json()
    wait_for(lambda: _reaped(staged["pid"]), timeout_s=150, every_s=0.5)
    status = _finished(client, staged["job_id"])
    assert status["state"] == "succeeded", status
    assert releases.live_release_dir(workspace["model"]) == live  # staged, not live
    version = status["report"]["version"]
    assert (workspace["production_models"] / version).is_dir() and "staged, not live" in status["report"]["reason"]
    assert status["report"]["rows_read"] == 1500


@pytest.mark.parametrize(("form", "status", "words"), [
    ({}, 422, "either a customer file"),
    ({"upload_id": "0" * 32}, 404, "upload"),
    ({"upload_id": "not-an-id"}, 422, "upload_id"),
])
def test_train_requests_that_cannot_start_say_why(make_app, form, status, words):
    response = _train(make_app(admin_token=TOKEN).test_client(), **form)
    assert response.status_code == status and words in response.get_data(as_text=True).lower()


def test_a_file_that_is_no_spreadsheet_is_refused_before_any_job(make_app, workspace):
    response = _train(make_app(admin_token=TOKEN).test_client(), DATA / "text_renamed.xlsx")
    assert response.status_code == 415
    assert not list((workspace["production_models"] / ".retrain").glob("train-jobs/*"))


def test_an_unknown_job_is_404(make_app):
    response = make_app(admin_token=TOKEN).test_client().get(f"/admin/train/{'a' * 32}", headers=AUTH)
    assert response.status_code == 404 and "post /admin/train" in response.get_data(as_text=True).lower()


@pytest.mark.parametrize(("form", "words"), [
    ({"role": "Gender"}, "COLUMN=ROLE"),
    ({"role": "Gender=shoe size"}, "'shoe size' is not a role"),
    ({"exclude": "Nope"}, "no column 'Nope'"),
])
def test_bad_role_overrides_are_refused_before_any_job(make_app, workspace, training_file, form, words):
    response = _train(make_app(admin_token=TOKEN).test_client(), training_file, **form)
    assert response.status_code == 422 and words in response.get_json()["error"]["message"]
    assert not list((workspace["production_models"] / ".retrain").glob("train-jobs/*"))


@pytest.mark.slow
def test_a_train_job_takes_role_overrides_and_left_out_columns(workspace, make_app, training_file):
    """As `flask train --role/--exclude`: any override trains a model of the file's own columns."""
    client = make_app(admin_token=TOKEN).test_client()
    started = _train(client, training_file, role=["Loyalty Tier=categorical"], exclude=["Gender", "Notes"])
    job = started.get_json()
    assert started.status_code == 202, job
    assert job["roles"] == {"Loyalty Tier": "categorical"} and job["exclude"] == ["Gender", "Notes"]
    wait_for(lambda: _reaped(job["pid"]), timeout_s=150, every_s=0.5)
    status = _finished(client, job["job_id"])
    assert status["state"] == "succeeded", status
    manifest = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    roles = {c["name"]: (c["role"], c["reason"]) for c in manifest["schema"]["columns"]}
    assert manifest["kind"] == "table" and roles["Gender"] == ("excluded", "excluded on request")
    assert roles["Notes"][0] == "excluded" and roles["Loyalty Tier"][0] == "categorical"

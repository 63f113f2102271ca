"""Admin routes: trigger retraining or a train job, follow them, roll back. Bearer ADMIN_TOKEN; off when it is unset."""

from __future__ import annotations

import hmac
import logging

from flask import request
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import BaseModel, ConfigDict, Field

from portal.errors import BadRequest, NotFound, Unauthorized
from portal.routes import services
from schemas import ERROR_RESPONSES

audit = logging.getLogger("portal.audit")

admin_api = APIBlueprint("admin", __name__, url_prefix="/admin", abp_tags=[Tag(name="Admin")],
                         abp_responses={**ERROR_RESPONSES, 401: ERROR_RESPONSES[400]},
                         abp_security=[{"bearer": []}])


class TrainForm(BaseModel):
    """Multipart body of POST /admin/train: a customer file, or the id of an earlier upload."""

    model_config = ConfigDict(extra="ignore")
    file: FileStorage | None = Field(None, description="The customer file (.xlsx, .xls or .csv).")
    upload_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$", description="Train on an earlier upload.")
    publish: bool = Field(True, description="false: keep the new release staged instead of making it live.")
    role: list[str] = Field([], max_length=200, description="Override a column's role, COLUMN=ROLE (repeat the "
                            "field), as `flask train --role`; any role override trains a model of the table's own "
                            "columns.")
    exclude: list[str] = Field([], max_length=200, description="Leave a column out (repeat the field), as "
                               "`flask train --exclude`.")


class TrainPath(BaseModel):
    job_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Id returned by POST /admin/train.")


class RollbackBody(BaseModel):
    version: str = Field(min_length=1, max_length=80, description="A release id from `flask --app app model list`.")


@admin_api.before_request
def _require_token() -> None:
    token = services().settings.admin_token
    if token is None or not token.get_secret_value():
        raise NotFound("Admin routes are disabled: set ADMIN_TOKEN to enable them.")
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        audit.warning("admin %s %s refused: bad or missing token, client %s", request.method, request.path,
                      request.remote_addr)
        raise Unauthorized("Send Authorization: Bearer <ADMIN_TOKEN>.")


@admin_api.post("/retrain", responses={202: None})
def retrain():
    """Start a retraining run in the background (202); 409 when one is already running."""
    from retraining.scheduler import launch_retraining

    pid = launch_retraining(services().settings)
    audit.info("admin retrain started (process %s), client %s", pid, request.remote_addr)
    return {"status": "ok", "state": "running", "pid": pid, "status_url": "/admin/retrain/status",
            "model_version": services().model_version()}, 202


@admin_api.post("/train", responses={202: None})
def train(form: TrainForm):
    """Train a new release on a customer file or an earlier upload, in the background (202), through the
    retraining gates and atomic swap; 409 when a run is already in progress."""
    from retraining.train_jobs import start_train_job

    data = form.file.read() if form.file is not None else None
    if data is not None and not data:
        raise BadRequest("The uploaded file is empty; choose a customer list with a header row and data.")
    job = start_train_job(services().settings, services().uploads, data, form.upload_id, form.publish,
                          form.role, form.exclude)
    audit.info("admin train job %s started (process %s), client %s", job["job_id"], job["pid"], request.remote_addr)
    return {"status": "ok", "model_version": services().model_version(), **job}, 202


@admin_api.get("/train/<job_id>")
def train_status(path: TrainPath):
    """A train job's stage while it runs, then its report (version, metrics, why it was rejected)."""
    from retraining.train_jobs import train_job_status

    return {"status": "ok", "model_version": services().model_version(),
            **train_job_status(services().settings, path.job_id)}


@admin_api.get("/retrain/status")
def retrain_status():
    """State of the last run (idle, running, succeeded, failed, rejected) with its report."""
    from retraining.status import retrain_state

    return {"status": "ok", "model_version": services().model_version(),
            **retrain_state(services().settings).read_status()}


@admin_api.post("/model/rollback")
def model_rollback(body: RollbackBody):
    """Make an earlier release live; every worker serves it within seconds."""
    from retraining.job import rollback

    version = rollback(services().settings, body.version)
    audit.info("admin rollback to %s, client %s", version, request.remote_addr)
    return {"status": "ok", "model_version": version, "message": "Workers switch within seconds."}

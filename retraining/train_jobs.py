"""Train jobs: `POST /admin/train` with a customer file or an earlier upload, run like a retrain.

The file is kept under PRODUCTION_MODELS_DIR/.retrain/train-jobs/<job>/ (the storage every host shares),
then the retraining child trains on it under the same run lock, quality gates and atomic swap; its report
is kept beside the file, so `GET /admin/train/<job>` answers on every host, after the run too.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from typing import Any

from portal.errors import NotFound, ValidationFailed
from portal.ingestion.formats import sniff_format
from portal.ingestion.roles import infer_schema, parse_role_override
from portal.ingestion.tables import read_table
from portal.serving.upload_store import UploadStore
from portal.settings import Settings
from retraining.job import TrainJob, train_jobs_dir
from retraining.scheduler import launch_retraining
from retraining.status import RUNNING, retrain_state

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def check_overrides(data: bytes, roles: list[str], exclude: list[str]) -> tuple[tuple[tuple[str, str], ...],
                                                                               tuple[str, ...]]:
    """Role overrides and left-out columns parsed and checked against the file's columns before any job
    starts, so a typo is a 422 naming it rather than a rejected run."""
    try:
        parsed = tuple(parse_role_override(r) for r in roles)
    except ValueError as exc:
        raise ValidationFailed(f"role {exc}.", details=[{"field": "role", "problem": str(exc)}]) from None
    if parsed or exclude:
        try:
            infer_schema(read_table(data).frame, dict(parsed), tuple(exclude))
        except ValueError as exc:
            raise ValidationFailed(f"{exc}.", details=[{"field": "role/exclude", "problem": str(exc)}]) from None
    return parsed, tuple(exclude)


def start_train_job(settings: Settings, uploads: UploadStore, data: bytes | None, upload_id: str | None,
                    publish: bool, roles: list[str] | None = None,
                    exclude: list[str] | None = None) -> dict[str, Any]:
    """Keep the customer file, start the child; 409 when a run is in progress, 422 for a bad request."""
    if (data is None) == (upload_id is None):
        raise ValidationFailed("Send either a customer file (multipart field 'file') or the upload_id of an "
                               "earlier upload, not both and not neither.",
                               details=[{"field": "file/upload_id", "problem": "exactly one is required"}])
    if upload_id is not None:
        source, file_format = uploads.original(upload_id)
        data = source.read_bytes()
    else:
        assert data is not None
        file_format = sniff_format(data)  # a 4xx saying what to do, before any job exists
    overrides, left_out = check_overrides(data, roles or [], exclude or [])
    job_id = uuid.uuid4().hex
    folder = train_jobs_dir(settings) / job_id
    folder.mkdir(parents=True)
    path = folder / f"customers.{file_format}"
    path.write_bytes(data)
    try:
        pid = launch_retraining(settings, job=TrainJob(job_id, path, publish=publish, roles=overrides,
                                                      exclude=left_out))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {"job_id": job_id, "state": RUNNING, "pid": pid, "publish": publish,
            "roles": dict(overrides), "exclude": list(left_out),
            "status_url": f"/admin/train/{job_id}"}


def train_job_status(settings: Settings, job_id: str) -> dict[str, Any]:
    """The job's stage while it runs, then its report; 404 for a job this storage never had."""
    folder = train_jobs_dir(settings) / job_id
    if not _JOB_ID.match(job_id) or not folder.is_dir():
        raise NotFound("Unknown train job; it is the job_id returned by POST /admin/train.")
    report_path = folder / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        return {"job_id": job_id, "state": report["state"], "report": report}
    status = retrain_state(settings).read_status()
    if status.get("job_id") == job_id or (status.get("report") or {}).get("job_id") == job_id:
        return {"job_id": job_id, **status}
    return {"job_id": job_id, "state": "failed",
            "reason": "the run ended without a report (killed or crashed); nothing was changed. Start it again."}



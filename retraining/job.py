"""The retraining job: gather snapshots, fit a release, validate it, swap it in atomically.

A failed or rejected run changes nothing that is served: the new release is built in a temporary
folder and becomes live only through one ``os.replace`` of the ``model/current`` pointer. Run it as
``flask --app app retrain``, from the scheduler (in a child process) or ``python -m retraining.job``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portal.errors import Conflict, NotFound, PortalError, ReleaseError, ServiceUnavailable, TrainingError
from portal.ingestion.roles import parse_role_override
from portal.segmentation import releases
from portal.settings import Settings, load_settings
from retraining import snapshots

if TYPE_CHECKING:
    import pandas as pd

from retraining.status import (
    FAILED,
    REJECTED,
    RUNNING,
    SUCCEEDED,
    FileLock,
    LocalState,
    now_iso,
    retrain_state,
    state_dir,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
MIN_SEGMENTS = 2


@dataclass
class RetrainReport:
    """What one run did and why; written as JSON and a short text summary."""

    state: str = RUNNING
    reason: str = ""
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    sources: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_used: int = 0
    version: str | None = None
    previous_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float | None = None
    #: a train job (POST /admin/train) rather than the quarterly retraining on the snapshots
    job_id: str | None = None
    #: how the new release's segments map to the live one's (the manifest's ``segment_ids``)
    segment_ids: dict[str, Any] | None = None

    def summary(self) -> str:
        m = self.metrics
        kind = f"train job {self.job_id}" if self.job_id else "retrain"
        return (f"{kind} {self.state}: {self.reason}\n"
                f"  release {self.version or '-'} (previous {self.previous_version or '-'})\n"
                f"  rows read {self.rows_read}, used {self.rows_used}, from {len(self.sources)} file(s)\n"
                f"  segments {m.get('clusters')}, noise {m.get('noise_share')}, DBCV {m.get('dbcv')}, "
                f"silhouette {m.get('silhouette')}, agreement with previous (ARI) {m.get('agreement_ari')}\n"
                f"  {_segment_ids_line(self.segment_ids)}\n"
                f"  timings {self.timings_s}")


def _segment_ids_line(ids: dict[str, Any] | None) -> str:
    """One line of the report on what happened to the segment ids."""
    if not ids:
        return "segment ids -"
    kept, counts = ids.get("customers_kept_share"), ids.get("counts", {})
    return (f"segment ids against {ids.get('compared_with') or '- (' + str(ids.get('reason')) + ')'}: "
            f"{counts.get('kept')} kept, {counts.get('new')} new, {counts.get('vanished')} vanished"
            + (f", {kept:.1%} of customers keep their id" if kept is not None else ""))


def _validate(staging: Path, manifest: dict[str, Any], settings: Settings, report: RetrainReport,
              customers) -> str | None:
    """Quality gates; returns the reason to reject, or None to accept."""
    from sklearn.metrics import adjusted_rand_score

    from portal.serving.live_model import load_release

    candidate = load_release(staging, warm_up=False)
    sample = customers.sample(min(500, len(customers)), random_state=0)
    placed = candidate.model.place(sample)
    if len(placed.cluster_id) != len(sample):
        return "the new model could not place a sample of customers"
    metrics = manifest["metrics"]
    current_dir = releases.live_release_dir(settings.model_dir)
    if current_dir is not None:
        try:
            current = load_release(current_dir, warm_up=False)
            agree_rows = customers.sample(min(5000, len(customers)), random_state=1)
            report.metrics["agreement_ari"] = round(float(adjusted_rand_score(
                current.model.place(agree_rows).cluster_id, candidate.model.place(agree_rows).cluster_id)), 4)
        except ReleaseError as exc:
            report.metrics["agreement_ari"] = None
            log.warning("current model not comparable: %s", exc)
        except (KeyError, ValueError, TypeError) as exc:  # a live model of another schema reads other columns
            report.metrics["agreement_ari"] = None
            log.info("current model not comparable (another schema: %s)", type(exc).__name__)
    if metrics["clusters"] < MIN_SEGMENTS:
        return f"only {metrics['clusters']} segment(s) found; at least {MIN_SEGMENTS} are required"
    if metrics["noise_share"] > settings.retrain_max_noise_share:
        return (f"noise share {metrics['noise_share']:.1%} is above the bound "
                f"{settings.retrain_max_noise_share:.0%} (RETRAIN_MAX_NOISE_SHARE)")
    return None


def _refit_table_lineage(files: list[Path], live_manifest: dict[str, Any], settings: Settings,
                         progress: Progress, live: Path | None,
                         sample: pd.DataFrame | None) -> tuple[Path, dict[str, Any], Any]:
    """Fit the live learned schema again on every snapshot of its lineage (its training rows and uploads), after
    the bundled sample's rows (``sample``) while the live model came from it."""
    from portal.ingestion.roles import TableSchema
    from portal.segmentation.table_training import TableData, fit_table_release

    schema = snapshots.schema_of(live_manifest)
    frame, rows, dropped = snapshots.read_table_snapshots(files, schema, sample)
    progress(f"read {len(files)} snapshot(s) of the live schema: {rows:,} rows, {dropped:,} repeated customers")
    order_schema = live_manifest.get("order_schema")
    data = TableData(frame, schema, rows, dropped, str(snapshots.lineage_dir(settings.base_data_dir, schema)),
                     TableSchema.model_validate(order_schema) if order_schema else None,
                     live_manifest.get("rolled_up"),
                     ([settings.sample_data_path.name] if sample is not None else []) + [p.name for p in files])
    staging, manifest, _ = fit_table_release(data, settings.production_models_dir, progress=progress,
                                             measure_stability=False, live=live)
    return staging, manifest, frame


def _write_status(state: LocalState, status: dict[str, Any]) -> None:
    """Progress updates must not fail the run: a Redis blip only delays what /admin/retrain/status shows."""
    try:
        state.write_status(status)
    except ServiceUnavailable as exc:
        log.warning("status not updated: %s", exc.message)


@dataclass(frozen=True)
class TrainJob:
    """Train on one customer file instead of the snapshots; ``publish=False`` keeps the release staged
    (in PRODUCTION_MODELS_DIR, not live) for a rollback-style switch later."""

    job_id: str
    data: Path
    publish: bool = True
    #: column role overrides and left-out columns, as ``flask train --role/--exclude`` takes them
    roles: tuple[tuple[str, str], ...] = ()
    exclude: tuple[str, ...] = ()

    def child_args(self) -> list[str]:
        overrides = [arg for column, role in self.roles for arg in ("--role", f"{column}={role}")]
        overrides += [arg for column in self.exclude for arg in ("--exclude", column)]
        return ["--job", self.job_id, "--data", str(self.data), *([] if self.publish else ["--stage-only"]),
                *overrides]


def train_jobs_dir(settings: Settings) -> Path:
    """Where train jobs keep their customer file and report (on the storage every host shares)."""
    return state_dir(settings.production_models_dir) / "train-jobs"


def run_retraining(settings: Settings, progress: Progress | None = None,
                   lock: FileLock | Any | None = None, job: TrainJob | None = None) -> RetrainReport:
    """One full run under the run lock (the host's flock, or the lease shared by every host with
    REDIS_URL), taken here or handed over already held by the process that started this one; never
    raises for a data or model problem, and never publishes once the lock is lost. With ``job``, the run
    trains on that file, through the same gates and atomic swap."""
    say = progress or (lambda m: log.info("%s", m))
    report = RetrainReport(job_id=job.job_id if job else None)
    state = retrain_state(settings)
    lock = lock or state.run_lock()
    try:
        acquired = lock.acquire()
    except ServiceUnavailable as exc:
        report.state, report.reason = FAILED, f"not started: {exc.message}"
        return report
    if not acquired:
        report.state, report.reason = FAILED, "another retraining or training run is in progress"
        return report
    lock.keep()
    staging = None
    try:
        removed = releases.clean_stale_staging(settings.production_models_dir)
        if removed:
            say(f"removed {removed} stale temporary folder(s) from an interrupted run")
        current = releases.live_release_dir(settings.model_dir)
        report.previous_version = current.name if current else None
        live_manifest = releases.read_manifest(current) if current is not None else None
        table_lineage = job is None and live_manifest is not None and \
            releases.kind_of(live_manifest) == releases.TABLE
        sample: pd.DataFrame | None = None
        if table_lineage:
            assert live_manifest is not None
            schema = snapshots.schema_of(live_manifest)
            sample = snapshots.sample_snapshot(settings, schema, live_manifest)
            files = snapshots.table_files(settings, schema)
            if not files and sample is None:
                report.state = REJECTED
                report.reason = (f"kept {report.previous_version}: no snapshots of its schema in "
                                 f"{snapshots.lineage_dir(settings.base_data_dir, schema)} "
                                 "(releases trained before snapshots were kept); train it once more on your file "
                                 "with `flask --app app train --data FILE` or POST /admin/train")
                return report
        else:
            files = [job.data] if job else snapshots.loyalty_files(settings, live_manifest)
        _write_status(state, {"state": RUNNING, "pid": os.getpid(), "report": asdict(report)})

        from portal.segmentation.table_training import train_any_release
        from portal.segmentation.training import train_release

        report.sources = ([str(settings.sample_data_path)] if sample is not None else []) + [str(p) for p in files]
        started = time.perf_counter()

        def stage(message: str) -> None:
            say(message)
            _write_status(state, {"state": RUNNING, "pid": os.getpid(), "stage": message, "report": asdict(report)})

        if job:  # a model of the file's own columns (several loyalty files: the loyalty model), as `flask train`
            staging, manifest, customers = train_any_release(files, settings.production_models_dir, dict(job.roles),
                                                             job.exclude, progress=stage, measure_stability=False,
                                                             live=current)
        elif table_lineage:  # the live learned schema refitted on its snapshots, roles kept as they are
            assert live_manifest is not None
            staging, manifest, customers = _refit_table_lineage(files, live_manifest, settings, stage, current,
                                                                sample)
        else:
            staging, manifest, data = train_release(files, settings.production_models_dir, progress=stage,
                                                    customer_key=snapshots.customer_key(settings), live=current)
            customers = data.customers
        report.timings_s["fit"] = round(time.perf_counter() - started, 2)
        report.version, report.rows_read = manifest["version"], manifest["rows_read"]
        report.rows_used = manifest["training_rows"]
        report.metrics = dict(manifest["metrics"])
        report.segment_ids = manifest.get("segment_ids")
        started = time.perf_counter()
        stage("validating the new release")
        rejection = _validate(staging, manifest, settings, report, customers)
        report.timings_s["validate"] = round(time.perf_counter() - started, 2)
        if rejection:
            report.state, report.reason = REJECTED, f"kept {report.previous_version}: {rejection}"
            shutil.rmtree(staging, ignore_errors=True)
            return report
        if not lock.still_held():
            raise TrainingError("the run lock was lost (Redis unreachable for longer than RETRAIN_LEASE_S, or "
                                "the run stalled); the new release was not published")
        final = releases.publish_release(staging, settings.production_models_dir, manifest["version"])
        staging = None
        if job:
            snapshots.write_training_snapshot(settings, manifest, customers, files)
        if job and not job.publish:
            report.state, report.reason = SUCCEEDED, (f"{final.name} is staged, not live; make it live with "
                                                      f"POST /admin/model/rollback {{\"version\": \"{final.name}\"}}")
            return report
        releases.set_live(settings.model_dir, final)
        pruned = releases.prune_releases(settings.production_models_dir, settings.model_dir,
                                            settings.retrain_keep_releases)
        report.state = SUCCEEDED
        report.reason = f"{final.name} is live" + (f"; pruned {len(pruned)} old release(s)" if pruned else "")
        return report
    except TrainingError as exc:
        # a train job's file that cannot make a model is a refusal, like a gate: the live model stays
        report.state = REJECTED if job else FAILED
        report.reason = f"kept {report.previous_version}: {exc}" if job else str(exc)
        return report
    except (ReleaseError, NotFound) as exc:
        report.state, report.reason = FAILED, str(exc)
        return report
    except PortalError as exc:  # the customer file cannot be used (missing columns, no rows, ...)
        report.state, report.reason = REJECTED, f"kept {report.previous_version}: {exc.message}"
        return report
    except Exception as exc:  # the report must say what happened whatever it was
        log.exception("retraining failed")
        report.state, report.reason = FAILED, f"{exc.__class__.__name__}: {exc}"
        return report
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        report.peak_memory_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        report.finished_at = now_iso()
        if report.state != RUNNING:
            state.save_report(asdict(report), report.summary())
            if job:
                (train_jobs_dir(settings) / job.job_id / "report.json").write_text(
                    json.dumps(asdict(report), indent=2, default=str))
            _write_status(state, {"state": report.state, "report": asdict(report)})
        lock.release()
        say(report.summary())


def rollback(settings: Settings, version: str) -> str:
    """Point the live model at an earlier release after verifying it loads here (404 unknown, 409 unusable)."""
    known = {r.version: r for r in releases.list_releases(settings.production_models_dir, settings.model_dir)}
    if version not in known:
        raise NotFound(f"No release {version[:80]!r}; known releases: {sorted(known, reverse=True)}.")
    target = known[version].path
    try:
        releases.verify_release(target)
    except ReleaseError as exc:
        raise Conflict(f"Cannot roll back to {version}: {exc}") from None
    releases.set_live(settings.model_dir, target)
    return version


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process the scheduler and /admin/retrain start."""
    parser = argparse.ArgumentParser(prog="python -m retraining.job")
    parser.add_argument("--lock-fd", type=int, help="descriptor of the run lock, already held (from the parent)")
    parser.add_argument("--lease-token", help="token of the run lease in Redis, already held (from the parent)")
    parser.add_argument("--job", help="train job id (POST /admin/train)")
    parser.add_argument("--data", type=Path, help="the train job's customer file")
    parser.add_argument("--stage-only", action="store_true", help="publish the release without making it live")
    parser.add_argument("--role", action="append", default=[], metavar="COLUMN=ROLE", help="a column role override")
    parser.add_argument("--exclude", action="append", default=[], metavar="COLUMN", help="a column to leave out")
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s retrain %(message)s")
    lock = retrain_state(settings).adopt_run_lock(fd=args.lock_fd, token=args.lease_token)
    job = TrainJob(args.job, args.data, publish=not args.stage_only,
                   roles=tuple(parse_role_override(r) for r in args.role),
                   exclude=tuple(args.exclude)) if args.job and args.data else None
    report = run_retraining(settings, lock=lock, job=job)
    sys.exit(0 if report.state in (SUCCEEDED, REJECTED) else 1)


if __name__ == "__main__":
    main()

"""Section `retrain`: `python -m retraining.job` in a fresh process on a snapshot of N customers."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from bench.common import PYTHON, ROOT, Context, Table, child_env, fmt, secs


def _workspace(root: Path, sample: Path) -> tuple[dict[str, Path], dict[str, str]]:
    dirs = {k: root / k for k in ("model", "production_models", "uploads", "base_data")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = child_env(MODEL_DIR=str(dirs["model"]), PERSONA_PATH=str(dirs["model"] / "cluster_personas.pkl"),
                    PRODUCTION_MODELS_DIR=str(dirs["production_models"]), UPLOAD_DIR=str(dirs["uploads"]),
                    BASE_DATA_DIR=str(dirs["base_data"]), SAMPLE_DATA_PATH=str(sample))
    return dirs, env


def _run_job(ctx: Context, rows: int) -> dict:
    dirs, env = _workspace(ctx.workdir / f"retrain_{rows}", ctx.customer_file(200, 5))
    snapshot = dirs["base_data"] / "2026-01-01" / "snapshot.csv"
    snapshot.parent.mkdir(exist_ok=True)
    snapshot.write_bytes(ctx.customer_file(rows, 42).read_bytes())
    return _job(dirs, env)


def _run_table_job(ctx: Context, rows: int) -> dict:
    """A learned-schema model trained with `flask train` (which keeps its customers as a snapshot), then the
    quarterly job refitting that schema on its snapshots."""
    from portal.segmentation.table_sample_data import write_table_sample

    root = ctx.workdir / f"retrain_table_{rows}"
    dirs, env = _workspace(root, ctx.customer_file(200, 5))
    data = write_table_sample(root / "retail.csv", "retail", rows, 7)
    trained = subprocess.run([str(PYTHON), "-m", "flask", "--app", "app", "train", "--data", str(data),
                              "--no-stability"], cwd=str(ROOT), env=env, capture_output=True, text=True)
    if trained.returncode != 0:
        raise RuntimeError(f"flask train failed:\n{trained.stderr[-3000:]}")
    return _job(dirs, env)


def _job(dirs: dict[str, Path], env: dict[str, str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen([str(PYTHON), "-m", "retraining.job"], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stderr.close()
    wall = time.perf_counter() - started
    reports = sorted(dirs["production_models"].rglob("reports/*.json"))
    if not reports:
        raise RuntimeError(f"retraining.job wrote no report (exit {os.waitstatus_to_exitcode(status)}):\n"
                           f"{errors[-3000:]}")
    report = json.loads(reports[-1].read_text())
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "report": report}


def run(ctx: Context) -> list[Table]:
    sizes = [2000] if ctx.quick else [5000, 50_000] + ([200_000] if ctx.full else [])
    table = Table("retrain: python -m retraining.job, fresh process, one snapshot of N customers",
                  ["snapshot (kind, rows)", "rows used", "state", "wall", "fit", "validate", "peak RSS MB", "segments",
                   "noise"])
    runs = [(f"loyalty, {rows:,}", rows, _run_job) for rows in sizes]
    runs += [(f"learned schema (retail list), {rows:,}", rows, _run_table_job) for rows in sizes[:1]]
    for label, rows, run_one in runs:
        r = run_one(ctx, rows)
        rep = r["report"]
        t, m = rep["timings_s"], rep["metrics"]
        table.add(label, rep["rows_used"], rep["state"], secs(r["wall_s"]), secs(t.get("fit")),
                  secs(t.get("validate")), fmt(r["peak_mb"], 0), m.get("clusters"),
                  f"{m['noise_share']:.1%}" if m.get("noise_share") is not None else "—")
    table.notes += [
        "each run: a temp workspace whose BASE_DATA_DIR holds one csv snapshot (generate_customers(N, seed=42)) and "
        "SAMPLE_DATA_PATH a 200-row file "
        "(rows used = both after the job's own deduplication); "
        "no live model before the run (so no agreement check); RETRAIN_ENABLED=false",
        "learned schema: `flask train --data retail.csv` (write_table_sample retail, seed 7) makes the live model and "
        "keeps its customers as the lineage's snapshot; the job then refits that schema on it (agreement checked "
        "against the live model)",
        "wall: process spawn to exit (imports, reading, fit, personas, validation, atomic publish); fit and validate "
        "from the job's own report",
        "peak RSS: ru_maxrss of the job process (wait4)",
    ]
    if not ctx.full:
        table.notes.append("200k customers only with --full")
    return [table]

"""Section `tables`: the learned-schema (any table) model at scale, beside the seed recipe in the same run.

A wide retail table (``wide_retail``: the planted-group retail list of ``portal.segmentation.table_sample_data``
plus ten more columns driven by the same planted groups, 22 columns of which 19 are features) is trained in a
fresh process at 5k and 100k rows, 100k new rows are placed in one batch, single rows are placed one at a time,
and 100k new rows are uploaded end to end through the Flask app with the offline provider. The seed recipe
cannot read such a table (it needs the loyalty columns), so its figures are from the bundled loyalty file at
the same row counts, fitted and placed by ``bench/seed_recipe.py`` in this run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import (
    NEW_ROWS_SEED,
    Context,
    Table,
    fmt,
    median,
    percentile,
    run_child,
    secs,
    self_peak_mb,
)

TRAIN_SEED = 42


def wide_retail(rows: int, seed: int):
    """The planted retail list widened to 22 columns with ten more, each following the planted groups."""
    import numpy as np

    from portal.segmentation.table_sample_data import REFERENCE, generate_retail

    frame, answers = generate_retail(rows, seed)
    rng = np.random.default_rng(seed + 1)
    group = answers["true_group"].to_numpy()

    def per_group(values: tuple, spread: float, size: int = rows):
        return np.asarray(values, dtype=float)[group] * rng.lognormal(0, spread, size)

    regions = {"Springfield": "North", "Riverton": "North", "Lakeside": "North", "Fairview": "North",
               "Greenville": "East", "Oakdale": "East", "Milford": "East", "Ashland": "South", "Clayton": "South",
               "Dayton": "South", "Georgetown": "South", "Hudson": "West", "Kingston": "West", "Madison": "West",
               "Newport": "West", "Salem": "West"}
    categories = np.array(["Grocery", "Home", "Fashion", "Electronics", "Beauty", "Toys"], dtype=object)
    favourite = np.array([2, 3, 0, 5])[group]
    stray = rng.random(rows) < 0.3
    favourite[stray] = rng.integers(0, len(categories), int(stray.sum()))
    frame["App Sessions per Month"] = per_group((6, 1, 0.5, 20), 0.4).round(1)
    frame["Returns"] = rng.poisson(per_group((3, 1, 0.5, 2), 0.3))
    frame["Support Tickets"] = rng.poisson(per_group((1, 0.3, 2, 0.8), 0.3))
    frame["Discount Usage %"] = np.clip(per_group((45, 5, 25, 20), 0.3), 0, 100).round(1)
    frame["Loyalty Points"] = (frame["Total Spend"] * per_group((0.5, 2, 0.8, 1), 0.2)).round()
    frame["Newsletter"] = np.where(rng.random(rows) < np.array([0.2, 0.7, 0.3, 0.6])[group], "Yes", "No")
    frame["Has App"] = np.where(rng.random(rows) < np.array([0.5, 0.1, 0.2, 0.95])[group], "Yes", "No")
    frame["Region"] = frame["City"].map(regions)
    frame["Favourite Category"] = categories[favourite]
    frame["Last Login"] = REFERENCE - __import__("pandas").to_timedelta(
        np.minimum(per_group((5, 60, 200, 2), 0.5), 1500).round(), unit="D")
    return frame, answers


def _wide_file(ctx: Context, rows: int, seed: int) -> Path:
    path = ctx.workdir / "data" / f"wide_retail_{rows}_{seed}.csv"
    if not path.exists():
        run_child("bench.tables:child_write_wide", {"path": str(path), "rows": rows, "seed": seed})
    return path


def child_write_wide(path: str, rows: int, seed: int) -> dict:
    """Write a wide retail table (csv) and its answers file beside it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame, answers = wide_retail(rows, seed)
    frame.to_csv(target, index=False, date_format="%Y-%m-%d")
    answers.to_csv(target.with_name(target.stem + ".answers.csv"), index=False)
    return {"path": path, "columns": len(frame.columns)}


def child_train(data: str, out: str) -> dict[str, Any]:
    """``train_table_release`` as ``flask train`` runs it (stability measured), published; figures of the fit."""
    started = time.perf_counter()
    import hdbscan  # noqa: F401
    import umap  # noqa: F401

    from portal.segmentation import releases
    from portal.segmentation.table_training import train_table_release
    import_s = time.perf_counter() - started

    production = Path(out) / "production_models"
    production.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    staging, manifest, data_read = train_table_release(Path(data), production, progress=lambda m: None)
    train_s = time.perf_counter() - started
    peak = self_peak_mb()
    final = releases.publish_release(staging, production, manifest["version"])
    return {"release": str(final), "import_s": import_s, "train_s": train_s, "peak_mb": peak,
            "refit_peak_mb": self_peak_mb(children=True),
            "features": len(data_read.schema.features), "columns": len(data_read.schema.columns),
            "timings": manifest["timings"], "metrics": manifest["metrics"],
            "release_mb": sum(p.stat().st_size for p in final.rglob("*") if p.is_file()) / 2**20}


def _read_rows(data: str):
    from portal.ingestion.tables import read_table

    return read_table(Path(data)).frame


def child_place(release: str, data: str, singles: int) -> dict[str, Any]:
    """Fresh process: load and warm up the release, place every row of ``data`` in one batch (twice), then
    ``singles`` rows one at a time."""
    from portal.serving.live_model import load_release

    rows = _read_rows(data)
    started = time.perf_counter()
    model = load_release(Path(release), warm_up=True).model
    load_s = time.perf_counter() - started
    times = []
    for _ in range(2):
        started = time.perf_counter()
        placed = model.place(rows)
        times.append(time.perf_counter() - started)
    one_row = []
    for i in range(singles):
        frame = rows.iloc[[i]]
        started = time.perf_counter()
        model.place(frame)
        one_row.append(time.perf_counter() - started)
    return {"rows": len(rows), "load_s": load_s, "batch_s": min(times), "peak_mb": self_peak_mb(),
            "p50_s": median(one_row), "p95_s": percentile(one_row, 95), "singles": singles,
            "segments": len(set(placed.cluster_id.tolist()))}


def child_seed_place(model: str, data: str, singles: int) -> dict[str, Any]:
    """The seed recipe on the loyalty file: one batch (pickles loaded, as per request), then single rows."""
    from bench import seed_recipe
    from bench.common import read_canonical

    rows = read_canonical(data)
    seed_recipe.place_per_request(rows.iloc[:1], Path(model))  # numba compiled first, as ours warms up
    started = time.perf_counter()
    seed_recipe.place_per_request(rows, Path(model))
    batch_s = time.perf_counter() - started
    models = seed_recipe.load(Path(model))
    one_row = []
    for i in range(singles):
        started = time.perf_counter()
        seed_recipe.place(rows.iloc[[i]], models)
        one_row.append(time.perf_counter() - started)
    return {"rows": len(rows), "batch_s": batch_s, "peak_mb": self_peak_mb(), "p50_s": median(one_row),
            "p95_s": percentile(one_row, 95), "singles": singles}


def _upload(ctx: Context, release: str, file: Path) -> tuple[dict[str, Any], float]:
    from bench.api import _workspace

    dirs = _workspace(ctx, f"tables_upload_{Path(release).name}", release)
    child = run_child("bench.api:child_upload", {"workspace": {k: str(v) for k, v in dirs.items()},
                                                 "file": str(file), "runs": 2}, timeout_s=3600)
    return child.value, child.peak_mb


def run(ctx: Context) -> list[Table]:
    sizes = [2000, 10_000] if ctx.quick else [5000, 100_000]
    new_rows = 5000 if ctx.quick else 100_000
    singles = 100 if ctx.quick else 500
    table = Table(f"tables: learned-schema model on a {sizes[-1]:,}-row, 22-column table, beside the seed recipe",
                  ["system", "step", "rows", "time", "peak RSS MB", "notes"])
    fits = {}
    for rows in sizes:
        data = _wide_file(ctx, rows, TRAIN_SEED)
        child = run_child("bench.tables:child_train", {"data": str(data), "out": str(ctx.workdir / f"wide_{rows}")},
                          timeout_s=3600)
        v = fits[rows] = {**child.value, "process_peak_mb": child.peak_mb, "wall_s": child.wall_s}
        m, t = v["metrics"], v["timings"]
        table.add("ours", f"train (fresh process, {v['features']} feature columns)", rows, secs(v["train_s"]),
                  fmt(v["process_peak_mb"], 0),
                  f"import {v['import_s']:.1f} s; UMAP fit {t['umap_fit_s']} s; agreement check {t['agreement_s']} s; "
                  f"second fit's process {fmt(v['refit_peak_mb'], 0)} MB; "
                  f"{m['clusters']} segments, noise {m['noise_share']:.1%}, fast-path agreement "
                  f"{m['fast_path_agreement']:.1%}, stability {m.get('stability')}")
    seed_rows = sizes[:1] + (sizes[1:] if ctx.full else [])
    for rows in seed_rows:
        fit = ctx.fitted("seed", rows, TRAIN_SEED)
        table.add("seed", "train (fresh process, 5 loyalty columns)", rows, secs(fit["train_s"]),
                  fmt(fit["process_peak_mb"], 0), f"import {fit['import_s']:.1f} s; UMAP fit "
                  f"{fit['timings']['umap_fit_s']} s on every row")

    release = fits[sizes[-1]]["release"]
    new_file = _wide_file(ctx, new_rows, NEW_ROWS_SEED)
    placed = run_child("bench.tables:child_place", {"release": release, "data": str(new_file), "singles": singles},
                       timeout_s=3600)
    p = placed.value
    table.add("ours", "place one batch of new rows (after warm-up)", new_rows, secs(p["batch_s"]),
              fmt(placed.peak_mb, 0), f"best of 2, rows read as an upload reads them (excluded); {p['segments']} "
                                      "segments")
    table.add("ours", f"place 1 row, p50 / p95 ({singles} new rows)", 1,
              f"{secs(p['p50_s'])} / {secs(p['p95_s'])}", "", "model.place on a 1-row frame of the upload's text cells")
    seed_model = ctx.fitted("seed", sizes[0], TRAIN_SEED)["release"]
    seed_file = ctx.customer_file(new_rows, NEW_ROWS_SEED)
    seed = run_child("bench.tables:child_seed_place", {"model": seed_model, "data": str(seed_file),
                                                       "singles": max(20, singles // 10)}, timeout_s=3600)
    s = seed.value
    table.add("seed", f"place one batch of new rows ({sizes[0]:,}-row model)", new_rows, secs(s["batch_s"]),
              fmt(seed.peak_mb, 0), "load 4 pickles + UMAP.transform + approximate_predict")
    table.add("seed", f"place 1 row, p50 / p95 ({s['singles']} rows)", 1, f"{secs(s['p50_s'])} / {secs(s['p95_s'])}",
              "", "artifacts in memory (per request it also loads its pickles)")

    upload, upload_peak = _upload(ctx, release, new_file)
    runs = upload["runs"]
    table.add("ours", "POST /upload-excel, csv, end to end (first / second)", new_rows,
              f"{secs(runs[0]['wall_s'])} / {secs(runs[1]['wall_s'])}", fmt(upload_peak, 0),
              f"{fmt(upload['bytes'] / 2**20, 1)} MB file; read+place {secs(runs[0]['placement_ms'] / 1000)}; "
              f"{runs[0]['segments']} segments, provider {runs[0]['provider']}")
    table.notes += [
        "data: bench.tables.wide_retail(rows, seed) — generate_retail's 12 columns (id, name, email, age, income, "
        "orders, spend, signup, last purchase, channel, membership, city) plus app sessions, returns, tickets, "
        "discount %, points, newsletter, has app, region, favourite category, last login, all following the "
        "planted groups; training seed 42, new rows seed 2024, written as csv",
        "ours 'train' is train_table_release as `flask train` runs it: read, learn the schema, fit (UMAP on at most "
        "5,000 rows, the rest placed by the fast path), the agreement gate, a second fit for stability, personas "
        "and artifacts; peak RSS is the child's ru_maxrss; the second fit (stability) runs beside the first in a "
        "process of its own, whose peak is in the notes",
        "seed: cannot read a table of another schema (it needs Location, Gender, Join date, Tier); its rows are "
        "the loyalty file at the same size, generate_customers(rows, seed=42), fitted on every row"
        + ("" if ctx.full else f"; seed at {sizes[-1]:,} rows only with --full (UMAP on every row)"),
        "upload: Flask test client in a fresh process, model loaded and warmed up first, offline provider, "
        "MAX_UPLOAD_MB 100; includes reading the csv, schema matching, skipping, placing, personas and offline "
        "content per segment, saving the upload",
        "targets: train 5k <= 15 s and 100k x ~20 columns <= 30 s (fresh process); place 100k <= 2 s and "
        "<= 1 GB; 1 row p50 <= 5 ms; upload 100k <= 4 s",
    ]
    return [table]

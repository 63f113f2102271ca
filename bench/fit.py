"""Section `fit`: fit time, peak memory and artifact size, ours beside the seed recipe.

Each fit runs in a fresh process (bench.common.Context.fitted), which also records the quality
figures the `quality` section prints, so a model is fitted once per run whichever sections ask.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import Context, Table, fmt, read_canonical, secs, self_peak_mb, truth_for


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def child_fit_ours(data: str, out: str) -> dict[str, Any]:
    """train_release on one file (read, fit, personas, artifacts, manifest), publish it, then score it."""
    import numpy as np

    started = time.perf_counter()
    import hdbscan  # noqa: F401
    import umap  # noqa: F401

    from portal.segmentation import releases
    from portal.segmentation.training import train_release
    from portal.serving.live_model import load_release
    import_s = time.perf_counter() - started

    production, model_dir = Path(out) / "production_models", Path(out) / "model"
    started = time.perf_counter()
    staging, manifest, trained = train_release([Path(data)], production, progress=lambda m: None)
    train_s = time.perf_counter() - started
    fit_peak = self_peak_mb()
    final = releases.publish_release(staging, production, manifest["version"])
    releases.set_live(model_dir, final)

    from sklearn.metrics import adjusted_rand_score

    release = load_release(final, warm_up=False)
    placed = release.model.place(trained.customers)
    truth = truth_for(data, trained.customers)
    return {
        "release": str(final), "model_dir": str(model_dir), "import_s": import_s, "train_s": train_s,
        "fit_peak_mb": fit_peak, "timings": manifest["timings"], "metrics": manifest["metrics"],
        "parameters": manifest["parameters"], "training_rows": manifest["training_rows"],
        "release_mb": _size_mb(final), "umap_mb": (final / "umap.pkl").stat().st_size / 2**20,
        "ari": float(adjusted_rand_score(truth, placed.cluster_id)),
        "reassigned_share": float(np.mean(placed.reassigned)),
    }


def child_fit_seed(data: str, out: str) -> dict[str, Any]:
    """The seed recipe on the same rows; its quality figures computed the way ours are."""
    import numpy as np

    started = time.perf_counter()
    import hdbscan  # noqa: F401
    import umap  # noqa: F401

    from bench import seed_recipe
    import_s = time.perf_counter() - started

    started = time.perf_counter()
    customers = read_canonical(data)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = seed_recipe.fit(customers, Path(out))
    train_s = read_s + time.perf_counter() - started
    fit_peak = self_peak_mb()

    from sklearn.metrics import adjusted_rand_score

    labels = fitted["labels"]
    metrics = seed_recipe.metrics(fitted["embedding"], labels)
    clustered = np.flatnonzero(labels >= 0)
    agreement = None
    if len(clustered):
        # a sample, not the whole training array: UMAP.transform returns the stored layout for an exact copy
        picked = np.random.default_rng(0).choice(clustered, size=min(1000, len(clustered)), replace=False)
        again, _ = seed_recipe.place(customers.iloc[picked], fitted["models"])
        agreement = float(np.mean(again == labels[picked]))
    metrics["transform_agreement"] = agreement
    return {
        "release": out, "import_s": import_s, "train_s": train_s, "fit_peak_mb": fit_peak,
        "timings": {k: round(v, 2) for k, v in fitted["timings"].items()}, "metrics": metrics,
        "parameters": {**seed_recipe.UMAP_PARAMS, **seed_recipe.HDBSCAN_PARAMS}, "training_rows": len(customers),
        "release_mb": _size_mb(Path(out)),
        "umap_mb": (Path(out) / seed_recipe.ARTIFACTS["umap"]).stat().st_size / 2**20,
        "ari": float(adjusted_rand_score(truth_for(data, customers), labels)),
    }


def _umap_shape(params: dict[str, Any]) -> str:
    """UMAP neighbours / dimensions / min_dist of a fit, ours or the seed's, read from what it recorded."""
    umap = params.get("reducer", params)
    return f"{umap.get('n_neighbors')} / {umap.get('n_components')} / {umap.get('min_dist')}"


def run(ctx: Context) -> list[Table]:
    if ctx.quick:
        plan = [("ours", 2000), ("seed", 2000)]
    else:
        plan = [("ours", 5000), ("seed", 5000), ("ours", 50_000)] + ([("seed", 50_000)] if ctx.full else [])
    table = Table("fit: time, peak memory and artifact size (fresh process per fit)",
                  ["system", "rows", "UMAP k / dims / min_dist", "import", "read+fit+save", "UMAP fit",
                   "HDBSCAN fit", "placement table", "peak RSS MB", "artifacts MB", "UMAP pickle MB"])
    for kind, rows in plan:
        fit = ctx.fitted(kind, rows, 42)
        t = fit["timings"]
        table.add(kind, rows, _umap_shape(fit["parameters"]), f"{fit['import_s']:.2f} s",
                  f"{fit['train_s']:.2f} s", f"{t['umap_fit_s']:.2f} s",
                  f"{t['hdbscan_fit_s']:.2f} s", secs(t.get("table_s")), fmt(fit["fit_peak_mb"], 0),
                  fmt(fit["release_mb"], 1), fmt(fit["umap_mb"], 1))
    ours = next(ctx.fits[k]["parameters"] for k in ctx.fits if k[0] == "ours")
    if len({_umap_shape(ctx.fits[k]["parameters"]) for k in ctx.fits if k[0] == "ours"}) > 1:
        table.notes.append("the model code's defaults changed during this run: fits used different parameters")
    table.notes += [
        "data: generate_customers(rows, seed=42) written as csv; 'read+fit+save' is train_release for ours "
        "(ingestion, fit, personas, segment map, manifest with checksums) and read + fit + joblib.dump for the seed",
        "peak RSS: ru_maxrss of the fitting process, read right after the fit",
        "placement table: ours only, placing every location x tier x joining month once at training time "
        "(part of read+fit+save)",
        f"ours: UMAP n_neighbors={ours['reducer']['n_neighbors']}, n_components={ours['reducer']['n_components']}, "
        f"min_dist={ours['reducer']['min_dist']}, {ours['reducer'].get('n_epochs')} epochs, "
        f"fitted on at most {ours['max_fit_rows']:,} rows (the rest placed); "
        "seed: UMAP n_neighbors=120, n_components=10, min_dist=0.1 on every row",
        "targets (issue 3): fit 5k <= 15 s, 50k <= 90 s, artifacts <= 50 MB",
    ]
    if not ctx.full and not ctx.quick:
        table.notes.append("seed at 50k (~220 s) only with --full")
    return [table]

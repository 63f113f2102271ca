"""Section `segment_ids`: how many customers keep their segment id when a release is retrained.

Each scenario starts from a release fitted on N customers (live), trains a new one the way production
does, and places the first N customers with both. "HDBSCAN's own numbers" is the share the ids would have
kept without the matching (the new model's raw labels, undone from its relabel map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Context, Table, run_child


def _write_more(path: Path, rows: int, seed: int) -> Path:
    """Customers of the same population with ids of their own."""
    from portal.segmentation.sample_data import generate_customers

    customers, _ = generate_customers(rows=rows, seed=seed)
    customers["Customer ID"] = [f"NEW{seed}-{i:06d}" for i in range(rows)]
    customers.to_csv(path, index=False)
    return path


def child_scenarios(data: str, out: str, extra_rows: int) -> list[dict[str, Any]]:
    """Train the live release, then each scenario's new release against it; compare placements."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from portal.ingestion.reader import read_customer_file
    from portal.segmentation import releases
    from portal.segmentation.model import SegmentationParams
    from portal.segmentation.stages import ExactNeighbourUMAP
    from portal.segmentation.training import train_release
    from portal.serving.live_model import load_release
    from portal.serving.upload_store import UploadStore
    from portal.settings import load_settings
    from retraining.job import run_retraining

    root = Path(out)
    dirs = {k: root / k for k in ("model", "production_models", "uploads", "base_data")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    staging, manifest, _ = train_release([Path(data)], dirs["production_models"], progress=lambda m: None)
    first = releases.publish_release(staging, dirs["production_models"], manifest["version"])
    releases.set_live(dirs["model"], first)
    customers = read_customer_file(Path(data)).frame
    live = load_release(first, warm_up=False)
    before = live.model.place(customers).cluster_id
    more = _write_more(root / "more.csv", extra_rows, seed=1234)

    def compared(name: str, release_dir: Path) -> dict[str, Any]:
        new = load_release(release_dir, warm_up=False)
        after = new.model.place(customers).cluster_id
        raw_of = {stable: raw for raw, stable in new.model.relabel_.items()}
        raw = np.array([raw_of[c] for c in after])
        ids = new.manifest["segment_ids"]
        kept = [s for s in ids["segments"] if s["status"] == "kept"]
        return {"scenario": name, "customers": len(customers), "same_id": float(np.mean(after == before)),
                "same_raw": float(np.mean(raw == before)), "ari": float(adjusted_rand_score(before, after)),
                "counts": ids["counts"], "names_kept": sum(1 for s in kept if s.get("name_kept")),
                "live_segments": len(live.personas)}

    rows = []
    for name, files, seed in (("same customers, UMAP/sample seed 7", [Path(data)], 7),
                              (f"+{extra_rows:,} new customers ({extra_rows / len(customers):.0%})",
                               [Path(data), more], 42)):
        staging, manifest, _ = train_release(files, dirs["production_models"], progress=lambda m: None,
                                             params=SegmentationParams(random_state=seed),
                                             reducer=ExactNeighbourUMAP(random_state=seed), live=first)
        rows.append(compared(name, releases.publish_release(staging, dirs["production_models"],
                                                            manifest["version"])))

    # the steps: the sample uploaded, 1,000 more uploaded (each upload writes a snapshot), POST
    # /admin/retrain (the same run_retraining its child process runs), the sample placed again
    store = UploadStore(dirs["uploads"], dirs["base_data"], "bench-salt")
    store.write_snapshot("a" * 32, customers)
    store.write_snapshot("b" * 32, read_customer_file(more).frame.head(1000))
    settings = load_settings(_env_file=None, openai_api_key=None, redis_url=None, retrain_enabled=False,
                             model_dir=dirs["model"], production_models_dir=dirs["production_models"],
                             upload_dir=dirs["uploads"], base_data_dir=dirs["base_data"], sample_data_path=data,
                             snapshot_salt="bench-salt", log_level="WARNING")
    report = run_retraining(settings, progress=lambda m: None)
    if report.state != "succeeded":
        raise RuntimeError(f"retraining {report.state}: {report.reason}")
    rows.append(compared("sample + 1,000 uploaded, retrain (run_retraining)",
                         releases.live_release_dir(dirs["model"])))
    return rows


def run(ctx: Context) -> list[Table]:
    rows = 2000 if ctx.quick else 5000
    data = ctx.customer_file(rows, 42)
    result = run_child("bench.segment_ids:child_scenarios",
                       {"data": str(data), "out": str(ctx.workdir / "segment_ids"), "extra_rows": rows // 5},
                       timeout_s=3600)
    table = Table(f"segment_ids: customers keeping their segment id across a retrain ({rows:,}-customer live "
                  "release)", ["scenario", "same id", "HDBSCAN's own numbers", "ARI", "kept", "new", "vanished",
                              "names kept"])
    for r in result.value:
        c = r["counts"]
        table.add(r["scenario"], f"{r['same_id']:.1%}", f"{r['same_raw']:.1%}", r["ari"], c["kept"], c["new"],
                  c["vanished"], f"{r['names_kept']} of {r['live_segments']}")
    table.notes += [
        "data: generate_customers(N, seed=42) (the bundled sample's generator); new customers: seed 1234, own ids",
        "same id: share of the N customers placed in the same segment id by the live and the new release; "
        "HDBSCAN's own numbers: the same share with the new model's raw cluster labels (before this matching)",
        "kept / new / vanished: segments of the new release matched to a live one, given a new id, and live "
        "segments no cluster continues (the manifest's segment_ids)",
    ]
    return [table]

"""Ways to choose the smallest segment, measured on several planted structures and the real files at once.

    python -m bench.min_size                      # embed every file (cached), then score every alternative
    python -m bench.min_size --cache DIR          # keep the embeddings in DIR between runs

One global minimum segment share both merges small groups and splits large ones. Each file is fitted once
per reducer seed with the real model classes (the loyalty ``SegmentationModel``, the learned-schema
``TableSegmentationModel``); the clusterer is the only stage that varies, so every alternative is re-run
on the cached embedding of the fitted rows. ARI is against the planted groups on the fitted rows, noise
reassigned to its likeliest segment (as the models do); noise is before reassignment.
Not part of ``make bench``: about 26 UMAP fits.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bench.common import ROOT, Table

log = logging.getLogger(__name__)

LOYALTY = (("bundled", 42), ("bundled", 7), ("bundled", 123), ("three-unbalanced", 42), ("three-unbalanced", 7),
           ("eight-overlapping", 42), ("eight-overlapping", 7))
TABLES = (("retail", 3000, 7), ("retail", 5000, 19), ("orders", 2000, 7))
REAL_FILES = ("mall_customers.csv", "marketing_campaign.csv", "telco_customer_churn.xlsx")
SHARES = (0.02, 0.04, 0.08, 0.12)
SEEDS = (42, 43)


@dataclass
class Embedded:
    """A file's fitted rows in the reducer space (one per reducer seed), its truth and the clusterer floors."""

    name: str
    embeddings: list[np.ndarray]
    truth: np.ndarray | None
    floors: tuple[int, int]
    fit_s: float
    model_ari: float | None


def _loyalty(structure: str, seed: int, scratch: Path) -> tuple[Any, Any]:
    from bench.common import child_write_customers, read_canonical, truth_for

    path = scratch / f"{structure}-{seed}.csv"
    child_write_customers(str(path), 5000, seed, False, structure)
    customers = read_canonical(path)
    return customers, truth_for(path, customers)


def embed_loyalty(structure: str, seed: int, scratch: Path) -> Embedded:
    from portal.segmentation.model import SegmentationModel
    from portal.segmentation.stages import ExactNeighbourUMAP

    customers, truth = _loyalty(structure, seed, scratch)
    embeddings, fit_s, model_ari = [], 0.0, None
    for reducer_seed in SEEDS:
        started = time.perf_counter()
        model = SegmentationModel(reducer=ExactNeighbourUMAP(random_state=reducer_seed)).fit(
            customers, progress=lambda m: None)
        fit_s += time.perf_counter() - started
        assert len(model.fit_rows_) == len(model.embedding_sample_), "fitted rows beyond the kept embedding"
        embeddings.append(model.embedding_sample_)
        if model_ari is None:
            model_ari = float(adjusted_rand_score(truth, model.place(customers).cluster_id))
    return Embedded(f"loyalty {structure} seed {seed}", embeddings, truth[model.fit_rows_], (50, 10),
                    fit_s / len(SEEDS), model_ari)


def embed_table(label: str, path: Path, answers: pd.DataFrame | None) -> Embedded:
    from portal.segmentation.table_model import (
        TABLE_MIN_CLUSTER_FLOOR,
        TABLE_MIN_SAMPLES_FLOOR,
        TableParams,
        TableSegmentationModel,
        table_reducer,
    )
    from portal.segmentation.table_training import read_training_table

    data = read_training_table(path, progress=lambda m: None)
    embeddings, fit_s, model_ari, truth = [], 0.0, None, None
    for reducer_seed in SEEDS:
        started = time.perf_counter()
        model = TableSegmentationModel(
            data.schema, TableParams(min_fast_path_agreement=0),
            reducer=table_reducer(reducer_seed)).fit(
            data.frame, progress=lambda m: None)
        fit_s += time.perf_counter() - started
        embeddings.append(model.embedding_sample_)
        if answers is not None and truth is None:
            ids = data.frame[data.schema.identifier]
            everyone = ids.map(dict(zip(answers["Customer ID"], answers["true_group"]))).to_numpy()
            truth = everyone[model.fit_rows_]
            model_ari = float(adjusted_rand_score(everyone, model.labels_))
    return Embedded(label, embeddings, truth, (TABLE_MIN_CLUSTER_FLOOR, TABLE_MIN_SAMPLES_FLOOR),
                    fit_s / len(SEEDS), model_ari)


def embed_all(cache: Path, scratch: Path, only: str | None) -> list[Embedded]:
    """Every file's embeddings, read from ``cache`` when an earlier run wrote them."""
    import pickle

    from portal.segmentation.table_sample_data import write_table_sample

    jobs: list[tuple[str, Callable[[], Embedded]]] = []
    for structure, seed in LOYALTY:
        jobs.append((f"loyalty-{structure}-{seed}", lambda s=structure, n=seed: embed_loyalty(s, n, scratch)))
    for kind, rows, seed in TABLES:
        def job(k: str = kind, r: int = rows, s: int = seed) -> Embedded:
            path = write_table_sample(scratch / f"{k}-{r}-{s}.csv", k, r, s)
            return embed_table(f"{k} {r} seed {s}", path, pd.read_csv(path.with_name(path.stem + ".answers.csv")))
        jobs.append((f"{kind}-{rows}-{seed}", job))
    folder = ROOT.parent / "shared" / "datasets"
    for name in REAL_FILES:
        if (folder / name).is_file():
            jobs.append((f"real-{name}", lambda n=name: embed_table(f"real {n}", folder / n, None)))
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for key, make in jobs:
        if only and only not in key:
            continue
        file = cache / f"{key}.pkl"
        if file.is_file():
            stored = pickle.loads(file.read_bytes())
            out.append(Embedded(**stored) if isinstance(stored, dict) else stored)
            continue
        log.warning("embedding %s", key)
        embedded = make()
        file.write_bytes(pickle.dumps(vars(embedded)))  # plain data: readable from any module
        out.append(embedded)
    return out


@dataclass
class Fit:
    labels: np.ndarray  # noise reassigned to its likeliest segment
    noise: float
    segments: int
    dbcv: float
    persistence: float
    seconds: float


def hdbscan_fit(E: np.ndarray, share: float, floors: tuple[int, int], method: str = "eom",
                epsilon: float = 0.0, validity: bool = False) -> Fit:
    """The product's clusterer settings at ``share`` (min_samples rule and floors as ShareScaledHDBSCAN)."""
    import hdbscan

    from portal.segmentation.library_workarounds.hdbscan_prediction import LabelledHDBSCAN
    from portal.segmentation.stages import ShareScaledHDBSCAN

    shape = ShareScaledHDBSCAN(min_cluster_share=share, min_cluster_floor=floors[0], min_samples_floor=floors[1])
    started = time.perf_counter()
    model = LabelledHDBSCAN(min_cluster_size=shape.min_cluster_size(len(E)), min_samples=shape.min_samples(len(E)),
                            cluster_selection_method=method, cluster_selection_epsilon=epsilon,
                            prediction_data=True, gen_min_span_tree=validity).fit(E)
    raw = np.asarray(model.labels_)
    ids = sorted(set(raw.tolist()) - {-1})
    labels = raw.copy()
    if ids and (raw < 0).any():
        vectors = np.atleast_2d(hdbscan.all_points_membership_vectors(model))
        labels[raw < 0] = np.asarray(ids)[vectors[raw < 0].argmax(axis=1)]
    dbcv = float(model.relative_validity_) if validity and len(ids) > 1 else float("-inf")
    persistence = float(np.mean(model.cluster_persistence_)) if ids else 0.0
    return Fit(labels, float(np.mean(raw < 0)), len(ids), dbcv, persistence, time.perf_counter() - started)


def _closest_to_today(shares: list[float]) -> float:
    return min(shares, key=lambda s: (abs(np.log(s / 0.08)), -s))


Alternative = Callable[[Embedded], tuple[Fit, str]]


def today(e: Embedded) -> tuple[Fit, str]:
    return hdbscan_fit(e.embeddings[0], 0.08, e.floors), "0.08"


def leaf(e: Embedded) -> tuple[Fit, str]:
    return hdbscan_fit(e.embeddings[0], 0.08, e.floors, method="leaf"), "0.08"


def by_dbcv(e: Embedded) -> tuple[Fit, str]:
    fits = {s: hdbscan_fit(e.embeddings[0], s, e.floors, validity=True) for s in SHARES}
    best = max(fits, key=lambda s: (fits[s].dbcv, -abs(np.log(s / 0.08))))
    return _timed(fits, best), f"{best}"


def by_persistence(e: Embedded) -> tuple[Fit, str]:
    fits = {s: hdbscan_fit(e.embeddings[0], s, e.floors) for s in SHARES}
    best = max(fits, key=lambda s: (fits[s].persistence if fits[s].segments > 1 else -1.0, -abs(np.log(s / 0.08))))
    return _timed(fits, best), f"{best}"


def by_stability(e: Embedded) -> tuple[Fit, str]:
    fits = {s: hdbscan_fit(e.embeddings[0], s, e.floors) for s in SHARES}
    others = {s: hdbscan_fit(e.embeddings[1], s, e.floors) for s in SHARES}
    agreement = {s: float(adjusted_rand_score(fits[s].labels, others[s].labels)) for s in SHARES}
    top = max(agreement.values())
    best = _closest_to_today([s for s in SHARES if agreement[s] >= top - 0.01])
    fit = _timed(fits, best)
    fit.seconds += sum(o.seconds for o in others.values())
    return fit, f"{best} (agree {agreement[best]:.2f})"


def by_subsample_stability(e: Embedded) -> tuple[Fit, str]:
    """As ``by_stability`` with two 80% subsamples of one embedding (no second reducer fit)."""
    E = e.embeddings[0]
    rng = np.random.default_rng(0)
    picks = [np.sort(rng.choice(len(E), size=int(0.8 * len(E)), replace=False)) for _ in range(2)]
    both = np.intersect1d(*picks)
    fits = {s: hdbscan_fit(E, s, e.floors) for s in SHARES}
    agreement, extra = {}, 0.0
    for s in SHARES:
        halves = [hdbscan_fit(E[p], s, e.floors) for p in picks]
        extra += sum(h.seconds for h in halves)
        on_both = [h.labels[np.searchsorted(p, both)] for h, p in zip(halves, picks)]
        agreement[s] = float(adjusted_rand_score(*on_both))
    top = max(agreement.values())
    best = _closest_to_today([s for s in SHARES if agreement[s] >= top - 0.01])
    fit = _timed(fits, best)
    fit.seconds += extra
    return fit, f"{best} (agree {agreement[best]:.2f})"


def by_epsilon(e: Embedded) -> tuple[Fit, str]:
    """A small share keeps small groups; an epsilon from the data (a high quantile of the distance to the
    min_samples-th neighbour) merges the splits that only a small share allows."""
    from sklearn.neighbors import NearestNeighbors

    from portal.segmentation.stages import ShareScaledHDBSCAN

    E = e.embeddings[0]
    started = time.perf_counter()
    k = ShareScaledHDBSCAN(min_cluster_share=0.02, min_cluster_floor=e.floors[0],
                           min_samples_floor=e.floors[1]).min_samples(len(E))
    distances, _ = NearestNeighbors(n_neighbors=k).fit(E).kneighbors(E)
    epsilon = float(np.quantile(distances[:, -1], 0.9))
    fit = hdbscan_fit(E, 0.02, e.floors, epsilon=epsilon)
    fit.seconds += time.perf_counter() - started - fit.seconds
    return fit, f"0.02, eps {epsilon:.2f}"


def _timed(fits: dict[float, Fit], best: float) -> Fit:
    chosen = fits[best]
    return Fit(chosen.labels, chosen.noise, chosen.segments, chosen.dbcv, chosen.persistence,
               sum(f.seconds for f in fits.values()))


ALTERNATIVES: tuple[tuple[str, Alternative], ...] = (
    ("1 today: eom, share 0.08", today), ("2 leaf, share 0.08", leaf),
    ("3a share by DBCV", by_dbcv), ("3b share by mean persistence", by_persistence),
    ("4 share by stability across reducer seeds", by_stability),
    ("4b share by stability across 80% subsamples", by_subsample_stability),
    ("5 eom share 0.02 + epsilon from data", by_epsilon))


def measure(files: list[Embedded]) -> list[Table]:
    detail = Table("min segment size alternatives, per file (ARI vs planted / segments / noise before reassignment)",
                   ["file", "alternative", "ARI", "segments", "noise", "chosen", "clusterer s"])
    scores: dict[str, dict[str, float]] = {name: {} for name, _ in ALTERNATIVES}
    seconds: dict[str, list[float]] = {name: [] for name, _ in ALTERNATIVES}
    segments: dict[str, dict[str, int]] = {name: {} for name, _ in ALTERNATIVES}
    ceiling: dict[str, dict[str, float]] = {}
    for e in files:
        for name, alternative in ALTERNATIVES:
            fit, chosen = alternative(e)
            ari = None if e.truth is None else round(float(adjusted_rand_score(e.truth, fit.labels)), 3)
            if ari is not None:
                scores[name][e.name] = ari
            segments[name][e.name] = fit.segments
            seconds[name].append(fit.seconds)
            detail.add(e.name, name, "-" if ari is None else f"{ari:.3f}", fit.segments, f"{fit.noise:.1%}", chosen,
                       f"{fit.seconds:.2f}")
        if e.truth is not None:
            for method in ("eom", "leaf"):
                oracle = {s: hdbscan_fit(e.embeddings[0], s, e.floors, method=method) for s in SHARES}
                aris = {s: float(adjusted_rand_score(e.truth, f.labels)) for s, f in oracle.items()}
                ceiling.setdefault(method, {})[e.name] = max(aris.values())
                detail.add(e.name, f"(ceiling: {method}, best share by the answers)", f"{max(aris.values()):.3f}",
                           oracle[max(aris, key=aris.__getitem__)].segments, "-",
                           " ".join(f"{s}:{a:.2f}" for s, a in aris.items()), "-")
    base = scores[ALTERNATIVES[0][0]]
    summary = Table("summary over the planted files (ARI); real files: segments (2-12 wanted)",
                    ["alternative", "mean ARI", "worst ARI", "worst vs today", "helps (> +0.03)", "hurts (< -0.03)",
                     "real-file segments", "clusterer s / file"])
    for name, _ in ALTERNATIVES:
        s = scores[name] or {"-": float("nan")}
        diff = {f: s[f] - base.get(f, float("nan")) for f in s}
        real = [f"{segments[name][e.name]}" for e in files if e.truth is None]
        summary.add(name, f"{np.mean(list(s.values())):.3f}", f"{min(s.values()):.3f}",
                    f"{round(min(diff.values()), 3) + 0.0:+.3f}",
                    ", ".join(_short(f) for f, d in diff.items() if d > 0.03) or "-",
                    ", ".join(_short(f) for f, d in diff.items() if d < -0.03) or "-",
                    " / ".join(real), f"{np.mean(seconds[name]):.2f}")
    calib = Table("calibration: the product's own ARI (model placement) beside the reduced measure for today",
                  ["file", "model ARI (placed)", "today, this measure", "reducer fit s (one seed)"])
    for e in files:
        if e.truth is not None:
            calib.add(e.name, f"{e.model_ari:.3f}", f"{base[e.name]:.3f}", f"{e.fit_s:.1f}")
    for method, best in ceiling.items():
        diff = {f: best[f] - base[f] for f in best}
        summary.add(f"(ceiling: {method}, best share per file by the answers)", f"{np.mean(list(best.values())):.3f}",
                    f"{min(best.values()):.3f}", f"{round(min(diff.values()), 3) + 0.0:+.3f}",
                    ", ".join(_short(f) for f, d in diff.items() if d > 0.03) or "-",
                    ", ".join(_short(f) for f, d in diff.items() if d < -0.03) or "-", "-", "-")
    summary.notes += [
        "real files in the order " + ", ".join(_short(e.name) for e in files if e.truth is None),
        f"shares tried by 3a, 3b, 4 and the ceilings: {', '.join(map(str, SHARES))}; ties go to the share nearest "
        "0.08; 4 takes the most agreeing share (within 0.01) between reducer seeds " + " and ".join(map(str, SEEDS)),
        "ceiling rows (per file): the best share picked with the answers, the most any share rule could give",
        "adopt a rule only if better on average, never more than 0.03 below today on a file, and 2-12 segments "
        "on the real files (then re-check the fast-path gate with a full fit)",
    ]
    return [summary, detail, calib]


def _short(name: str) -> str:
    return (name.replace("loyalty ", "").replace(" seed ", "/").replace("three-unbalanced", "3unb")
            .replace("eight-overlapping", "8ovl").replace("real ", "").split(".")[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.min_size", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "portal-min-size")
    parser.add_argument("--only", help="embed only files whose key contains this")
    parser.add_argument("--embed-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix="portal-min-size-"))
    try:
        files = embed_all(args.cache, scratch, args.only)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.embed_only:
        return 0
    for table in measure(files):
        sys.stdout.write(table.text() + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

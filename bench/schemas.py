"""Learned schemas end to end: train on a table, upload the same table, and print one table of results.

    python -m bench.schemas                       # the shared real files and the planted-group files
    python -m bench.schemas --only planted        # planted-group files only (or: real, weights, neighbourhoods)
    python -m bench.schemas --only other          # the second generator's 8 files beside KMeans and a ceiling
    python -m bench.schemas --only refinement     # the refining stage's odds on loyalty, planted and other files
    python -m bench.schemas --datasets DIR        # real files from another folder

For each real file: segments found (2–12 wanted), rows placed and skipped on upload, noise, fast-path
agreement with the full UMAP path, fit time. For each planted-group file (schemas other than the loyalty
one, written by ``portal.segmentation.table_sample_data``): ARI against the planted groups, noise before
reassignment, and stability (ARI between fits with two random seeds); and the feature block weighting
against its alternatives, and the UMAP neighbourhood and category encoding against theirs on 14 planted files;
the refining stage (``table_refiner``) against none and other odds on loyalty, planted and second-generator files;
and the 8 files of a second, independently written generator (``bench.other_generator``, a yardstick nothing is
tuned to) beside KMeans with the true number of groups and a supervised ceiling (``bench.other_baselines``).
Runs in this process with the offline content provider; also the ``schemas`` section of ``make bench``.
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bench.common import ROOT, Context, Table
from portal.segmentation.table_refiner import UPSTREAM_ODDS
from portal.segmentation.table_splitter import LOCAL_DEPENDENCE

CAMPAIGN = {"objective": "Win back customers", "industry": "Retail", "funnel_stage": "Retention",
            "past_engagement": "Low"}
REAL_FILES = ("mall_customers.csv", "marketing_campaign.csv", "telco_customer_churn.xlsx")
PLANTED = (("retail list", "retail", 3000, 7), ("retail list, other seed", "retail", 5000, 19),
           ("order export", "orders", 2000, 7))


def _app(workdir: Path):
    from app import create_app

    folders = {name: workdir / name for name in ("model", "production_models", "uploads", "base_data")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    app = create_app({"_env_file": None, "flask_env": "testing", "openai_api_key": None, "redis_url": None,
                      "model_dir": folders["model"], "production_models_dir": folders["production_models"],
                      "upload_dir": folders["uploads"], "base_data_dir": folders["base_data"],
                      "retrain_enabled": False, "log_level": "WARNING", "start_background": False})
    return app, folders


def train_and_upload(path: Path, workdir: Path) -> dict[str, Any]:
    """Train a release on ``path``, make it live, upload the same file; the figures of both."""
    from portal.segmentation import releases
    from portal.segmentation.table_training import train_table_release

    app, folders = _app(workdir)
    started = time.perf_counter()
    staging, manifest, data = train_table_release(path, folders["production_models"], progress=lambda m: None)
    fit_s = time.perf_counter() - started
    final = releases.publish_release(staging, folders["production_models"], manifest["version"])
    releases.set_live(folders["model"], final)
    app.extensions["portal"].models.reload_if_changed()
    client = app.test_client()
    started = time.perf_counter()
    response = client.post("/upload-excel", data={"file": (io.BytesIO(path.read_bytes()), path.name), **CAMPAIGN},
                           content_type="multipart/form-data")
    upload_s = time.perf_counter() - started
    body = response.get_json()
    app.extensions["portal"].content.close()
    metrics = manifest["metrics"]
    return {"manifest": manifest, "data": data, "fit_s": fit_s, "upload_s": upload_s, "status": response.status_code,
            "body": body, "metrics": metrics, "release": final}


def real_files(folder: Path, scratch: Path) -> Table:
    table = Table("Real files: train, then upload the same file (offline provider)",
                  ["file", "rows", "features", "segments", "placed", "skipped", "noise", "fast-path agreement",
                   "stability", "fit s", "upload s", "traits name own columns"])
    for name in REAL_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            result = train_and_upload(path, scratch / name)
        except Exception as exc:  # report the refusal and go on with the other files
            table.add(*[name, "-", "-", f"refused: {str(exc)[:90]}", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        body, m, data = result["body"], result["metrics"], result["data"]
        columns = {c.name for c in data.schema.features}
        traits = [t["trait"] for s in body.get("segments", []) for t in s["persona"]["distinguishing_traits"]]
        own = all(any(t.startswith(c) for c in columns) for t in traits) and bool(traits)
        table.add(*[name, len(data.frame), len(data.schema.features), len(body.get("segments", [])),
                   body["rows"]["used"], body["rows"]["skipped"], f"{m['noise_share']:.1%}",
                   f"{m['fast_path_agreement']:.2%}", m.get("stability"), f"{result['fit_s']:.1f}",
                   f"{result['upload_s']:.2f}", "yes" if own else "no"])
    return table


def planted(scratch: Path) -> Table:
    from portal.segmentation.table_sample_data import write_table_sample

    table = Table("Planted-group files with other schemas (targets: ARI >= 0.8, noise <= 15%, stability >= 0.8)",
                  ["file", "customers", "segments", "ARI vs planted", "noise before reassignment",
                   "stability (ARI across seeds)", "fast-path agreement", "fit s (two fits)"])
    for label, kind, rows, seed in PLANTED:
        path = write_table_sample(scratch / f"{kind}-{rows}-{seed}.csv", kind, rows, seed)
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
        try:
            result = train_and_upload(path, scratch / path.stem)
        except Exception as exc:
            table.add(*[label, rows, f"refused: {str(exc)[:90]}", "-", "-", "-", "-", "-"])
            continue
        data, m = result["data"], result["metrics"]
        model_labels = _labels(result["release"], data)
        truth = data.frame[data.schema.identifier].map(dict(zip(answers["Customer ID"], answers["true_group"])))
        table.add(*[f"{label} ({kind}, seed {seed})", len(data.frame), m["clusters"],
                   round(float(adjusted_rand_score(truth, model_labels)), 3), f"{m['noise_share']:.1%}",
                   m.get("stability"), f"{m['fast_path_agreement']:.2%}", f"{result['fit_s']:.1f}"])
    return table


#: Feature weighting alternatives beside the default (histogram member profiles scaled to one number's spread,
#: each block scaled by its dependence on the other columns: (AMI / 0.3)^2 in [0.1, 1]).
CAPPED_ONLY = {"profile": "mean", "profile_budget": 0.0, "dependence_floor": 1.0}
WEIGHTINGS = (("default: histogram profiles, dependence (AMI/0.3)^2, floor 0.1", {}),
              ("before: blocks capped, mean profiles, no dependence", CAPPED_ONLY),
              ("dependence only (mean profiles, capped)", {"profile": "mean", "profile_budget": 0.0}),
              ("histogram profiles only (no dependence)", {"dependence_floor": 1.0}),
              ("dependence relative to the table's largest, squared", {"dependence_reference": None}),
              ("no cap on any block", {"block_budget": float("inf")}),
              ("categories 2 apart", {"category_distance": 2.0}))
#: The bundled loyalty sample, read as a table of its own columns (the loyalty path's own figure: ARI 0.908).
LOYALTY_SAMPLE = ROOT / "sample_data" / "sample_customer_database_5000_singapore.xlsx"


def weightings(folder: Path, scratch: Path) -> Table:
    """The same files fitted with each feature weighting: segments, noise, agreement and (planted) ARI."""
    from portal.segmentation.table_model import TableParams, TableSegmentationModel
    from portal.segmentation.table_sample_data import write_table_sample
    from portal.segmentation.table_training import read_training_table

    table = Table("Feature block weighting (one fit each, gate off to show the agreement)",
                  ["file", "weighting", "segments", "noise", "fast-path agreement", "ARI vs planted", "fit s"])
    files = [(name, folder / name, None) for name in REAL_FILES if (folder / name).is_file()]
    if LOYALTY_SAMPLE.is_file():
        files.append(("bundled loyalty sample (generic path)", LOYALTY_SAMPLE,
                      pd.read_csv(LOYALTY_SAMPLE.with_name(LOYALTY_SAMPLE.stem + ".answers.csv"))))
    for label, kind, rows, seed in PLANTED[::2]:
        path = write_table_sample(scratch / f"w-{kind}-{rows}-{seed}.csv", kind, rows, seed)
        files.append((label, path, pd.read_csv(path.with_name(path.stem + ".answers.csv"))))
    for label, path, answers in files:
        data = read_training_table(path, progress=lambda m: None)
        for name, overrides in WEIGHTINGS:
            params = TableParams(min_fast_path_agreement=0, **overrides)
            started = time.perf_counter()
            try:
                model = TableSegmentationModel(data.schema, params).fit(data.frame, progress=lambda m: None)
            except Exception as exc:
                table.add(label, name, f"refused: {str(exc)[:60]}", "-", "-", "-", "-")
                continue
            ari = "-"
            if answers is not None:
                truth = data.frame[data.schema.identifier].map(dict(zip(answers["Customer ID"], answers["true_group"])))
                ari = round(float(adjusted_rand_score(truth, model.labels_)), 3)
            table.add(label, name, len(model.cluster_ids_), f"{model.noise_share_:.1%}",
                      f"{model.fast_path_agreement_:.2%}", ari, f"{time.perf_counter() - started:.1f}")
    return table


#: Planted retail lists and order exports beyond the two the tables above use: other seeds and sizes of the same
#: generator, where segment counts and ARI swing most.
DRAWS = (("retail", 3000, 7), ("retail", 5000, 19), ("retail", 4000, 3), ("retail", 4000, 1), ("retail", 4000, 2),
         ("retail", 3000, 4), ("retail", 5000, 5), ("retail", 2000, 6), ("retail", 4000, 8), ("orders", 2000, 7),
         ("orders", 2000, 1), ("orders", 2000, 2), ("orders", 3000, 3), ("orders", 1500, 4))
#: Reducer neighbourhood and category encoding alternatives: (label, fixed neighbours or None for the default share,
#: categories from which a categorical column is described by its members).
NEIGHBOURHOODS = (("default: 5% of rows (30-100) neighbours, 10+ categories by members", None, None),
                  ("before: 30 neighbours, every categorical one-hot", 30, 10**9),
                  ("30 neighbours, 10+ categories by members", 30, None),
                  ("70 neighbours, 10+ categories by members", 70, None),
                  ("5% of rows (30-100), every categorical one-hot", None, 10**9))


def neighbourhoods(scratch: Path) -> Table:
    """Each neighbourhood / encoding alternative on 14 planted retail and order files: ARI and segment counts."""
    from portal.segmentation.stages import ExactNeighbourUMAP
    from portal.segmentation.table_model import TableParams, TableSegmentationModel, table_reducer
    from portal.segmentation.table_sample_data import RETAIL_GROUPS, write_table_sample
    from portal.segmentation.table_training import read_training_table

    table = Table(f"UMAP neighbourhood and category encoding on {len(DRAWS)} planted retail and order files "
                  f"({len(RETAIL_GROUPS)} planted groups each; one fit each, gate off)",
                  ["alternative", "mean ARI", "worst ARI", "files >= 0.8", f"files with {len(RETAIL_GROUPS)} segments",
                   "min fast-path agreement", "mean fit s"])
    files = []
    for kind, rows, seed in DRAWS:
        path = write_table_sample(scratch / f"n-{kind}-{rows}-{seed}.csv", kind, rows, seed)
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
        data = read_training_table(path, progress=lambda m: None)
        files.append((data, data.frame[data.schema.identifier].map(dict(zip(answers["Customer ID"],
                                                                             answers["true_group"])))))
    for label, neighbours, profile_from in NEIGHBOURHOODS:
        aris, counts, agreements, seconds = [], [], [], []
        for data, truth in files:
            params = TableParams(min_fast_path_agreement=0,
                                 **({"profile_from_categories": profile_from} if profile_from else {}))
            reducer = table_reducer(params.random_state) if neighbours is None else \
                ExactNeighbourUMAP(n_neighbors=neighbours, random_state=params.random_state)
            started = time.perf_counter()
            model = TableSegmentationModel(data.schema, params, reducer=reducer).fit(data.frame,
                                                                                     progress=lambda m: None)
            seconds.append(time.perf_counter() - started)
            aris.append(float(adjusted_rand_score(truth, model.labels_)))
            counts.append(len(model.cluster_ids_))
            agreements.append(model.fast_path_agreement_)
        table.add(label, round(sum(aris) / len(aris), 3), round(min(aris), 3), sum(a >= 0.8 for a in aris),
                  sum(c == len(RETAIL_GROUPS) for c in counts), f"{min(agreements):.1%}",
                  round(sum(seconds) / len(seconds), 1))
    return table


#: Alternatives after the clusterer: (label, value-cell merges first (``table_merger``), the refining stage's
#: odds for the clusterer's segment (None: no stage), splits before it (None: none; the dependence at which
#: blocks are weighed as one; inf: every block weighed, plain naive-Bayes BIC), mixed segments dissolved after
#: the splits (``table_dissolver``)). Each is what training does from the same clusterer segments, gate aside.
REFINEMENTS: tuple[tuple[str, bool, float | None, float | None, bool], ...] = (
    ("the clusterer's segments alone", False, None, None, False),
    ("value-cell merges alone", True, None, None, False),
    ("merges, odds 1.5, no splits", True, 1.5, None, False),
    ("merges, odds 2, no splits", True, UPSTREAM_ODDS, None, False),
    ("merges, odds 4, no splits", True, 4.0, None, False),
    ("merges, odds 2, splits by BIC, every block weighed", True, UPSTREAM_ODDS, float("inf"), False),
    ("merges, odds 2, splits, blocks dependent >= 0.05 as one", True, UPSTREAM_ODDS, 0.05, False),
    (f"merges, odds 2, splits, blocks dependent >= {LOCAL_DEPENDENCE} as one", True, UPSTREAM_ODDS,
     LOCAL_DEPENDENCE, False),
    ("merges, odds 2, splits, blocks dependent >= 0.2 as one", True, UPSTREAM_ODDS, 0.2, False),
    (f"no merges, odds 2, splits >= {LOCAL_DEPENDENCE}, mixed segments dissolved", False, UPSTREAM_ODDS,
     LOCAL_DEPENDENCE, True),
    (f"default: merges, odds 2, splits >= {LOCAL_DEPENDENCE}, mixed segments dissolved", True, UPSTREAM_ODDS,
     LOCAL_DEPENDENCE, True))


LOYALTY_DRAWS = (("bundled", 42), ("bundled", 7), ("bundled", 123), ("bundled", 5), ("three-unbalanced", 42),
                 ("eight-overlapping", 42))


def _refinement_files(scratch: Path) -> dict[str, list[tuple[Any, Any]]]:
    """(table data, planted group per row) of each file, by family: the bundled loyalty sample and two other
    loyalty structures read as tables of their own columns, the 14 planted retail and order files, and the second
    generator's 8."""
    import numpy as np

    from bench.other_generator import write_all
    from portal.segmentation.sample_data import write_sample
    from portal.segmentation.table_sample_data import write_table_sample
    from portal.segmentation.table_training import read_training_table

    families: dict[str, list[tuple[Any, Any]]] = {"bundled loyalty sample, 4 seeds": [],
                                                  "other loyalty structures (2)": [],
                                                  f"planted retail and order files ({len(DRAWS)})": [],
                                                  "second generator (8)": []}
    names = list(families)
    for structure, seed in LOYALTY_DRAWS:
        path = write_sample(scratch / f"r-loyalty-{structure}-{seed}.csv", 5000, seed, structure)
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
        families[names[0 if structure == "bundled" else 1]].append(
            (read_training_table(path, progress=lambda m: None), answers["true_group"].to_numpy()))
    for kind, rows, seed in DRAWS:
        path = write_table_sample(scratch / f"r-{kind}-{rows}-{seed}.csv", kind, rows, seed)
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"))
        data = read_training_table(path, progress=lambda m: None)
        families[names[2]].append((data, data.frame[data.schema.identifier].map(
            dict(zip(answers["Customer ID"], answers["true_group"]))).to_numpy()))
    for stem, path, _ in write_all(scratch / "r-other"):
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"), dtype=str, keep_default_na=False)
        data = read_training_table(path, progress=lambda m: None)
        truth = _other_truth(stem, data, answers, answers["true_group"].astype(int).to_numpy())[1]
        if truth is not None:
            families[names[3]].append((data, np.asarray(truth)))
    return families


def refinement(scratch: Path) -> Table:
    """The refining stage against none and other odds, on the clusterer's own segments of each file (one fit
    per file; the stage is refitted from the same segments for each alternative, as training fits it)."""
    import numpy as np

    from portal.segmentation.table_dissolver import MixedSegmentDissolver
    from portal.segmentation.table_merger import ValueCellMerger
    from portal.segmentation.table_model import TableParams, TableSegmentationModel
    from portal.segmentation.table_refiner import SegmentRefiner
    from portal.segmentation.table_splitter import SegmentSplitter

    families = _refinement_files(scratch)
    table = Table("Splits and the refining stage (latent-class model after HDBSCAN): ARI against the planted groups, "
                  "mean / worst / files >= 0.8 per family; one fit per file, gate off",
                  ["alternative", *families, "rows moved (mean)", "segments (min-max)"])
    scores: dict[str, dict[str, list[float]]] = {label: {f: [] for f in families} for label, *_ in REFINEMENTS}
    moved: dict[str, list[float]] = {label: [] for label, *_ in REFINEMENTS}
    counts: dict[str, list[int]] = {label: [] for label, *_ in REFINEMENTS}
    for family, files in families.items():
        for data, truth in files:
            model = TableSegmentationModel(data.schema, TableParams(
                min_fast_path_agreement=0, upstream_odds=None, local_dependence=None, merge_value_cells=False))
            model.fit(data.frame, progress=lambda m: None, measure_agreement=False)
            X, upstream = model.features_.transform(data.frame)[model.fit_rows_], model.vote_labels_
            keep = truth[model.fit_rows_] >= 0 if truth.dtype.kind in "if" else np.ones(len(upstream), bool)
            blocks = model.features_.block_columns()
            merged = ValueCellMerger(blocks).fit(X, upstream).labels_
            for label, merges, odds, dependence, dissolve in REFINEMENTS:
                labels, split_from = merged if merges else upstream, {}
                if dependence is not None:
                    splitter = SegmentSplitter(blocks, local_dependence=dependence).fit(X, labels)
                    labels, split_from = splitter.labels_, dict(splitter.parents_)
                if dissolve and len(np.unique(labels)) > 2:
                    dissolver = MixedSegmentDissolver(blocks).fit(X, labels, set(split_from.values()))
                    labels = dissolver.labels_
                    split_from = {c: p for c, p in split_from.items() if c not in dissolver.dissolved_}
                if odds is not None and len(np.unique(labels)) > 1:
                    labels = SegmentRefiner(blocks, upstream_odds=odds).fit(X, labels, split_from).labels_
                counts[label].append(len(np.unique(labels)))
                scores[label][family].append(float(adjusted_rand_score(truth[model.fit_rows_][keep],
                                                                       labels[keep])))
                moved[label].append(float(np.mean(labels != upstream)))
    for label, *_ in REFINEMENTS:
        cells = [f"{np.mean(v):.3f} / {min(v):.3f} / {sum(a >= 0.8 for a in v)} of {len(v)}"
                 for v in scores[label].values()]
        table.add(label, *cells, f"{np.mean(moved[label]):.1%}", f"{min(counts[label])}-{max(counts[label])}")
    table.notes.append("the loyalty files are read as tables of their own columns (the learned-schema path), not "
                       "through the loyalty model; every file here has at most 5,000 rows, so all are fitted")
    table.notes.append("'rows moved' compares with the clusterer's labels (a split segment's new half counts as "
                       "moved); with every block weighed, BIC buys segments for correlations inside a group (spend "
                       "rises with orders and tenure); training also undoes splits the fast path cannot serve alike "
                       "(the agreement gate), which this table leaves aside")
    return table


def _id_text(value: Any) -> str:
    """Comparable text of an id value (a number read as a float loses its '.0')."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _other_truth(stem: str, data: Any, answers: pd.DataFrame, in_order: Any) -> tuple[str, Any]:
    """The planted group of each training row of a second-generator file (by its id where the learned schema
    found it, else by row order; -1 for ids not in the answers), and the file's label saying which was used."""
    import numpy as np

    identifier = data.schema.identifier
    if identifier is not None:
        of_id = dict(zip(answers["Customer ID"].str.strip(), in_order))
        mapped = np.array([of_id.get(_id_text(v), -1) for v in data.frame[identifier]])
        unmapped = int((mapped < 0).sum())
        if unmapped < len(mapped):
            return (f"{stem} ({unmapped} ids not in the answers, left out)" if unmapped else stem), mapped
        label = f"{stem} (identifier {identifier!r} is not the answers' id: row order)"
    else:
        label = f"{stem} (no identifier found: row order)"
    return label, in_order if len(in_order) == len(data.frame) else None


def other_generator(scratch: Path) -> Table:
    """The 8 files of ``bench.other_generator`` trained as the product does (gate off), each beside KMeans given
    the true number of groups and a supervised ceiling: a yardstick only, the ARI gap is the gap to close."""
    import numpy as np

    from bench.other_baselines import kmeans_true_k, supervised_ceiling
    from bench.other_generator import DATE_FORMATS, PERSONAL_COLUMNS, write_all
    from portal.segmentation.table_model import TableParams, TableSegmentationModel, table_reducer
    from portal.segmentation.table_training import read_training_table

    table = Table("Second generator (bench.other_generator, seed 2024; a yardstick, nothing is tuned to it): "
                  "one fit each, gate off, refit with seed 43",
                  ["file", "rows", "planted groups", "segments", "ARI vs planted", "stability (ARI seeds 42/43)",
                   "noise", "fast-path agreement", "KMeans true-K ARI", "supervised ceiling ARI"])
    ours: list[float] = []
    kmeans: list[float] = []
    for stem, path, _ in write_all(scratch / "other_generator"):
        answers = pd.read_csv(path.with_name(path.stem + ".answers.csv"), dtype=str, keep_default_na=False)
        in_order = answers["true_group"].astype(int).to_numpy()
        raw = pd.read_csv(path)
        km = kmeans_true_k(raw, PERSONAL_COLUMNS[stem], DATE_FORMATS, in_order)
        ceiling = supervised_ceiling(raw, PERSONAL_COLUMNS[stem], DATE_FORMATS, in_order)
        kmeans.append(km)
        planted_groups = len(np.unique(in_order))
        try:
            data = read_training_table(path, progress=lambda m: None)
            model = TableSegmentationModel(data.schema, TableParams(min_fast_path_agreement=0)).fit(
                data.frame, progress=lambda m: None)
            other = TableSegmentationModel(data.schema, TableParams(min_fast_path_agreement=0, random_state=43),
                                           reducer=table_reducer(43)).fit(data.frame, progress=lambda m: None,
                                                                          measure_agreement=False)
        except Exception as exc:  # report the refusal and go on with the other files
            table.add(stem, len(raw), planted_groups, f"refused: {str(exc)[:60]}", "-", "-", "-", "-",
                      round(km, 3), round(ceiling, 3))
            continue
        labels = np.asarray(model.labels_)
        label, truth = _other_truth(stem, data, answers, in_order)
        if truth is None:
            ari: Any = "-"
        else:
            keep = truth >= 0
            ari = float(adjusted_rand_score(truth[keep], labels[keep]))
            ours.append(ari)
            ari = round(ari, 3)
        table.add(label, len(data.frame), planted_groups, len(model.cluster_ids_), ari,
                  round(float(adjusted_rand_score(labels, other.labels_)), 3), f"{model.noise_share_:.1%}",
                  f"{model.fast_path_agreement_:.2%}", round(km, 3), round(ceiling, 3))

    def summary(values: list[float]) -> str:
        if not values:
            return "no file scored"
        return (f"mean ARI {sum(values) / len(values):.3f}, worst {min(values):.3f}, "
                f"files >= 0.8: {sum(v >= 0.8 for v in values)} of {len(values)}")

    table.notes.append(f"ours: {summary(ours)}; KMeans with the true K: {summary(kmeans)}")
    table.notes.append("KMeans is handed the true number of groups and the columns to drop; the ceiling is gradient "
                       "boosting trained on the answers (5-fold); noise is before reassignment")
    return table


#: Loyalty structures the defaults were not tuned on, each drawn with several seeds (the group sizes change with it).
STRUCTURE_SEEDS = (42, 7, 123, 5, 99)


def merged_twins(groups: Any) -> dict[int, int]:
    """Each planted group's index, or the first one's where two groups differ only in their areas: their members'
    columns are drawn independently given the group, so a mixture of the two is one group with the union of their
    areas and no method can tell them apart from the data (the answers can)."""
    first: dict[tuple[Any, ...], int] = {}
    into = {}
    for i, group in enumerate(groups):
        key = (group.tier_mix, group.joined_from, group.joined_to, group.female_share)
        into[i] = first.setdefault(key, i)
    return into


def structures(scratch: Path) -> Table:
    """The harder loyalty structures over several seeds, trained as the product trains (agreement gate on), beside a
    supervised ceiling; where two planted groups differ only in their areas, also against the groups the data can
    tell apart."""
    import numpy as np

    from bench.other_baselines import supervised_ceiling
    from portal.errors import TrainingError
    from portal.segmentation.sample_data import STRUCTURES, write_sample
    from portal.segmentation.table_model import TableParams, TableSegmentationModel
    from portal.segmentation.table_training import read_training_table

    table = Table("Harder loyalty structures over seeds (learned-schema path as training runs it, agreement gate "
                  "on; the training customers placed as served)",
                  ["structure", "seed", "segments", "noise before reassignment", "fast-path agreement",
                   "ARI vs planted",
                   "supervised ceiling", "ARI vs separable groups", "ceiling of a method that cannot tell twins apart"])
    scores: dict[str, list[float]] = {}
    for structure in ("three-unbalanced", "eight-overlapping"):
        into = merged_twins(STRUCTURES[structure][0])
        has_twins = len(set(into.values())) < len(into)
        for seed in STRUCTURE_SEEDS:
            path = write_sample(scratch / f"s-{structure}-{seed}.csv", 5000, seed, structure)
            raw = pd.read_csv(path)
            truth = pd.read_csv(path.with_name(path.stem + ".answers.csv"))["true_group"].to_numpy()
            data = read_training_table(path, progress=lambda m: None)
            try:
                model = TableSegmentationModel(data.schema, TableParams()).fit(data.frame, progress=lambda m: None)
            except TrainingError as exc:
                table.add(structure, seed, f"refused: {str(exc)[:80]}", *["-"] * 6)
                continue
            labels = np.asarray(model.place(data.frame).cluster_id)
            personal = [c for c in raw.columns if c not in {f.name for f in data.schema.features}]
            dates = {"Date Joined": "%Y-%m-%d"}
            ari = float(adjusted_rand_score(truth, labels))
            scores.setdefault(structure, []).append(ari)
            separable, twin_ceiling = "-", "-"
            if has_twins:
                merged = np.vectorize(into.get)(truth)
                separable = f"{adjusted_rand_score(merged, labels):.3f}"
                twin_ceiling = f"{supervised_ceiling(raw, personal, dates, merged, scored_on=truth):.3f}"
            table.add(structure, seed, len(model.cluster_ids_), f"{model.noise_share_:.1%}",
                      f"{model.fast_path_agreement_:.2%}", f"{ari:.3f}",
                      f"{supervised_ceiling(raw, personal, dates, truth):.3f}", separable, twin_ceiling)
    for structure, values in scores.items():
        table.notes.append(f"{structure}: mean ARI {np.mean(values):.3f}, worst {min(values):.3f}, "
                           f"seeds >= 0.8: {sum(v >= 0.8 for v in values)} of {len(values)}")
    table.notes.append("eight-overlapping plants two groups ('north-east early silver', 'west-east early silver') that "
                       "differ only in their areas; every column is drawn independently given the group, so their "
                       "mixture is exactly one group living in either set of areas. 'ARI vs separable groups' scores "
                       "against the planted groups with such twins merged; the last column is gradient boosting "
                       "trained on those merged answers (5-fold), scored against the planted groups: about the best "
                       "a method can do without the answers")
    return table


def _labels(release: Path, data) -> Any:
    """The saved model's placement of the training customers."""
    from portal.segmentation.table_model import TableSegmentationModel

    return TableSegmentationModel.load(release).place(data.frame).cluster_id


def run(ctx: Context) -> list[Table]:
    """The ``schemas`` section of ``make bench`` (weightings, neighbourhoods and the second generator left out in
    quick mode)."""
    folder = ROOT.parent / "shared" / "datasets"
    scratch = ctx.workdir / "schemas"
    scratch.mkdir(parents=True, exist_ok=True)
    tables = [real_files(folder, scratch), planted(scratch)]
    return tables if ctx.quick else [*tables, weightings(folder, scratch), neighbourhoods(scratch),
                                     refinement(scratch), other_generator(scratch), structures(scratch)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("real", "planted", "weights", "neighbourhoods", "refinement",
                                                      "other", "structures"))
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix="portal-schemas-"))
    try:
        tables = []
        if args.only in (None, "real"):
            tables.append(real_files(args.datasets, scratch))
        if args.only in (None, "planted"):
            tables.append(planted(scratch))
        if args.only in (None, "weights"):
            tables.append(weightings(args.datasets, scratch))
        if args.only in (None, "neighbourhoods"):
            tables.append(neighbourhoods(scratch))
        if args.only in (None, "refinement"):
            tables.append(refinement(scratch))
        if args.only in (None, "other"):
            tables.append(other_generator(scratch))
        if args.only in (None, "structures"):
            tables.append(structures(scratch))
        for table in tables:
            sys.stdout.write(table.text() + "\n\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

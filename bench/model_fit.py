"""The upload fit check (`model_fit`) on lists that do and do not come from the training population, for both
model kinds: the figures behind the verdict thresholds in portal/serving/model_fit.py.

    python -m bench.model_fit            # both kinds, every case (about 3 minutes on 2 cores)
    python -m bench.model_fit --quick    # fewer sizes
    python -m bench.run --only model_fit # the same, as a section of `make bench`

In-population lists are samples of the training file of several sizes, fresh draws of the same generator (other
seeds, so another mix of the same groups) and a campaign list of one planted group. Other populations are the
loyalty generator's other structures, the bundled groups with another area mix, other tiers or other joining
dates, and another schema's leftovers (the retail table's columns under loyalty names); for the learned-schema
model, retail lists with other ages and incomes, other cities, one membership level, or money columns left
blank in most rows.
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import Context, Table

log = logging.getLogger(__name__)
Case = tuple[str, bool, Callable[[], pd.DataFrame]]


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, date_format="%Y-%m-%d").encode()


def _loyalty_cases(training: pd.DataFrame, quick: bool) -> list[Case]:
    from portal.segmentation.sample_data import RESIDENTIAL_AREAS, generate_customers
    from portal.segmentation.table_sample_data import generate_retail

    sizes = (200, 2000) if quick else (100, 300, 1000, 5000)
    cases: list[Case] = []
    for n in sizes:
        cases.append((f"training sample, {n} rows", True,
                      lambda n=n: training.sample(n=min(n, len(training)), random_state=n)))
    for seed, n in ((1, 300), (2, 2000), (3, 10_000))[: 2 if quick else 3]:
        cases.append((f"fresh draw seed {seed}, {n} rows", True, lambda s=seed, n=n: generate_customers(n, s)[0]))
    answers = generate_customers(5000, 42)[1]
    cases.append(("one planted group (campaign list), 800 rows", True,
                  lambda: training[answers["true_group"].to_numpy() == 2].head(800)))
    shifted = list(RESIDENTIAL_AREAS[7:] + RESIDENTIAL_AREAS[:7])
    area_map = dict(zip(RESIDENTIAL_AREAS, shifted))

    def other_areas() -> pd.DataFrame:
        frame = generate_customers(2000, 5)[0]
        return frame.assign(Location=frame["Location"].map(area_map))

    def other_tiers() -> pd.DataFrame:
        frame = generate_customers(2000, 6)[0]
        swap = {"Silver": "Platinum", "Platinum": "Silver", "Gold": "Gold"}
        return frame.assign(**{"Loyalty Tier": frame["Loyalty Tier"].map(swap)})

    def other_dates() -> pd.DataFrame:
        frame = generate_customers(2000, 8)[0]
        return frame.assign(**{"Date Joined": frame["Date Joined"] - pd.DateOffset(years=6)})

    def leftovers() -> pd.DataFrame:
        frame = generate_retail(2000, 9)[0]
        return frame.rename(columns={"City": "Location", "Membership": "Loyalty Tier", "Signup Date": "Date Joined"})

    for structure in ("three-unbalanced", "eight-overlapping"):
        for seed, n in ((1, 500), (2, 5000))[: 1 if quick else 2]:
            cases.append((f"{structure} seed {seed}, {n} rows", False,
                          lambda st=structure, s=seed, n=n: generate_customers(n, s, st)[0]))
    cases += [("another area mix (areas shifted), 2000 rows", False, other_areas),
              ("other tiers (Silver and Platinum swapped), 2000 rows", False, other_tiers),
              ("other dates (joined 6 years earlier), 2000 rows", False, other_dates),
              ("another schema's leftovers (retail columns renamed), 2000 rows", False, leftovers)]
    return cases


def _table_cases(training: pd.DataFrame, quick: bool) -> list[Case]:
    from portal.segmentation.table_sample_data import generate_retail

    sizes = (200, 1500) if quick else (100, 300, 1000, 3000)
    cases: list[Case] = [(f"training sample, {n} rows", True,
                          lambda n=n: training.sample(n=min(n, len(training)), random_state=n)) for n in sizes]
    for seed, n in ((1, 300), (2, 2000), (3, 6000))[: 2 if quick else 3]:
        cases.append((f"fresh draw seed {seed}, {n} rows", True, lambda s=seed, n=n: generate_retail(n, s)[0]))

    def older_richer() -> pd.DataFrame:
        frame = generate_retail(2000, 11)[0]
        return frame.assign(Age=frame["Age"] + 25, **{"Annual Income": frame["Annual Income"] * 3})

    def other_cities() -> pd.DataFrame:
        frame = generate_retail(2000, 12)[0]
        return frame.assign(City=[f"Town {i % 40}" for i in range(len(frame))])

    def one_level() -> pd.DataFrame:
        frame = generate_retail(2000, 13)[0]
        return frame.assign(Membership="Diamond", **{"Preferred Channel": "In-store"})

    def blank_money() -> pd.DataFrame:
        frame = generate_retail(2000, 14)[0]
        blank = np.random.default_rng(14).random(len(frame)) < 0.6
        frame.loc[blank, ["Annual Income", "Total Spend"]] = np.nan
        return frame

    cases += [("older, richer customers (+25 years, income x3), 2000 rows", False, older_richer),
              ("other cities (none known), 2000 rows", False, other_cities),
              ("one membership level and channel, 2000 rows", False, one_level),
              ("another schema's leftovers (income and spend blank in 60%), 2000 rows", False, blank_money)]
    return cases


def _score_loyalty(release: Any, frame: pd.DataFrame) -> dict[str, Any]:
    from portal.errors import PortalError
    from portal.ingestion.reader import read_customer_file
    from portal.serving import model_fit

    try:
        table = read_customer_file(_csv(frame), filename="list.csv")
    except PortalError as exc:
        return {"refused": exc.message[:60]}
    placement = release.model.place(table.frame)
    return model_fit.for_loyalty_upload(release, table.frame, placement, table.rows_received, table.skipped_count,
                                        "0" * 32)


def _score_table(release: Any, frame: pd.DataFrame) -> dict[str, Any]:
    from portal.errors import PortalError
    from portal.serving import model_fit
    from portal.serving.table_upload import read_upload

    try:
        upload = read_upload(_csv(frame), release.model, release.manifest, 1_000_000)
    except PortalError as exc:
        return {"refused": exc.message[:60]}
    return model_fit.for_table_upload(release, upload, "0" * 32)


def _table(kind: str, cases: list[Case], score: Callable[[pd.DataFrame], dict[str, Any]]) -> tuple[Table, list]:
    from portal.serving.model_fit import GOOD_AT, POOR_BELOW

    table = Table(f"model_fit on a {kind} model: in-population lists vs other populations",
                  ["list", "population", "score", "verdict", "weakest part", "distance (feature)", "unseen",
                   "out of range", "skipped", "confidence drop"])
    results = []
    for name, inside, make in cases:
        fit = score(make())
        if "refused" in fit:
            table.add(name, "training" if inside else "other", "—", "422", fit["refused"], "", "", "", "", "")
            continue
        parts = fit["parts"]
        distance = parts["distribution_distance"]
        shown = f"{distance['value']:.3f} ({distance['feature']})" if distance.get("value") is not None else "n/a"
        table.add(name, "training" if inside else "other", f"{fit['score']:.3f}", fit["verdict"], fit["weakest"],
                  shown, f"{parts['unseen_categories']['value']:.3f}", f"{parts['out_of_range']['value']:.3f}",
                  f"{parts['skipped_rows']['value']:.3f}", f"{parts['mean_confidence']['value']:.3f}")
        results.append((inside, fit["score"]))
    inside_scores = [s for i, s in results if i]
    outside_scores = [s for i, s in results if not i]
    table.notes.append(f"thresholds: good at score >= {GOOD_AT}, poor below {POOR_BELOW}; lowest in-population score "
                       f"{min(inside_scores):.3f}, highest other-population score "
                       f"{max(outside_scores) if outside_scores else float('nan'):.3f}")
    return table, results


def run(ctx: Context) -> list[Table]:
    """The `model_fit` section of `python -m bench.run`."""
    return measure(ctx.quick)


def measure(quick: bool = False) -> list[Table]:
    from portal.segmentation import releases
    from portal.segmentation.sample_data import generate_customers
    from portal.segmentation.table_sample_data import generate_retail
    from portal.segmentation.table_training import train_table_release
    from portal.segmentation.training import train_release
    from portal.serving.live_model import load_release

    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        training = generate_customers(5000, 42)[0]
        path = folder / "loyalty.csv"
        path.write_bytes(_csv(training))
        staging, manifest, _ = train_release([path], folder / "models", progress=lambda m: None)
        loyalty = load_release(releases.publish_release(staging, folder / "models", manifest["version"]))
        tables.append(_table("loyalty (bundled generator, 5,000 rows, seed 42)", _loyalty_cases(training, quick),
                             lambda f: _score_loyalty(loyalty, f))[0])

        retail = generate_retail(3000, 7)[0]
        path = folder / "retail.csv"
        path.write_bytes(_csv(retail))
        staging, manifest, _ = train_table_release(path, folder / "models", progress=lambda m: None,
                                                   measure_stability=False)
        table_release = load_release(releases.publish_release(staging, folder / "models", manifest["version"]))
        retail_back = pd.read_csv(io.BytesIO(_csv(retail)))
        tables.append(_table("learned-schema (retail generator, 3,000 rows, seed 7)", _table_cases(retail_back, quick),
                             lambda f: _score_table(table_release, f))[0])
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for table in measure(args.quick):
        print(table.markdown() if args.markdown else table.text(), end="\n\n")


if __name__ == "__main__":
    main()

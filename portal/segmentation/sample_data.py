"""Seeded generator of a realistic Singapore loyalty-programme customer database.

The bundled default model is trained on its output, and quality tests and benchmarks compare the
segments they find with the latent groups it plants. The true group of every customer goes to a
separate answer file so nothing downstream can peek at it by accident.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Residential areas where customers of a retail loyalty programme actually live.
RESIDENTIAL_AREAS = (
    "Ang Mo Kio", "Bedok", "Bishan", "Bukit Batok", "Bukit Merah", "Bukit Panjang", "Bukit Timah",
    "Choa Chu Kang", "Clementi", "Geylang", "Hougang", "Jurong East", "Jurong West", "Kallang",
    "Marine Parade", "Novena", "Pasir Ris", "Punggol", "Queenstown", "River Valley", "Sembawang",
    "Sengkang", "Serangoon", "Tampines", "Tanglin", "Toa Payoh", "Woodlands", "Yishun",
)

TIERS = ("Silver", "Gold", "Platinum")


@dataclass(frozen=True)
class PlantedGroup:
    """A latent customer group: where its members live, which tiers they hold, when they joined."""

    name: str
    areas: tuple[str, ...]
    tier_mix: tuple[float, float, float]
    joined_from: date
    joined_to: date
    female_share: float


PLANTED_GROUPS = (
    PlantedGroup("north-east veterans", ("Punggol", "Sengkang", "Hougang", "Serangoon", "Ang Mo Kio"),
                 (0.15, 0.45, 0.40), date(2015, 1, 1), date(2017, 12, 31), 0.55),
    PlantedGroup("western newcomers", ("Jurong West", "Jurong East", "Bukit Batok", "Choa Chu Kang",
                                       "Clementi"),
                 (0.75, 0.20, 0.05), date(2023, 1, 1), date(2025, 6, 30), 0.45),
    PlantedGroup("central premium", ("Bukit Timah", "Novena", "River Valley", "Tanglin", "Bishan"),
                 (0.05, 0.30, 0.65), date(2019, 1, 1), date(2021, 6, 30), 0.60),
    PlantedGroup("eastern families", ("Tampines", "Bedok", "Pasir Ris", "Marine Parade"),
                 (0.30, 0.55, 0.15), date(2020, 6, 1), date(2022, 12, 31), 0.50),
    PlantedGroup("northern regulars", ("Woodlands", "Yishun", "Sembawang"),
                 (0.55, 0.35, 0.10), date(2017, 1, 1), date(2019, 12, 31), 0.48),
)

#: Harder structures for quality checks that must not be tuned to the bundled sample: groups of very
#: different sizes, areas that cross regions, groups sharing areas or sharing tier mix and joining period.
THREE_UNBALANCED = (
    PlantedGroup("old east-central", ("Bedok", "Geylang", "Kallang", "Serangoon"), (0.6, 0.3, 0.1),
                 date(2012, 1, 1), date(2016, 6, 30), 0.5),
    PlantedGroup("south-west premium", ("Clementi", "Queenstown", "Bukit Merah", "Bukit Timah"), (0.1, 0.3, 0.6),
                 date(2016, 1, 1), date(2020, 12, 31), 0.6),
    PlantedGroup("recent mixed", ("Woodlands", "Ang Mo Kio", "Tampines"), (0.4, 0.4, 0.2),
                 date(2021, 1, 1), date(2024, 12, 31), 0.4),
)
EIGHT_OVERLAPPING = (
    PlantedGroup("north-east early silver", ("Punggol", "Sengkang", "Hougang"), (0.7, 0.25, 0.05),
                 date(2014, 1, 1), date(2016, 12, 31), 0.5),
    PlantedGroup("north-east later platinum", ("Punggol", "Sengkang", "Hougang"), (0.05, 0.25, 0.7),
                 date(2019, 1, 1), date(2021, 12, 31), 0.5),
    PlantedGroup("west-east early silver", ("Jurong West", "Jurong East", "Bedok"), (0.7, 0.25, 0.05),
                 date(2014, 1, 1), date(2016, 12, 31), 0.5),
    PlantedGroup("mixed newcomers", ("Jurong West", "Boon Lay", "Tampines", "Yishun"), (0.3, 0.5, 0.2),
                 date(2022, 1, 1), date(2025, 3, 31), 0.5),
    PlantedGroup("central old platinum", ("Orchard", "Novena", "Tanglin", "Bishan", "Toa Payoh"),
                 (0.05, 0.35, 0.6), date(2010, 1, 1), date(2013, 12, 31), 0.7),
    PlantedGroup("central mid silver", ("Orchard", "Novena", "Tanglin", "Bishan", "Toa Payoh"), (0.6, 0.3, 0.1),
                 date(2017, 1, 1), date(2018, 12, 31), 0.5),
    PlantedGroup("outer even", ("Woodlands", "Sembawang", "Pasir Ris", "Changi"), (0.34, 0.33, 0.33),
                 date(2019, 6, 1), date(2022, 6, 30), 0.3),
    PlantedGroup("west early platinum", ("Clementi", "Bukit Batok"), (0.05, 0.35, 0.6),
                 date(2014, 1, 1), date(2016, 12, 31), 0.5),
)
#: name → (groups, group weights or None for random, share of members living elsewhere)
STRUCTURES: dict[str, tuple[tuple[PlantedGroup, ...], tuple[float, ...] | None, float]] = {
    "bundled": (PLANTED_GROUPS, None, 0.08),
    "three-unbalanced": (THREE_UNBALANCED, (0.6, 0.3, 0.1), 0.15),
    "eight-overlapping": (EIGHT_OVERLAPPING, None, 0.15),
}

_SURNAMES_CHINESE = ("Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua", "Chan", "Koh", "Teo",
                     "Ang", "Yeo", "Tay", "Ho", "Low", "Toh", "Sim", "Chong", "Chia")
_GIVEN_CHINESE_F = ("Mei Ling", "Hui Min", "Xin Yi", "Jia Hui", "Li Ting", "Shu Fen", "Wei Ling",
                    "Pei Shan", "Yi Xuan", "Siew Lan")
_GIVEN_CHINESE_M = ("Wei Jie", "Jun Hao", "Zhi Hao", "Kok Leong", "Boon Keng", "Chee Meng", "Jia Wei",
                    "Yong Sheng", "Kai Wen", "Teck Soon")
_MALAY_F = ("Nur Aisyah", "Siti Nurhaliza", "Farah", "Aishah", "Nurul Huda", "Syafiqah", "Liyana")
_MALAY_M = ("Muhammad Hafiz", "Ahmad Faizal", "Mohamed Irfan", "Amirul", "Hakim", "Syahmi", "Firdaus")
_MALAY_FATHERS = ("Rahman", "Ismail", "Hassan", "Osman", "Yusof", "Ibrahim", "Salleh")
_INDIAN_F = ("Priya", "Kavitha", "Divya", "Lakshmi", "Anjali", "Meena", "Sangeetha")
_INDIAN_M = ("Arjun", "Rajesh", "Suresh", "Vikram", "Karthik", "Ganesh", "Pravin")
_INDIAN_FATHERS = ("Kumar", "Raj", "Subramaniam", "Krishnan", "Pillai", "Nair", "Menon")
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com.sg", "hotmail.com", "outlook.com", "singnet.com.sg")
_NOTES = ("", "", "", "Prefers SMS updates", "Redeemed voucher last month", "Asked about birthday perks",
          "Complained about delivery delay", "Frequent weekend shopper", "Interested in new arrivals",
          "Opted out of email", "Referred a friend", "Buys mostly online")


def _full_names(rng: np.random.Generator, is_female: np.ndarray) -> list[str]:
    """Singapore-style names across the main communities, matching each customer's gender."""
    names = []
    community = rng.choice(4, size=len(is_female), p=[0.74, 0.13, 0.09, 0.04])
    for female, group in zip(is_female, community):
        if group == 0 or group == 3:
            given = rng.choice(_GIVEN_CHINESE_F if female else _GIVEN_CHINESE_M)
            names.append(f"{rng.choice(_SURNAMES_CHINESE)} {given}")
        elif group == 1:
            given = rng.choice(_MALAY_F if female else _MALAY_M)
            names.append(f"{given} {'binti' if female else 'bin'} {rng.choice(_MALAY_FATHERS)}")
        else:
            given = rng.choice(_INDIAN_F if female else _INDIAN_M)
            names.append(f"{given} d/o {rng.choice(_INDIAN_FATHERS)}" if female
                         else f"{given} s/o {rng.choice(_INDIAN_FATHERS)}")
    return names


def generate_customers(rows: int = 5000, seed: int = 42,
                       structure: str = "bundled") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (customers, answers): the customer table and each customer's planted group.

    A share of each group's members (the structure's stray share) live in a random residential area
    instead of the group's own, so the groups overlap the way real segments do.
    """
    groups, fixed_weights, stray_share = STRUCTURES[structure]
    rng = np.random.default_rng(seed)
    weights = np.array(fixed_weights) if fixed_weights else rng.dirichlet(np.full(len(groups), 8.0))
    group_idx = rng.choice(len(groups), size=rows, p=weights)

    locations = np.empty(rows, dtype=object)
    tiers = np.empty(rows, dtype=object)
    joined = np.empty(rows, dtype="datetime64[D]")
    is_female = np.zeros(rows, dtype=bool)
    for g, group in enumerate(groups):
        members = np.flatnonzero(group_idx == g)
        n = len(members)
        area_pick = rng.choice(np.array(group.areas, dtype=object), size=n)  # object: no fixed-width truncation
        stray = rng.random(n) < stray_share
        area_pick[stray] = rng.choice(RESIDENTIAL_AREAS, size=int(stray.sum()))
        locations[members] = area_pick
        tiers[members] = rng.choice(TIERS, size=n, p=group.tier_mix)
        start = np.datetime64(group.joined_from, "D")
        span = (np.datetime64(group.joined_to, "D") - start).astype(int)
        joined[members] = start + rng.integers(0, span + 1, size=n)
        is_female[members] = rng.random(n) < group.female_share

    names = _full_names(rng, is_female)
    ids = [f"CUST{100000 + i:06d}" for i in range(rows)]
    handles = [n.lower().replace(" ", ".").replace("/", "").replace("..", ".") for n in names]
    emails = [f"{h}{rng.integers(1, 999)}@{rng.choice(_EMAIL_DOMAINS)}" for h in handles]
    phones = [f"+65 {rng.choice(['8', '9'])}{rng.integers(100, 999)} {rng.integers(1000, 9999)}"
              for _ in range(rows)]
    customers = pd.DataFrame({
        "Customer ID": ids,
        "Full Name": names,
        "Email Address": emails,
        "Phone Number": phones,
        "Date Joined": pd.to_datetime(joined),
        "Location": locations,
        "Gender": np.where(is_female, "Female", "Male"),
        "Loyalty Tier": tiers,
        "Notes": rng.choice(_NOTES, size=rows),
    })
    answers = pd.DataFrame({"Customer ID": ids, "true_group": group_idx,
                            "group_name": [groups[g].name for g in group_idx]})
    return customers, answers


def write_sample(path: Path, rows: int = 5000, seed: int = 42, structure: str = "bundled") -> Path:
    """Write the customer file (.xlsx or .csv by suffix) and its answer file beside it."""
    customers, answers = generate_customers(rows=rows, seed=seed, structure=structure)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        customers.to_csv(path, index=False)
    else:
        customers.to_excel(path, index=False, sheet_name="Customers")
    answer_path = path.with_name(path.stem + ".answers.csv")
    answers.to_csv(answer_path, index=False)
    log.info("wrote %d customers to %s (answers in %s)", rows, path, answer_path.name)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m portal.segmentation.sample_data OUT.xlsx --rows 5000 --seed 42``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--structure", choices=sorted(STRUCTURES), default="bundled")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_sample(args.out, rows=args.rows, seed=args.seed, structure=args.structure)


if __name__ == "__main__":
    main()

"""Seeded planted-group files with schemas other than the loyalty one: a retail customer list and an
order-level export of such customers, each with an answer file of every customer's planted group.

They check that the learned-schema pipeline recovers groups whatever the columns are called; nothing
is tuned to them (the black-box check uses other files).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MEMBERSHIP = ("Bronze", "Silver", "Gold", "Platinum", "Diamond")
CHANNELS = ("In-store", "Online", "App")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Greenville", "Oakdale", "Milford", "Ashland",
          "Clayton", "Dayton", "Georgetown", "Hudson", "Kingston", "Madison", "Newport", "Salem")
CATEGORIES = ("Grocery", "Home", "Fashion", "Electronics", "Beauty", "Toys")
REFERENCE = pd.Timestamp("2025-06-30")


@dataclass(frozen=True)
class RetailGroup:
    """A latent customer group: age, income, ordering habits, lifecycle, channel, membership and cities."""

    name: str
    age: tuple[float, float]                 # mean, sd
    income_k: tuple[float, float]            # thousands, mean and sd
    orders_per_year: float
    basket: float                            # mean order value
    tenure_days: tuple[int, int]             # signup this many days before the reference (range)
    recency_days: tuple[int, int]            # last purchase this many days before the reference (range)
    channel_mix: tuple[float, float, float]
    membership_mix: tuple[float, float, float, float, float]
    cities: tuple[str, ...]


RETAIL_GROUPS = (
    RetailGroup("young online bargain hunters", (26, 4), (38, 8), 14, 28, (60, 700), (1, 40),
                (0.1, 0.75, 0.15), (0.6, 0.3, 0.08, 0.02, 0.0), ("Springfield", "Riverton", "Lakeside", "Fairview")),
    RetailGroup("affluent in-store regulars", (54, 6), (140, 25), 10, 160, (2500, 4500), (1, 30),
                (0.8, 0.15, 0.05), (0.0, 0.05, 0.25, 0.4, 0.3), ("Greenville", "Oakdale", "Milford")),
    RetailGroup("lapsed occasional buyers", (44, 8), (65, 15), 2, 60, (1200, 3000), (200, 600),
                (0.5, 0.35, 0.15), (0.3, 0.5, 0.2, 0.0, 0.0), ("Ashland", "Clayton", "Dayton", "Georgetown")),
    RetailGroup("app-first families", (37, 5), (85, 15), 24, 75, (400, 1400), (1, 20),
                (0.1, 0.15, 0.75), (0.1, 0.3, 0.4, 0.2, 0.0), ("Hudson", "Kingston", "Madison", "Newport", "Salem")),
)
_FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn")
_LAST = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Khan", "Larsen", "Moreau", "Rossi")


def _customers(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.random.Generator]:
    rng = np.random.default_rng(seed)
    groups = RETAIL_GROUPS
    weights = rng.dirichlet(np.full(len(groups), 8.0))
    group_idx = rng.choice(len(groups), size=rows, p=weights)
    out: dict[str, np.ndarray] = {name: np.empty(rows, dtype=object) for name in
                                  ("city", "channel", "membership")}
    numbers = {name: np.zeros(rows) for name in ("age", "income", "tenure", "recency", "rate", "basket")}
    for g, group in enumerate(groups):
        members = np.flatnonzero(group_idx == g)
        n = len(members)
        numbers["age"][members] = np.clip(rng.normal(*group.age, n), 18, 90).round()
        numbers["income"][members] = np.clip(rng.normal(*group.income_k, n), 8, None).round(1)
        numbers["tenure"][members] = rng.integers(*group.tenure_days, n)
        numbers["recency"][members] = np.minimum(rng.integers(*group.recency_days, n), numbers["tenure"][members])
        numbers["rate"][members] = group.orders_per_year * rng.lognormal(0, 0.3, n)
        numbers["basket"][members] = group.basket * rng.lognormal(0, 0.25, n)
        cities = rng.choice(np.array(group.cities, dtype=object), size=n)
        stray = rng.random(n) < 0.1
        cities[stray] = rng.choice(np.array(CITIES, dtype=object), size=int(stray.sum()))
        out["city"][members] = cities
        out["channel"][members] = rng.choice(np.array(CHANNELS, dtype=object), size=n, p=group.channel_mix)
        out["membership"][members] = rng.choice(np.array(MEMBERSHIP, dtype=object), size=n, p=group.membership_mix)
    ids = np.array([f"R{200000 + i}" for i in range(rows)], dtype=object)
    names = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(rows)]
    active_years = np.maximum(numbers["tenure"] - numbers["recency"], 30) / 365.25
    orders = np.maximum(1, rng.poisson(numbers["rate"] * active_years))
    frame = pd.DataFrame({
        "Customer ID": ids, "Name": names,
        "Email": [f"{n.lower().replace(' ', '.')}{i}@example.com" for i, n in enumerate(names)],
        "Age": numbers["age"].astype(int), "Annual Income": numbers["income"] * 1000,
        "Orders": orders, "Total Spend": (orders * numbers["basket"]).round(2),
        "Signup Date": REFERENCE - pd.to_timedelta(numbers["tenure"], unit="D"),
        "Last Purchase": REFERENCE - pd.to_timedelta(numbers["recency"], unit="D"),
        "Preferred Channel": out["channel"], "Membership": out["membership"], "City": out["city"],
    })
    answers = pd.DataFrame({"Customer ID": ids, "true_group": group_idx,
                            "group_name": [groups[g].name for g in group_idx]})
    return frame, answers, rng


def generate_retail(rows: int = 3000, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A retail customer list (one row per customer) and its answers."""
    frame, answers, _ = _customers(rows, seed)
    return frame, answers


def generate_orders(customers: int = 2000, seed: int = 7, max_orders: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An order export of retail customers (one row per order: id, order id, date, amount, channel, category)."""
    frame, answers, rng = _customers(customers, seed)
    counts = np.minimum(frame["Orders"].to_numpy(), max_orders)
    owner = np.repeat(np.arange(len(frame)), counts)
    first = (REFERENCE - frame["Signup Date"]).dt.days.to_numpy()[owner]
    last = (REFERENCE - frame["Last Purchase"]).dt.days.to_numpy()[owner]
    days = last + rng.random(len(owner)) * np.maximum(first - last, 0)
    days[np.r_[0, np.cumsum(counts)[:-1]]] = last[np.r_[0, np.cumsum(counts)[:-1]]]  # each one's latest order
    basket = (frame["Total Spend"] / frame["Orders"]).to_numpy()[owner]
    channel = frame["Preferred Channel"].to_numpy()[owner].copy()
    switch = rng.random(len(owner)) < 0.2
    channel[switch] = rng.choice(np.array(CHANNELS, dtype=object), size=int(switch.sum()))
    orders = pd.DataFrame({
        "Order ID": [f"SO-{500000 + i}" for i in range(len(owner))],
        "Customer ID": frame["Customer ID"].to_numpy()[owner],
        "Customer Email": frame["Email"].to_numpy()[owner],
        "Order Date": (REFERENCE - pd.to_timedelta(np.round(days), unit="D")).strftime("%d/%m/%Y"),
        "Amount": (basket * rng.lognormal(0, 0.2, len(owner))).round(2),
        "Channel": channel,
        "Category": rng.choice(np.array(CATEGORIES, dtype=object), size=len(owner)),
        "Membership": frame["Membership"].to_numpy()[owner],
        "City": frame["City"].to_numpy()[owner],
    })
    return orders, answers


def write_table_sample(path: Path, kind: str = "retail", rows: int = 3000, seed: int = 7) -> Path:
    """Write a retail list or order export (.csv or .xlsx by suffix) and its answer file beside it."""
    frame, answers = generate_retail(rows, seed) if kind == "retail" else generate_orders(rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        frame.to_excel(path, index=False, sheet_name="Customers" if kind == "retail" else "Orders")
    answers.to_csv(path.with_name(path.stem + ".answers.csv"), index=False)
    log.info("wrote %d %s rows to %s", len(frame), kind, path)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m portal.segmentation.table_sample_data OUT.csv --kind orders --rows 2000 --seed 7``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--kind", choices=("retail", "orders"), default="retail")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_table_sample(args.out, args.kind, args.rows, args.seed)


if __name__ == "__main__":
    main()

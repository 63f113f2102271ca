"""A second, independently written generator of planted-group customer tables: a yardstick, not a target.

``portal.segmentation.table_sample_data`` writes the planted retail lists and order exports the learned-schema
model was developed on. This module was written apart from the product, with other
schemas (bank, SaaS, gym, hotel, e-commerce, insurance, telecom, streaming), other group sizes (3 to 7 groups,
the smallest 6-8%), groups that overlap (shared category mixes, means about one sd apart) and strays (5-15% of
each group's members given a uniformly random category in one column), blank cells and pure-noise columns.
Its files show how the product does on tables it was not tuned to; ``bench.schemas --only other`` prints the
figures beside KMeans with the true number of groups and a supervised ceiling (``bench.other_baselines``).

Nothing in the pipeline may be tuned to these files: a change is judged on the product's own benchmarks, and
these figures are only read as the gap still to close. Do not adjust the distributions here to suit the product
either: keep the default seed 2024 so its figures stay comparable from one run to the next.

Style (kept from the original on purpose): every file is built column by column from a group-label vector with
small vectorised helpers (per-group parameter arrays indexed by the label), not from per-group profile objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

log = logging.getLogger(__name__)

#: Seed of the files whose figures are in the notes and the README.
DEFAULT_SEED = 2024

FIRST = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
         "Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark "
         "Sandra Paul Ashley Steven Kimberly Andrew Emily Joshua Donna Kevin Michelle Brian Carol George "
         "Amanda Timothy Melissa Ronald Deborah Jason Stephanie Edward Rebecca Ryan Laura Jacob Sharon "
         "Gary Cynthia Nicholas Kathleen Eric Amy Jonathan Angela Stephen Shirley Larry Anna Justin Ruth "
         "Scott Brenda Brandon Pamela Benjamin Nicole Samuel Katherine Gregory Samantha Alexander Christine "
         "Frank Emma Patrick Catherine Raymond Debra Jack Rachel Dennis Carolyn Jerry Janet Tyler Maria "
         "Aaron Olivia Jose Heather Adam Helen Nathan Diane Henry Julie Zachary Joyce Douglas Victoria "
         "Peter Kelly Kyle Christina Noah Lauren Ethan Joan Jeremy Evelyn Walter Judith Christian Megan "
         "Keith Andrea Roger Cheryl Terry Hannah Austin Jacqueline Sean Martha Gerald Gloria Carl Teresa "
         "Harold Ann Dylan Sara Arthur Madison Lawrence Frances Jordan Kathryn Jesse Janice Bryan Jean "
         "Billy Abigail Bruce Alice Gabriel Judy Joe Sophia Logan Grace Alan Denise Juan Amber Albert "
         "Doris Willie Marilyn Elijah Danielle Wayne Beverly Randy Isabella Vincent Theresa Mason Diana "
         "Roy Natalie Ralph Brittany Bobby Charlotte Russell Marie Bradley Kayla Philip Alexis Eugene Lori").split()
LAST = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
        "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
        "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
        "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
        "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
        "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
        "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster "
        "Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher "
        "Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno "
        "West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall "
        "Owens Harrison Fernandez Mcdonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb "
        "Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason "
        "Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren").split()
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "mail.com",
           "aol.com", "gmx.net", "live.com")

#: Identifier and personal columns of each file (known to the generator, not learned): the baselines drop them.
PERSONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "bank_customers": ("Client No", "Surname", "Given Name", "E-mail", "Phone"),
    "saas_accounts": ("AccountRef", "Contact Name", "Contact Email", "Contact Phone"),
    "gym_members": ("member_id", "first_name", "last_name", "email", "mobile"),
    "hotel_guests": ("Guest Number", "Guest Name", "Email Address", "Telephone"),
    "ecommerce_customers": ("cust_id", "full_name", "email_addr", "phone_no"),
    "insurance_overlap": ("PolicyHolderID", "Name", "Email", "Phone Number"),
    "telecom_subscribers": ("subscriber_ref", "name", "email", "msisdn"),
    "streaming_users": ("User Key", "Display Name", "Login Email", "Phone"),
}
#: Text date columns and their formats (every file's dates in one map; the headers do not collide).
DATE_FORMATS: dict[str, str] = {"Signup Date": "%d/%m/%Y", "Last Login": "%d/%m/%Y", "join_date": "%Y-%m-%d",
                                "Last Stay": "%m/%d/%Y", "Member Since": "%d %b %Y"}


@dataclass(frozen=True)
class Drawn:
    """One generated file: its rows, each row's planted group, the id column the answers are keyed by."""

    stem: str
    frame: pd.DataFrame
    groups: np.ndarray
    id_column: str
    note: str

    @property
    def answers(self) -> pd.DataFrame:
        """The answers file: each customer's id and planted group."""
        return pd.DataFrame({"Customer ID": self.frame[self.id_column].to_numpy(),
                             "true_group": self.groups.astype(int)})


# ----------------------------------------------------------------------------------------------- helpers
def group_labels(rng: np.random.Generator, n: int, shares: Sequence[float]) -> np.ndarray:
    """Exactly-sized groups (rounded shares), shuffled: the planted sizes are the stated ones, not a draw."""
    weights = np.asarray(shares, float) / np.sum(shares)
    counts = np.floor(weights * n).astype(int)
    counts[np.argmax(counts)] += n - counts.sum()
    g = np.repeat(np.arange(len(weights)), counts)
    rng.shuffle(g)
    return g


def normal(rng: np.random.Generator, g: np.ndarray, means: ArrayLike, sds: ArrayLike, lo: float | None = None,
           hi: float | None = None, digits: int | None = None) -> np.ndarray:
    """Per-group normal, clipped to a plausible range and rounded as a real export would be."""
    x = rng.normal(np.asarray(means, float)[g], np.asarray(sds, float)[g])
    if lo is not None or hi is not None:
        x = np.clip(x, lo, hi)
    return np.round(x, digits) if digits is not None else x


def lognormal(rng: np.random.Generator, g: np.ndarray, medians: ArrayLike, sigmas: ArrayLike,
              digits: int = 2) -> np.ndarray:
    """Per-group log-normal around a median: money and usage columns are skewed."""
    return np.round(np.exp(rng.normal(np.log(np.asarray(medians, float))[g], np.asarray(sigmas, float)[g])),
                    digits)


def poisson(rng: np.random.Generator, g: np.ndarray, rates: ArrayLike) -> np.ndarray:
    """Per-group Poisson counts."""
    return rng.poisson(np.asarray(rates, float)[g])


def negbin(rng: np.random.Generator, g: np.ndarray, means: ArrayLike, dispersion: float = 2.0) -> np.ndarray:
    """Over-dispersed counts (gamma-Poisson) with per-group means: real visit and order counts are not Poisson."""
    m = np.asarray(means, float)[g]
    return rng.poisson(rng.gamma(dispersion, m / dispersion))


def choice(rng: np.random.Generator, g: np.ndarray, categories: Sequence[Any], weights: ArrayLike) -> np.ndarray:
    """Per-group categorical draw; ``weights`` is one row per group (normalised here), so mixes can overlap."""
    cats = np.asarray(categories, dtype=object)
    w = np.asarray(weights, float)
    w = w / w.sum(axis=1, keepdims=True)
    cum = np.cumsum(w, axis=1)[g]
    u = rng.random(len(g))[:, None]
    idx = (u > cum).sum(axis=1)
    return cats[np.minimum(idx, len(cats) - 1)]


def lean(n_groups: int, n_cats: int, favourites: Mapping[int, Sequence[int]], strength: float = 6.0,
         base: float = 1.0) -> np.ndarray:
    """Weight matrix: every category has ``base`` weight, each group's favourites get ``strength`` extra."""
    w = np.full((n_groups, n_cats), base, float)
    for k, favs in favourites.items():
        for c in favs:
            w[k, c] += strength
    return w


def strays(rng: np.random.Generator, g: np.ndarray, values: ArrayLike, categories: Sequence[Any],
           low: float = 0.05, high: float = 0.15) -> np.ndarray:
    """Replace 5-15% of each group's members with a uniformly random category (rate drawn per group): members
    who do not fit their group's profile in one column, as real customers do."""
    out = np.asarray(values, dtype=object).copy()
    rate = rng.uniform(low, high, g.max() + 1)[g]
    hit = rng.random(len(g)) < rate
    out[hit] = rng.choice(np.asarray(categories, dtype=object), hit.sum())
    return out


def bool_text(rng: np.random.Generator, g: np.ndarray, probs: ArrayLike, yes: str = "Yes",
              no: str = "No") -> np.ndarray:
    """Per-group yes/no written as text, as spreadsheets hold it."""
    return np.where(rng.random(len(g)) < np.asarray(probs, float)[g], yes, no)


def dates(rng: np.random.Generator, g: np.ndarray, ref: str, days_lo: ArrayLike, days_hi: ArrayLike,
          fmt: str) -> np.ndarray:
    """A date ``days`` before ``ref``, days uniform per group in [lo, hi], formatted as text ("mdy": m/d/yyyy
    without zero padding) so the reader has to recognise each file's own date format."""
    lo, hi = np.asarray(days_lo, float)[g], np.asarray(days_hi, float)[g]
    d = np.round(lo + rng.random(len(g)) * (hi - lo)).astype(int)
    stamps = pd.Timestamp(ref) - pd.to_timedelta(d, unit="D")
    if fmt == "mdy":
        return np.array([f"{t.month}/{t.day}/{t.year}" for t in stamps], dtype=object)
    return stamps.strftime(fmt).to_numpy(dtype=object)


def people(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last names, independent of the groups (personal columns the product must leave out)."""
    first = rng.choice(FIRST, n)
    last = rng.choice(LAST, n)
    return first, last


def emails(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """E-mail addresses built from the names in four styles."""
    styles = rng.integers(0, 4, len(first))
    nums = rng.integers(1, 999, len(first))
    doms = rng.choice(DOMAINS, len(first))
    out = []
    for given, family, s, k, d in zip(first, last, styles, nums, doms):
        fl, ll = given.lower(), family.lower()
        local = (f"{fl}.{ll}", f"{fl[0]}{ll}{k}", f"{ll}_{fl}", f"{fl}{k}")[s]
        out.append(f"{local}@{d}")
    return np.array(out, dtype=object)


def phones(rng: np.random.Generator, n: int, style: str) -> np.ndarray:
    """Phone numbers in one of four layouts ("us", "dots", "intl", plain digits)."""
    a = rng.integers(200, 999, n)
    b = rng.integers(200, 999, n)
    c = rng.integers(0, 9999, n)
    if style == "us":
        return np.array([f"({x}) {y}-{z:04d}" for x, y, z in zip(a, b, c)], dtype=object)
    if style == "dots":
        return np.array([f"{x}.{y}.{z:04d}" for x, y, z in zip(a, b, c)], dtype=object)
    if style == "intl":
        cc = rng.choice(["+44", "+33", "+49", "+34", "+39", "+31"], n)
        return np.array([f"{p} {x} {y} {z:04d}" for p, x, y, z in zip(cc, a, b, c)], dtype=object)
    return np.array([f"0{x}{y}{z:04d}" for x, y, z in zip(a, b, c)], dtype=object)


def unique_ids(rng: np.random.Generator, n: int, make: Callable[[int], Any]) -> np.ndarray:
    """Draw distinct integers and format them with ``make`` (each file has its own id layout)."""
    nums = rng.choice(np.arange(10_000, 999_999), n, replace=False)
    return np.array([make(int(k)) for k in nums], dtype=object)


def _joined(a: np.ndarray, sep: str, b: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(a.astype(str), sep), b.astype(str))


# ----------------------------------------------------------------------------------------------- files
def bank(rng: np.random.Generator) -> Drawn:
    """Bank customers: 5 groups, lognormal balances, 14 occupations with leanings and strays, a numeric id
    ("Client No") that reads like a number."""
    n = 4200
    g = group_labels(rng, n, [0.33, 0.27, 0.19, 0.14, 0.07])
    K = 5
    first, last = people(rng, n)
    occupations = ["Teacher", "Nurse", "Engineer", "Retired", "Student", "Farmer", "Lawyer", "Doctor",
                   "Clerk", "Driver", "Sales", "Self-employed", "Civil servant", "IT specialist"]
    # 0 young urban professionals, 1 established families, 2 retirees, 3 students, 4 affluent business owners
    occ_w = lean(K, len(occupations), {0: [2, 13, 10], 1: [0, 1, 8, 12], 2: [3], 3: [4], 4: [6, 7, 11]},
                 strength=5.0)
    occ = choice(rng, g, occupations, occ_w)
    occ = strays(rng, g, occ, occupations)
    f = pd.DataFrame({
        "Client No": unique_ids(rng, n, lambda k: k),
        "Surname": last,
        "Given Name": first,
        "E-mail": emails(rng, first, last),
        "Phone": phones(rng, n, "intl"),
        "Age": normal(rng, g, [31, 44, 68, 22, 52], [5, 7, 6, 2.5, 8], 18, 92, 0).astype(int),
        "Balance": lognormal(rng, g, [6500, 14000, 38000, 900, 120000], [0.9, 0.8, 0.9, 1.0, 0.7]),
        "CreditScore": normal(rng, g, [690, 660, 740, 600, 780], [50, 60, 45, 55, 40], 350, 850, 0).astype(int),
        "NumOfProducts": np.clip(poisson(rng, g, [1.4, 2.6, 1.8, 0.4, 3.2]) + 1, 1, 6),
        "TenureYears": np.clip(normal(rng, g, [4, 11, 25, 1.5, 14], [2.5, 4, 8, 1, 5], 0, 45, 0), 0,
                               None).astype(int),
        "HasCrCard": bool_text(rng, g, [0.85, 0.75, 0.45, 0.3, 0.95]),
        "Country": choice(rng, g, ["France", "Germany", "Spain", "Italy"],
                          [[5, 2, 2, 1], [3, 4, 2, 1], [2, 2, 3, 3], [3, 3, 3, 1], [2, 5, 1, 2]]),
        "Occupation": occ,
    })
    return Drawn("bank_customers", f, g, "Client No",
                 "lognormal balance, 14 occupations with leanings, country mixes overlap, strays in Occupation")


def saas(rng: np.random.Generator) -> Drawn:
    """SaaS accounts: 6 groups, dd/mm/yyyy dates, 30 regions shared between groups, a fee derived from seats
    and plan (two correlated columns)."""
    n = 3600
    K = 6
    g = group_labels(rng, n, [0.28, 0.24, 0.18, 0.14, 0.10, 0.06])
    plans = ["Basic", "Standard", "Premium", "Enterprise"]
    industries = ["Software", "Retail", "Healthcare", "Finance", "Education", "Manufacturing", "Media",
                  "Logistics", "Legal", "Real Estate", "Hospitality", "Nonprofit", "Energy", "Government",
                  "Consulting", "Telecom"]
    regions = [f"{a}-{b}" for a in ("NA", "EU", "APAC", "LATAM", "MEA") for b in
               ("North", "South", "East", "West", "Central", "Coast")][:30]
    # each group has ~5 typical regions, some shared between groups
    reg_fav = {0: [0, 1, 2, 6, 7], 1: [6, 7, 8, 9, 10], 2: [12, 13, 14, 15, 0], 3: [18, 19, 20, 21, 22],
               4: [24, 25, 26, 27, 3], 5: [1, 9, 16, 28, 29]}
    reg = choice(rng, g, regions, lean(K, len(regions), reg_fav, strength=1.0, base=0.0))
    reg = strays(rng, g, reg, regions)
    # 0 small startups, 1 SMB, 2 mid-market, 3 enterprise, 4 churning/dormant, 5 education/nonprofit
    seats = np.maximum(1, lognormal(rng, g, [4, 18, 75, 600, 10, 40], [0.6, 0.6, 0.6, 0.7, 0.9, 0.6],
                                    0)).astype(int)
    plan = choice(rng, g, plans, [[7, 3, 0.3, 0], [2, 6, 2, 0.2], [0.3, 3, 6, 1], [0, 0.3, 2, 8],
                                  [6, 3, 1, 0.2], [3, 5, 2, 0.2]])
    per_seat = pd.Series(plan).map({"Basic": 9, "Standard": 19, "Premium": 35, "Enterprise": 55}).to_numpy()
    fee = np.round(seats * per_seat * rng.uniform(0.75, 1.05, n), 2)
    first, last = people(rng, n)
    f = pd.DataFrame({
        "AccountRef": unique_ids(rng, n, lambda k: f"AC{k:06d}"),
        "Contact Name": _joined(first, " ", last),
        "Contact Email": emails(rng, first, last),
        "Contact Phone": phones(rng, n, "us"),
        "Seats": seats,
        "Monthly Fee": fee,
        "Plan": plan,
        "Signup Date": dates(rng, g, "2025-05-31", [30, 200, 400, 700, 500, 300],
                             [400, 1100, 1500, 2400, 1800, 1400], "%d/%m/%Y"),
        "Last Login": dates(rng, g, "2025-05-31", [0, 0, 0, 0, 60, 0], [10, 20, 7, 4, 300, 45], "%d/%m/%Y"),
        "Support Tickets": negbin(rng, g, [1.5, 3, 6, 14, 0.5, 2.5]),
        "Region": reg,
        "Industry": choice(rng, g, industries,
                           lean(K, len(industries), {0: [0, 6], 1: [1, 7, 10, 9], 2: [3, 5, 2, 15],
                                                     3: [3, 13, 12, 15, 2], 4: [1, 6, 10], 5: [4, 11, 13]},
                                strength=3.0)),
    })
    return Drawn("saas_accounts", f, g, "AccountRef",
                 "dd/mm/yyyy dates, 30 regions (5 per group, shared), 16 industries, fee derived from seats*plan, "
                 "strays in Region")


def gym(rng: np.random.Generator) -> Drawn:
    """Gym members: 4 groups, ISO dates, 25 branches in overlapping blocks, a gender column independent of the
    groups."""
    n = 5200
    K = 4
    g = group_labels(rng, n, [0.40, 0.30, 0.22, 0.08])
    classes = ["Spin", "Yoga", "Pilates", "HIIT", "Boxing", "Zumba", "Aqua", "Weights"]
    branches = [f"Branch {c}" for c in ("Northgate Eastfield Westbrook Southport Riverside Hillcrest Oakwood "
                                        "Maplewood Cedarpark Elmstead Pinehurst Lakeview Brookside "
                                        "Fairmont Greenhill Kingsway Queensbury Ashford Bramley Carlton "
                                        "Dunmore Everton Fulham Hartley Ivybridge").split()]
    assert len(branches) == 25
    # 0 casual evening, 1 committed lifters, 2 wellness over-50s, 3 students off-peak
    br_fav = {0: list(range(0, 10)), 1: list(range(5, 15)), 2: list(range(13, 21)), 3: [20, 21, 22, 23, 24, 2]}
    cls = choice(rng, g, classes, lean(K, 8, {0: [0, 5, 3], 1: [7, 4, 3], 2: [1, 2, 6], 3: [3, 0, 5]},
                                       strength=5.0))
    cls = strays(rng, g, cls, classes)
    first, last = people(rng, n)
    f = pd.DataFrame({
        "member_id": unique_ids(rng, n, lambda k: f"M-{k:07d}"),
        "first_name": first,
        "last_name": last,
        "email": emails(rng, first, last),
        "mobile": phones(rng, n, "plain"),
        "gender": rng.choice(["F", "M"], n),
        "age": normal(rng, g, [34, 29, 58, 21], [8, 6, 7, 2], 16, 85, 0).astype(int),
        "visits_per_month": negbin(rng, g, [5, 17, 10, 8], dispersion=4.0),
        "membership_type": choice(rng, g, ["Off-Peak", "Standard", "Premium", "Annual"],
                                  [[1, 6, 2, 1], [0.3, 2, 4, 4], [3, 3, 2, 3], [7, 3, 0.2, 0.5]]),
        "join_date": dates(rng, g, "2025-04-30", [10, 90, 200, 5], [900, 2200, 3000, 500], "%Y-%m-%d"),
        "preferred_class": cls,
        "home_branch": choice(rng, g, branches, lean(K, 25, br_fav, strength=2.0, base=0.15)),
    })
    return Drawn("gym_members", f, g, "member_id",
                 "ISO dates, 25 branches in overlapping blocks, gender independent, strays in preferred_class")


def hotel(rng: np.random.Generator) -> Drawn:
    """Hotel guests: 5 groups, m/d/yyyy dates, 33 countries, skewed nights per year."""
    n = 3000
    K = 5
    g = group_labels(rng, n, [0.31, 0.26, 0.20, 0.15, 0.08])
    countries = ("United States, United Kingdom, Germany, France, Spain, Italy, Netherlands, Belgium, "
                 "Switzerland, Austria, Sweden, Norway, Denmark, Ireland, Portugal, Poland, Canada, Mexico, "
                 "Brazil, Argentina, Japan, China, South Korea, India, Singapore, Australia, New Zealand, "
                 "United Arab Emirates, Saudi Arabia, South Africa, Israel, Turkey, Czechia").split(", ")
    channels = ["Direct website", "Booking.com", "Expedia", "Travel agent", "Corporate portal"]
    # 0 business road warriors, 1 leisure couples, 2 families on OTA, 3 luxury long-haul, 4 budget one-off
    ctry_fav = {0: [0, 1, 2, 16], 1: [1, 3, 4, 5, 14], 2: [2, 6, 7, 10, 11, 12], 3: [20, 21, 24, 27, 28, 0],
                4: [15, 31, 32, 19, 18]}
    ch = choice(rng, g, channels, [[1, 0.5, 0.5, 1, 7], [5, 3, 1, 1, 0.1], [1, 5, 4, 0.5, 0.1],
                                   [4, 0.5, 0.5, 4, 1], [0.5, 6, 3, 0.5, 0.1]])
    ch = strays(rng, g, ch, channels)
    first, last = people(rng, n)
    f = pd.DataFrame({
        "Guest Number": unique_ids(rng, n, lambda k: f"G{k}"),
        "Guest Name": _joined(last, ", ", first),
        "Email Address": emails(rng, first, last),
        "Telephone": phones(rng, n, "dots"),
        "Nights Per Year": negbin(rng, g, [28, 7, 9, 12, 2], dispersion=3.0),
        "Avg Room Rate": lognormal(rng, g, [185, 140, 110, 420, 75], [0.2, 0.25, 0.2, 0.25, 0.25]),
        "Loyalty Level": choice(rng, g, ["Blue", "Silver", "Gold", "Platinum"],
                                [[0.5, 2, 4, 4], [3, 4, 2, 0.3], [4, 3, 1, 0.2], [0.5, 1, 3, 6], [9, 1, 0.1, 0]]),
        "Booking Channel": ch,
        "Country of Residence": choice(rng, g, countries, lean(K, len(countries), ctry_fav, strength=3.0,
                                                               base=0.08)),
        "Last Stay": dates(rng, g, "2025-06-15", [0, 10, 20, 0, 200], [60, 300, 330, 200, 900], "mdy"),
    })
    return Drawn("hotel_guests", f, g, "Guest Number",
                 "m/d/yyyy dates, 33 countries, 5 channels (strays), skewed nights")


def ecommerce(rng: np.random.Generator) -> Drawn:
    """E-commerce customers: 4 groups, blank cells, a pure-noise category and an independent number (columns a
    product should not be led by)."""
    n = 4800
    g = group_labels(rng, n, [0.38, 0.30, 0.20, 0.12])
    colours = ["Red", "Blue", "Green", "Black", "White", "Grey", "Purple", "Orange", "Yellow", "Pink",
               "Brown", "Teal"]
    payments = ["Card", "PayPal", "Apple Pay", "Klarna", "Cash on delivery", "Gift card"]
    # 0 bargain hunters, 1 loyal regulars, 2 big-ticket rare buyers, 3 serial returners
    pay = choice(rng, g, payments, [[2, 3, 1, 4, 2, 0.5], [5, 2, 3, 0.5, 0.2, 1], [6, 1, 1, 2, 0.1, 0.2],
                                    [2, 2, 1, 5, 0.5, 0.3]])
    pay = strays(rng, g, pay, payments)
    first, last = people(rng, n)
    aov = lognormal(rng, g, [28, 55, 260, 70], [0.45, 0.4, 0.5, 0.45])
    ret = np.round(np.clip(rng.beta(np.array([1.5, 1, 1.2, 5.0])[g], np.array([14, 18, 10, 6])[g]), 0, 1), 3)
    sessions = lognormal(rng, g, [14, 9, 3, 11], [0.6, 0.5, 0.6, 0.6], 1)
    sessions = sessions.astype(float)
    sessions[rng.random(n) < 0.08] = np.nan
    device = choice(rng, g, ["Mobile app", "Mobile web", "Desktop", "Tablet"],
                    [[3, 4, 2, 1], [6, 1, 2, 1], [1, 1, 6, 1.5], [3, 3, 3, 1]]).astype(object)
    device[rng.random(n) < 0.06] = None
    f = pd.DataFrame({
        "cust_id": unique_ids(rng, n, lambda k: k * 7),
        "full_name": _joined(first, " ", last),
        "email_addr": emails(rng, first, last),
        "phone_no": phones(rng, n, "us"),
        "orders_12m": negbin(rng, g, [9, 14, 1.6, 8], dispersion=3.0),
        "avg_order_value": aov,
        "return_rate": ret,
        "sessions_per_month": sessions,
        "device": device,
        "payment_method": pay,
        "favourite_colour": rng.choice(colours, n),               # pure noise
        "days_since_profile_update": rng.integers(0, 1500, n),   # numeric, independent of groups
    })
    return Drawn("ecommerce_customers", f, g, "cust_id",
                 "blanks: sessions_per_month 8%, device 6%; favourite_colour noise (12), days_since_profile_update "
                 "independent; strays in payment_method")


def insurance_overlap(rng: np.random.Generator) -> Drawn:
    """Motor insurance: 4 moderately overlapping groups (numeric means about 1 sd apart, shared category
    mixes), the hardest file even for the supervised ceiling."""
    n = 3800
    g = group_labels(rng, n, [0.35, 0.30, 0.22, 0.13])
    vehicles = ["Hatchback", "Sedan", "SUV", "Pickup", "Minivan", "Sports", "Electric", "Motorbike"]
    veh = choice(rng, g, vehicles, [[4, 3, 1, 0.5, 0.5, 1, 1, 1.5], [2, 4, 3, 1, 2, 0.5, 1, 0.5],
                                    [1, 3, 4, 2, 1, 1, 2, 0.5], [2, 2, 2, 1, 0.5, 2, 1, 3]])
    veh = strays(rng, g, veh, vehicles)
    first, last = people(rng, n)
    # moderate overlap: numeric means about 0.8-1.2 sd apart, categorical mixes shared
    f = pd.DataFrame({
        "PolicyHolderID": unique_ids(rng, n, lambda k: f"PH{k:07d}"),
        "Name": _joined(first, " ", last),
        "Email": emails(rng, first, last),
        "Phone Number": phones(rng, n, "plain"),
        "DriverAge": normal(rng, g, [29, 41, 52, 36], [8, 9, 10, 10], 17, 90, 0).astype(int),
        "AnnualPremium": lognormal(rng, g, [1100, 850, 950, 1500], [0.3, 0.3, 0.3, 0.35]),
        "ClaimsLast5y": negbin(rng, g, [0.9, 0.4, 0.5, 1.6], dispersion=2.0),
        "VehicleValue": lognormal(rng, g, [14000, 21000, 30000, 19000], [0.45, 0.45, 0.45, 0.5], 0),
        "AnnualMileage": normal(rng, g, [11000, 9000, 13000, 15000], [3500, 3000, 3800, 4500], 500, 40000, -2),
        "VehicleType": veh,
        "CoverLevel": choice(rng, g, ["Third party", "Third party fire & theft", "Comprehensive"],
                             [[3, 3, 4], [1, 2, 7], [1, 2, 7], [4, 3, 3]]),
        "NoClaimsYears": np.clip(normal(rng, g, [2, 8, 11, 3], [2, 4, 5, 3], 0, 30, 0), 0, None).astype(int),
    })
    return Drawn("insurance_overlap", f, g, "PolicyHolderID",
                 "moderately overlapping groups (means ~1 sd apart, shared category mixes), strays in VehicleType")


def telecom7(rng: np.random.Generator) -> Drawn:
    """Telecom subscribers: 7 groups, the smallest 6% (more groups than any product training file)."""
    n = 5800
    K = 7
    g = group_labels(rng, n, [0.24, 0.20, 0.16, 0.13, 0.11, 0.10, 0.06])
    brands = ["Apple", "Samsung", "Google", "Xiaomi", "Motorola", "Nokia", "OnePlus", "Huawei", "Oppo"]
    br = choice(rng, g, brands, lean(K, len(brands), {0: [0], 1: [1, 2], 2: [3, 7, 8], 3: [5, 4], 4: [0, 6],
                                                      5: [1, 3], 6: [0, 1]}, strength=6.0, base=0.5))
    br = strays(rng, g, br, brands)
    # 0 heavy-data young, 1 family plans, 2 budget prepaid, 3 voice-only seniors, 4 business, 5 students,
    # 6 frequent travellers
    first, last = people(rng, n)
    f = pd.DataFrame({
        "subscriber_ref": unique_ids(rng, n, lambda k: f"SUB{k:06d}"),
        "name": _joined(first, " ", last),
        "email": emails(rng, first, last),
        "msisdn": phones(rng, n, "intl"),
        "data_gb_month": lognormal(rng, g, [45, 18, 4, 0.5, 12, 25, 15], [0.4, 0.4, 0.5, 0.7, 0.4, 0.4, 0.5], 1),
        "call_minutes_month": lognormal(rng, g, [120, 300, 150, 420, 900, 60, 350],
                                        [0.4, 0.4, 0.5, 0.4, 0.35, 0.5, 0.4], 0),
        "monthly_bill": lognormal(rng, g, [55, 95, 15, 25, 85, 25, 120], [0.2, 0.2, 0.3, 0.25, 0.2, 0.25, 0.25]),
        "tenure_months": np.clip(normal(rng, g, [20, 60, 10, 110, 40, 14, 45], [12, 25, 9, 40, 20, 8, 20],
                                        0, 300, 0), 0, None).astype(int),
        "contract": choice(rng, g, ["Prepaid", "Monthly", "12-month", "24-month"],
                           [[1, 3, 3, 3], [0.2, 1, 3, 6], [8, 2, 0.3, 0.1], [1, 2, 3, 4], [0.1, 1, 4, 5],
                            [4, 5, 1, 0.5], [0.5, 3, 3, 3]]),
        "device_brand": br,
        "roaming": bool_text(rng, g, [0.15, 0.2, 0.05, 0.05, 0.6, 0.2, 0.95], "Y", "N"),
        "addons": poisson(rng, g, [2, 3, 0.3, 0.5, 2.5, 1, 3.5]),
    })
    return Drawn("telecom_subscribers", f, g, "subscriber_ref", "7 groups, smallest 6%, strays in device_brand")


def streaming3(rng: np.random.Generator) -> Drawn:
    """Streaming users: 3 very unequal groups (55/37/8%), hex ids, "01 Jan 2020" dates."""
    n = 2400
    K = 3
    g = group_labels(rng, n, [0.55, 0.37, 0.08])
    genres = ["Drama", "Comedy", "Action", "Documentary", "Horror", "Sci-Fi", "Romance", "Kids",
              "Anime", "Crime", "Reality", "Sports"]
    gen = choice(rng, g, genres, lean(K, 12, {0: [0, 6, 9, 10], 1: [7, 1], 2: [8, 5, 4]}, strength=4.0))
    gen = strays(rng, g, gen, genres)
    first, last = people(rng, n)
    # 0 adult binge viewers, 1 families, 2 niche anime/sci-fi fans
    f = pd.DataFrame({
        "User Key": unique_ids(rng, n, lambda k: f"{k:x}".upper().rjust(6, "0")),
        "Display Name": np.char.add(np.char.add(first.astype(str), " "), last.astype(str).astype("<U1")),
        "Login Email": emails(rng, first, last),
        "Phone": phones(rng, n, "us"),
        "Hours Watched Weekly": np.round(rng.gamma(np.array([4, 5, 6])[g], np.array([3, 2.5, 4])[g]), 1),
        "Favourite Genre": gen,
        "Main Device": choice(rng, g, ["Smart TV", "Phone", "Laptop", "Tablet", "Console"],
                              [[6, 2, 2, 1, 0.5], [5, 1, 1, 4, 1], [1, 2, 4, 0.5, 4]]),
        "Profiles": np.clip(poisson(rng, g, [0.6, 3, 0.3]) + 1, 1, 6),
        "Subscription": choice(rng, g, ["Ad-supported", "Standard", "Premium"], [[2, 5, 3], [1, 3, 6], [4, 4, 2]]),
        "Member Since": dates(rng, g, "2025-06-01", [30, 100, 10], [2500, 2000, 900], "%d %b %Y"),
    })
    return Drawn("streaming_users", f, g, "User Key", "3 groups (55/37/8%), strays in Favourite Genre")


#: The builders in the order the original spawned their seeds (the order decides every file's draws).
BUILDERS: tuple[Callable[[np.random.Generator], Drawn], ...] = (bank, saas, gym, hotel, ecommerce,
                                                                  insurance_overlap, telecom7, streaming3)


def draw_all(seed: int = DEFAULT_SEED) -> list[Drawn]:
    """Every file in memory; each builder gets its own child of ``SeedSequence(seed)``, so one file's draws do
    not depend on another's."""
    root = np.random.SeedSequence(seed)
    return [build(np.random.default_rng(child)) for build, child in zip(BUILDERS, root.spawn(len(BUILDERS)))]


def write_all(folder: Path, seed: int = DEFAULT_SEED) -> list[tuple[str, Path, str]]:
    """Write ``<stem>.csv`` and ``<stem>.answers.csv`` ("Customer ID", "true_group") for every file into
    ``folder``; returns (stem, csv path, id column header) per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for drawn in draw_all(seed):
        path = folder / f"{drawn.stem}.csv"
        drawn.frame.to_csv(path, index=False)
        drawn.answers.to_csv(folder / f"{drawn.stem}.answers.csv", index=False)
        sizes = np.bincount(drawn.groups) / len(drawn.groups)
        log.info("%s: %d rows, %d cols, groups %d sizes %s -- %s", drawn.stem, len(drawn.frame),
                 drawn.frame.shape[1], len(sizes), [round(float(s), 3) for s in sizes], drawn.note)
        written.append((drawn.stem, path, drawn.id_column))
    return written

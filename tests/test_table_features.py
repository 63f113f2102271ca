"""Feature weighting of learned schemas: columns that share no structure with the rest weigh little, member
profiles describe a category by how its members' numbers are distributed, and planted groups come back."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from portal.ingestion.roles import Role, infer_schema
from portal.segmentation.sample_data import generate_customers
from portal.segmentation.table_dependence import dependence
from portal.segmentation.table_features import MemberProfile, SchemaColumns, TableFeatures
from portal.segmentation.table_model import TableParams, TableSegmentationModel
from portal.segmentation.table_sample_data import RETAIL_GROUPS, generate_retail

#: The weighting before dependence factors and histogram profiles, for comparison.
CAPPED_ONLY = {"profile": "mean", "profile_budget": 0, "dependence_floor": 1.0}


def _three_groups(n: int = 900, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two numbers that carry three planted groups, a yes/no and a number that are independent of them."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    frame = pd.DataFrame({
        "Customer ID": [f"C{i:05d}" for i in range(n)],
        "Spend": np.round(rng.normal(100 + 80 * group, 20), 2),
        "Visits": np.round(rng.normal(5 + 6 * group, 1.5), 1),
        "Newsletter": rng.choice(["Yes", "No"], n),
        "Lucky Number": rng.integers(0, 100, n),
    })
    return frame, group


def test_independent_columns_weigh_less_than_columns_that_share_structure():
    frame, _ = _three_groups()
    features = TableFeatures(infer_schema(frame)).fit(frame)
    weights = features.weights_
    for independent in ("Newsletter", "Lucky Number"):
        assert weights[independent] < 0.5 * min(weights["Spend"], weights["Visits"]), independent
        assert features.dependence_[independent].ami < 0.05
    assert features.dependence_["Spend"].partner == "Visits" and features.dependence_["Spend"].ami > 0.3


def test_dependence_is_corrected_for_many_categories():
    """A 300-category column of random labels shares nothing with a number, whatever its cardinality."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"Town": [f"Town {t}" for t in rng.integers(0, 300, 1200)],
                          "Age": rng.integers(18, 80, 1200), "Income": rng.normal(50, 10, 1200)})
    frame["Spend"] = frame["Income"] * 2 + rng.normal(0, 3, 1200)
    schema = infer_schema(frame)
    found = dependence(SchemaColumns(schema).fit(frame).transform(frame), schema)
    assert found["Town"].ami < 0.02 and found["Age"].ami < 0.02
    assert found["Spend"].partner == "Income" and found["Spend"].ami > 0.5


def test_every_block_lists_its_weight_measures_and_reason():
    frame, _ = _three_groups()
    described = TableFeatures(infer_schema(frame)).fit(frame).describe()["blocks"]
    assert set(described) == {"Spend", "Visits", "Newsletter", "Lucky Number"}
    for name, block in described.items():
        assert {"weight", "spread", "dependence", "shares_most_with", "dependence_factor", "reason"} <= set(block)
        assert block["shares_most_with"] in described and block["shares_most_with"] != name
    assert "independent" in described["Newsletter"]["reason"] and "full weight" in described["Spend"]["reason"]


def test_member_profile_tells_apart_categories_whose_members_spread_differently():
    """Two categories with the same mean: members all in the middle, or half at each end. The histogram
    profile separates them, the mean profile does not; an unseen category is the whole base (zeros)."""
    rng = np.random.default_rng(2)
    middle = pd.DataFrame({"Area": "Middle", "Score": rng.normal(50, 2, 400)})
    ends = pd.DataFrame({"Area": "Ends", "Score": np.r_[rng.normal(10, 2, 200), rng.normal(90, 2, 200)]})
    frame = pd.concat([middle, ends], ignore_index=True)
    for kind, apart in (("histogram", True), ("mean", False)):
        encoded = MemberProfile(kind=kind).fit_transform(frame)
        distance = np.linalg.norm(encoded[0] - encoded[-1])
        assert (distance > 0.5) if apart else (distance < 0.05), kind
    profile = MemberProfile().fit(frame)
    assert np.allclose(profile.transform(pd.DataFrame({"Area": ["Atlantis"], "Score": [50.0]})), 0)


def test_a_rare_category_sits_nearer_the_base_than_a_common_one_like_it():
    rng = np.random.default_rng(3)
    common = pd.DataFrame({"Area": "Common", "Score": rng.normal(90, 2, 300)})
    rare = pd.DataFrame({"Area": "Rare", "Score": rng.normal(90, 2, 5)})
    rest = pd.DataFrame({"Area": "Rest", "Score": rng.normal(20, 10, 600)})
    profile = MemberProfile().fit(pd.concat([common, rare, rest], ignore_index=True))
    assert np.linalg.norm(profile.profiles_["Rare"]) < 0.5 * np.linalg.norm(profile.profiles_["Common"])


def test_an_independent_yes_no_column_does_not_split_the_planted_groups():
    """At full weight the newsletter flag split each of the three groups in two (6 segments, ARI 0.57)."""
    frame, group = _three_groups()
    model = TableSegmentationModel(infer_schema(frame)).fit(frame)
    assert len(model.cluster_ids_) == 3
    assert adjusted_rand_score(group, model.labels_) >= 0.9


@pytest.mark.parametrize("rows, seed", [(2000, 11)])
def test_loyalty_groups_through_the_generic_path_beat_capped_weights(rows, seed):
    """The loyalty generator's planted groups, read as a table of its own columns: gender is independent of
    the groups and the tier barely depends on them; the weighting must not let them split the segments. Both fits
    leave out the stages that merge value cells and dissolve mixed segments, which repair such splits after the
    clusterer: this compares the weightings."""
    customers, answers = generate_customers(rows=rows, seed=seed)
    schema = infer_schema(customers)
    alone = {"merge_value_cells": False, "dissolve_mixed": False}
    new = TableSegmentationModel(schema, TableParams(**alone)).fit(customers)
    old = TableSegmentationModel(schema, TableParams(min_fast_path_agreement=0, **CAPPED_ONLY, **alone)).fit(customers)
    new_ari = adjusted_rand_score(answers["true_group"], new.labels_)
    assert new_ari >= 0.6
    assert new_ari > adjusted_rand_score(answers["true_group"], old.labels_) + 0.3


def test_persona_names_read_as_words_and_do_not_repeat_one_group_seen_through_two_columns():
    """"No Phone Service · High Annual Income", not "Phone_Service no · Multiple Lines No phone service"."""
    from portal.segmentation.table_personas import build_table_personas, readable

    assert readable("Annual_Income(k$)") == "Annual Income" and readable("NumStorePurchases") == "Num Store Purchases"
    rng = np.random.default_rng(1)
    n = 400
    labels = np.repeat([0, 1], n // 2)
    no_phone = labels == 0
    frame = pd.DataFrame({
        "Phone_Service": np.where(no_phone, "No", "Yes"),
        "Multiple Lines": np.where(no_phone, "No phone service", rng.choice(["Yes", "No"], n)),
        "Annual_Income(k$)": np.where(no_phone, rng.normal(90, 5, n), rng.normal(40, 5, n)).round(1),
    })
    schema = infer_schema(frame)
    personas, _ = build_table_personas(frame, schema, labels, SchemaColumns(schema).fit(frame))
    assert personas[0]["name"] == "No Phone Service · High Annual Income"
    assert personas[0]["summary"].startswith("200 customers (50% of the base), ")
    assert "Annual_Income(k$) median" in personas[0]["summary"]  # the traits keep the file's own column names
    assert any(t["trait"].startswith("Multiple Lines") for t in personas[0]["distinguishing_traits"])


def test_a_categorical_column_of_many_categories_is_described_by_its_members():
    """Sixteen cities, each mostly one planted group's: one-hot puts every city as far from every other, and UMAP
    made each city of a group its own island (four groups found as seven). Described by their members, cities
    whose customers look alike sit together. A column of fewer than ten categories stays one-hot."""
    frame, answers = generate_retail(3000, 2)
    schema = infer_schema(frame)
    assert {c.name: c.role for c in schema.features}["City"] == Role.CATEGORICAL
    features = TableFeatures(schema).fit(frame)
    blocks = features.describe()["blocks"]
    assert blocks["City"]["encoding"].startswith("member profile (10 or more categories)")
    assert blocks["Preferred Channel"]["encoding"] == "one-hot"
    assert blocks["Signup Date"]["encoding"] == "days before the reference date, standardised"
    assert blocks["Membership"]["encoding"] == "rank on its scale, standardised"
    assert blocks["Age"]["encoding"] == "standardised number"
    assert TableFeatures(schema, profile_from=17).fit(frame).describe()["blocks"]["City"]["encoding"] == "one-hot"

    profiles = features.encoder_.named_transformers_["City"].profiles_
    home = {city: g for g, group in enumerate(RETAIL_GROUPS) for city in group.cities}
    same, other = [], []
    for a, b in itertools.combinations(sorted(profiles), 2):
        (same if home[a] == home[b] else other).append(float(np.linalg.norm(profiles[a] - profiles[b])))
    assert max(same) < min(other)


@pytest.mark.parametrize("seed", [2, 8])
def test_planted_retail_groups_come_back_where_one_hot_cities_split_them(seed):
    """Two draws of the retail generator on which the earlier encoding (cities one-hot, 30 UMAP neighbours) found
    seven segments for four groups (ARI 0.69 and 0.61)."""
    frame, answers = generate_retail(4000, seed)
    model = TableSegmentationModel(infer_schema(frame)).fit(frame, progress=lambda m: None)
    assert len(model.cluster_ids_) == 4
    assert adjusted_rand_score(answers["true_group"], model.labels_) >= 0.9


def test_a_member_profile_keeps_every_distance_in_as_many_columns_as_categories():
    """Sixteen cities described over many numbers' bands are stored in their own span: the same distances between
    any two cities and to an unseen one, in at most sixteen columns."""
    frame, _ = generate_retail(2000, 4)
    typed = SchemaColumns(infer_schema(frame)).fit(frame).transform(frame)
    numbers = ["Age", "Annual Income", "Orders", "Total Spend", "Signup Date", "Last Purchase", "Membership"]
    profile = MemberProfile().fit(typed[["City", *numbers]])
    full = MemberProfile()
    full_profiles = {}
    described, _ = full._bands(typed[numbers].astype(float))
    base = described.mean().to_numpy()
    for city, members in described.groupby(typed["City"].to_numpy()):
        shrunk = (members.sum().to_numpy() + full.pseudo_count * base) / (len(members) + full.pseudo_count)
        full_profiles[city] = np.sqrt(shrunk / len(numbers)) - np.sqrt(base / len(numbers))
    cities = sorted(full_profiles)
    assert len(profile.columns_) <= len(cities) < described.shape[1]
    for a, b in itertools.combinations(cities, 2):
        assert np.linalg.norm(profile.profiles_[a] - profile.profiles_[b]) == pytest.approx(
            np.linalg.norm(full_profiles[a] - full_profiles[b]), rel=1e-9, abs=1e-12)
    unseen = profile.transform(pd.DataFrame({"City": ["Atlantis"], **{n: [0.0] for n in numbers}}))[0]
    assert np.allclose(unseen, 0)
    for city in cities:
        assert np.linalg.norm(profile.profiles_[city]) == pytest.approx(np.linalg.norm(full_profiles[city]), rel=1e-9)

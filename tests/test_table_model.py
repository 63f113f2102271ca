"""The learned-schema model: features per role, the fast path against the full path, determinism, saving,
and uploads against a live release trained on a table of its own columns."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import OneHotEncoder

from portal.errors import TrainingError
from portal.ingestion.roles import Role, infer_schema
from portal.segmentation import releases
from portal.segmentation.stages import ExactNeighbourUMAP
from portal.segmentation.table_features import TableFeatures
from portal.segmentation.table_model import TableParams, TableSegmentationModel, table_reducer
from portal.segmentation.table_personas import _number as shown_number
from portal.segmentation.table_sample_data import generate_orders, generate_retail
from tests.conftest import make_settings_overrides

CAMPAIGN = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
            "past_engagement": "Low"}
RETAIL_ROWS = 800
#: Marker strings in every personal-data column of the privacy table.
MARKER = "zqxmarker"


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def _retail_with_pii(rows: int, seed: int) -> pd.DataFrame:
    """The planted retail list plus marker strings in every PII-like column, and a rare city (5 customers)."""
    frame, _ = generate_retail(rows, seed)
    n = len(frame)
    frame["Customer ID"] = [f"{MARKER.upper()}-{i:05d}" for i in range(n)]
    frame["Name"] = [f"{MARKER.title()} Person{i}" for i in range(n)]
    frame = frame.rename(columns={"Email": "Contact"})
    frame["Contact"] = [f"{MARKER}{i}@mail.example.com" for i in range(n)]
    frame["Phone"] = [f"+65 9{(1000 + i) % 10000:04d} {7000 + i % 1000:04d}" for i in range(n)]
    frame["Street Address"] = [f"{i} {MARKER.title()} Street #0{i % 9}-1{i % 7}" for i in range(n)]
    frame["Postcode"] = [f"{MARKER[:2].upper()}{100000 + i}" for i in range(n)]
    frame["Notes"] = [f"{MARKER} note {i}: prefers a call in the evening after work" for i in range(n)]
    frame.loc[:4, "City"] = "Tinytown"
    return frame


@pytest.fixture(scope="session")
def retail_file(tmp_path_factory) -> Path:
    return _write(_retail_with_pii(RETAIL_ROWS, 7), tmp_path_factory.mktemp("retail") / "retail.csv")


@pytest.fixture(scope="session")
def retail_release(tmp_path_factory, retail_file) -> tuple[Path, dict]:
    """A table-kind release fitted once on the retail list (stability measured, as the CLI does)."""
    from portal.segmentation.table_training import train_table_release

    production = tmp_path_factory.mktemp("table_models")
    staging, manifest, _ = train_table_release(retail_file, production)
    return releases.publish_release(staging, production, manifest["version"]), manifest


@pytest.fixture(scope="session")
def orders_file(tmp_path_factory) -> Path:
    frame, _ = generate_orders(300, seed=5, max_orders=8)
    return _write(frame, tmp_path_factory.mktemp("orders") / "orders.csv")


@pytest.fixture(scope="session")
def orders_release(tmp_path_factory, orders_file) -> Path:
    from portal.segmentation.table_training import train_table_release

    production = tmp_path_factory.mktemp("order_models")
    staging, manifest, _ = train_table_release(orders_file, production, measure_stability=False)
    return releases.publish_release(staging, production, manifest["version"])


def _app_on(release: Path, tmp_path: Path, **extra):
    """An app whose live model is a copy of ``release``."""
    from app import create_app

    folders = {name: tmp_path / "table_app" / name for name in ("model", "production_models", "uploads", "base_data")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    copy = folders["production_models"] / release.name
    shutil.copytree(release, copy)
    releases.set_live(folders["model"], copy)
    app = create_app(make_settings_overrides(folders, **extra))
    app.extensions["portal"].models.reload_if_changed()
    return app, folders


@pytest.fixture
def table_app(retail_release, tmp_path):
    app, folders = _app_on(retail_release[0], tmp_path)
    yield app, folders
    app.extensions["portal"].content.close()


def upload(client, content: bytes, name: str = "customers.csv"):
    return client.post("/upload-excel", data={"file": (io.BytesIO(content), name), **CAMPAIGN},
                       content_type="multipart/form-data")


# -- features ------------------------------------------------------------------------------------

def _feature_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    joined = pd.Timestamp("2024-12-31") - pd.to_timedelta(np.r_[0, rng.integers(1, 900, n - 1)], unit="D")
    return pd.DataFrame({
        "Member No": [f"M{i:04d}" for i in range(n)],
        "Contact": [f"p{i}@mail.example.com" for i in range(n)],
        "Spend": np.round(rng.lognormal(3, 1.2, n), 2),
        "Age": rng.integers(18, 80, n),
        "Joined": joined,
        "Newsletter": rng.choice(["Yes", "No"], n),
        "Level": rng.choice(["Bronze", "Silver", "Gold"], n),
        "Channel": rng.choice(["Online", "Store", "Phone"], n),
        "Town": rng.choice([f"Town {i}" for i in range(40)], n),
    })


def test_features_per_role():
    """Numbers log-tamed when skewed and standardised, dates as days before the newest, yes/no, ordinal ranks,
    one-hot categories (unknown → zeros), member profiles (unseen → overall mean); ids and PII never read."""
    frame = _feature_frame()
    schema = infer_schema(frame)
    roles = {c.name: c.role for c in schema.columns}
    assert roles["Member No"] == Role.IDENTIFIER and roles["Contact"] == Role.PERSONAL
    assert roles["Town"] == Role.HIGH_CARDINALITY and roles["Level"] == Role.ORDINAL
    features = TableFeatures(schema).fit(frame)
    described = features.describe()
    assert described["log1p_columns"] == ["Spend"] and described["reference_date"] == "2024-12-31"

    typed = features.columns_.transform(frame)
    assert typed["Joined"].min() == 0 and typed["Joined"].max() <= 900
    assert set(typed["Newsletter"]) == {0.0, 1.0} and set(typed["Level"]) == {0.0, 1.0, 2.0}

    without_pii = frame.drop(columns=["Member No", "Contact"])
    X = features.transform(without_pii)
    assert X.shape[0] == len(frame) and np.isfinite(X).all()
    names = list(features.get_feature_names_out())
    assert not any("Contact" in n or "Member" in n for n in names)

    odd = without_pii.head(1).assign(Channel="Carrier pigeon", Town="Atlantis", Age=500)
    row = features.transform(odd)[0]
    channel = [i for i, n in enumerate(names) if n.startswith("Channel")]
    town = [i for i, n in enumerate(names) if n.startswith("Town profile")]
    assert np.all(row[channel] == 0) and np.allclose(row[town], 0) and np.isfinite(row).all()


def test_no_block_drowns_the_rest():
    """Every block spreads rows at most as much as one standardised number: a 40-category one-hot (kept one-hot
    here) stays under it, and a member profile over six numbers its category determines is weighted down to it
    (the cap alone: mean profile, dependence factor off; the default weighting stays under it too)."""
    rng = np.random.default_rng(1)
    town = rng.integers(0, 10, 400)
    frame = _feature_frame().drop(columns=["Contact"]).assign(Town=[f"Town {t}" for t in rng.integers(0, 40, 300)])
    frame = pd.concat([frame] * 2, ignore_index=True).head(400)
    for i in range(6):
        frame[f"Score {i}"] = town + rng.normal(0, 0.05, 400)
    frame["Area"] = [f"Area {t}" for t in town]
    schema = infer_schema(frame, roles={"Town": "categorical", "Area": "high_cardinality"})
    for features in (TableFeatures(schema, profile_from=1000).fit(frame),
                     TableFeatures(schema, profile="mean", profile_budget=0, dependence_floor=1.0,
                                   profile_from=1000).fit(frame)):
        assert isinstance(features.encoder_.named_transformers_["Town"], OneHotEncoder)
        X = features.transform(frame)
        for name, piece in features.encoder_.output_indices_.items():
            if piece.stop > piece.start:
                assert 2 * X[:, piece].var(axis=0).sum() <= 2.0 + 1e-6, name
    spread = features.block_spread_["Area"]
    assert spread > 4 and features.weights_["Area"] == pytest.approx(np.sqrt(2.0 / spread), rel=1e-3)
    assert features.weights_["Age"] == 1.0


# -- the fitted model --------------------------------------------------------------------------

def test_the_neighbourhood_is_a_share_of_the_fitted_rows():
    """5% of the fitted rows between 30 and 100, never more than the other rows; the loyalty model keeps 200."""
    reducer = table_reducer(0)
    assert [reducer.neighbours_for(n) for n in (20, 200, 1000, 1200, 5000, 100_000)] == [19, 30, 50, 60, 100, 100]
    assert ExactNeighbourUMAP().neighbours_for(5000) == 200


def test_release_records_kind_schema_weights_and_gates(retail_release):
    release, manifest = retail_release
    assert releases.verify_release(release)["kind"] == "table"
    assert manifest["environment"]["model_format"] == str(releases.MODEL_FORMAT) == "9"
    roles = {c["name"]: (c["role"], c["reason"]) for c in manifest["schema"]["columns"]}
    assert roles["Contact"][0] == "personal" and "email" in roles["Contact"][1]
    assert roles["Membership"][0] == "ordinal" and roles["Signup Date"][0] == "date"
    assert all(roles[c][0] in ("personal", "identifier", "excluded")
               for c in ("Name", "Phone", "Street Address", "Postcode", "Notes", "Customer ID"))
    assert set(manifest["schema"]["blocks"]) >= {"Age", "City", "Membership"}
    metrics = manifest["metrics"]
    assert metrics["fast_path_agreement"] >= 0.97 and 2 <= metrics["clusters"] <= 12
    assert metrics["noise_share"] <= 0.15 and metrics["stability"] >= 0.8
    refiner = manifest["parameters"]["refiner"]
    assert refiner["method"].startswith("latent-class") and refiner["upstream_odds"] == 2.0
    assert 0 <= refiner["moved_share"] < 0.5 and refiner["iterations"] >= 1
    assert "refiner.pkl" in manifest["files"]


def test_planted_groups_are_recovered(retail_release, retail_file):
    from sklearn.metrics import adjusted_rand_score

    model = TableSegmentationModel.load(retail_release[0])
    frame = pd.read_csv(retail_file)
    _, answers = generate_retail(RETAIL_ROWS, 7)
    assert adjusted_rand_score(answers["true_group"], model.place(frame).cluster_id) >= 0.8


def test_fast_path_agrees_with_the_full_path_on_new_rows(retail_release):
    model = TableSegmentationModel.load(retail_release[0])
    new, _ = generate_retail(400, seed=2024)
    fast, full = model.place(new), model.place_through_reducer(new)
    assert np.mean(fast.cluster_id == full.cluster_id) >= 0.95
    assert ((fast.confidence > 0) & (fast.confidence <= 1)).all()


def _odd_retail(rows: int, seed: int) -> pd.DataFrame:
    """New retail customers as a JSON body gives them, with unknown categories, blanks, odd spellings and
    out-of-range numbers dropped into about a third of the cells."""
    frame, _ = generate_retail(rows, seed)
    frame = frame.astype(object)
    frame["Signup Date"] = pd.Series([d.strftime("%Y-%m-%d") for d in frame["Signup Date"]], dtype=object)
    odd = {"Age": [None, "", 500, -40, "abc", "1e308", " 34 "], "Annual Income": ["$52,000", 1e31, None, "12%"],
           "Total Spend": [float("inf"), "1,234.50", -1e6], "Signup Date": ["", "31/12/2024", "2024-02-30", "soon",
                                                                          pd.Timestamp("2020-01-01")],
           "Last Purchase": [None, "2025-01-01", "1 Mar 2025"], "Preferred Channel": ["Atlantis", None, " Online "],
           "Membership": ["Titanium", "gold", None], "City": ["Nowhere", "", 7]}
    rng = np.random.default_rng(seed)
    for column, cells in odd.items():
        for row in np.flatnonzero(rng.random(len(frame)) < 0.35):
            frame.iat[row, frame.columns.get_loc(column)] = cells[rng.integers(len(cells))]
    return frame


def test_one_row_gets_the_segment_and_confidence_it_gets_in_a_batch(retail_release):
    """The smart form places one row at a time; an upload places thousands: the same row, the same answer."""
    from portal.segmentation.table_small_batch import SMALL_BATCH_ROWS

    model = TableSegmentationModel.load(retail_release[0])
    rows = _odd_retail(250, 11)
    assert len(rows) > SMALL_BATCH_ROWS
    batch = model.place(rows)
    X, unreadable = model.encode(rows)
    assert unreadable.to_numpy().any(axis=1).mean() > 0.2
    for row in range(len(rows)):
        one = model.place(rows.iloc[[row]])
        assert (one.cluster_id[0], one.confidence[0], one.reassigned[0]) == \
            (batch.cluster_id[row], batch.confidence[row], batch.reassigned[row]), rows.iloc[row].to_dict()
        alone, flags = model.encode(rows.iloc[[row]])
        assert alone[0].tobytes() == X[row].tobytes()
        assert flags.iloc[0].tolist() == unreadable.iloc[row].tolist()


def test_same_data_and_settings_give_identical_labels_and_the_gate_refuses(retail_file):
    frame = pd.read_csv(retail_file).head(400)
    schema = infer_schema(frame)
    first = TableSegmentationModel(schema).fit(frame)
    second = TableSegmentationModel(schema).fit(frame)
    assert np.array_equal(first.labels_, second.labels_)
    with pytest.raises(TrainingError, match="agrees with the full UMAP path"):
        TableSegmentationModel(schema, TableParams(min_fast_path_agreement=1.01)).fit(frame)
    # the stability refit skips the agreement check (and its gate) and nothing else
    unchecked = TableSegmentationModel(schema, TableParams(min_fast_path_agreement=1.01)).fit(
        frame, measure_agreement=False)
    assert np.array_equal(unchecked.labels_, first.labels_) and np.isnan(unchecked.fast_path_agreement_)


def test_the_stability_refit_reuses_the_feature_stage_only_when_every_row_is_fitted(retail_file):
    frame = pd.read_csv(retail_file).head(400)
    schema = infer_schema(frame)
    first = TableSegmentationModel(schema).fit(frame, measure_agreement=False)
    other_seed = TableParams(random_state=43)
    fresh = TableSegmentationModel(schema, other_seed).fit(frame, measure_agreement=False)
    reused = TableSegmentationModel(schema, other_seed).fit(frame, measure_agreement=False,
                                                            features=first.features_)
    assert reused.features_ is first.features_ and fresh.features_ is not first.features_
    assert np.array_equal(reused.labels_, fresh.labels_)  # the stage does not depend on the seed
    sampled = TableSegmentationModel(schema, TableParams(random_state=43, max_fit_rows=300)).fit(
        frame, measure_agreement=False, features=first.features_)
    assert sampled.features_ is not first.features_  # other rows fitted: the stage is fitted again


def test_too_few_rows_says_how_many(retail_file):
    frame = pd.read_csv(retail_file).head(40)
    with pytest.raises(TrainingError, match="40 usable customers"):
        TableSegmentationModel(infer_schema(frame)).fit(frame)


def test_a_retrain_with_new_customers_and_another_seed_keeps_every_segment_id_and_name(retail_release, retail_file,
                                                                                       tmp_path):
    from portal.segmentation.table_training import train_table_release
    from portal.serving.live_model import load_release

    release, _ = retail_release
    more = _retail_with_pii(RETAIL_ROWS // 5, 8).assign(**{"Customer ID": lambda f: [f"NEW-{i}" for i in f.index]})
    grown = _write(pd.concat([pd.read_csv(retail_file), more], ignore_index=True), tmp_path / "grown.csv")

    staging, manifest, _ = train_table_release(grown, tmp_path / "models", params=TableParams(random_state=3),
                                               measure_stability=False, live=release)

    lineage = manifest["segment_ids"]
    before = json.loads((release / "cluster_personas.json").read_text())
    after = json.loads((staging / "cluster_personas.json").read_text())
    assert lineage["compared_with"] == release.name and lineage["vanished"] == []
    assert {k: p["name"] for k, p in after.items() if k in before} == {k: p["name"] for k, p in before.items()}
    frame = pd.read_csv(retail_file)
    same = load_release(release, warm_up=False).model.place(frame).cluster_id == \
        load_release(staging, warm_up=False).model.place(frame).cluster_id
    assert same.mean() >= 0.95


def test_a_table_release_replacing_a_loyalty_one_gets_new_ids_above_the_live_ones(retail_file, trained_release,
                                                                                  tmp_path):
    from portal.segmentation.table_training import train_table_release

    live_ids = [int(k) for k in json.loads((trained_release / "cluster_personas.json").read_text())]

    staging, manifest, _ = train_table_release(retail_file, tmp_path / "models", measure_stability=False,
                                               live=trained_release)

    lineage = manifest["segment_ids"]
    assert lineage["method"] == "none" and "reads another schema" in lineage["reason"]
    ids = [int(k) for k in json.loads((staging / "cluster_personas.json").read_text())]
    assert min(ids) > max(live_ids) and {s["status"] for s in lineage["segments"]} == {"new"}


def test_personas_name_the_files_columns_and_hide_small_categories(retail_release):
    release, manifest = retail_release
    personas = json.loads((release / "cluster_personas.json").read_text())
    columns = [c["name"] for c in manifest["schema"]["columns"] if c["role"] not in ("personal", "identifier")]
    for persona in personas.values():
        assert persona["distinguishing_traits"] and persona["suggested_tone"] and persona["content_angles"]
        for trait in persona["distinguishing_traits"]:
            assert any(trait["trait"].startswith(c) for c in columns), trait
            assert 0 <= trait["share"] <= 1
    text = (release / "cluster_personas.json").read_text() + (release / "cluster_profiles.csv").read_text()
    assert "Tinytown" not in text and MARKER not in text.lower()


# -- uploads against the live schema -----------------------------------------------------------

def test_upload_of_the_training_table(table_app, retail_file):
    app, folders = table_app
    client = app.test_client()
    response = upload(client, retail_file.read_bytes())
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["rows"] == {"received": RETAIL_ROWS, "used": RETAIL_ROWS, "skipped": 0,
                            "reassigned_from_noise": body["rows"]["reassigned_from_noise"]}
    assert 2 <= len(body["segments"]) <= 12 and "rolled_up" not in body
    assert sum(s["size"] for s in body["segments"]) == RETAIL_ROWS
    assert all(s["content"] and s["persona"]["name"] for s in body["segments"])
    (snapshot,) = folders["base_data"].rglob("*.csv")  # in the schema's own lineage, not the loyalty one
    assert snapshot.parent.parent.parent == folders["base_data"] / "tables"
    kept = pd.read_csv(snapshot, dtype=str)
    assert len(kept) == RETAIL_ROWS and "Contact" not in kept and MARKER not in snapshot.read_text().lower()

    export = client.get(f"/uploads/{body['upload_id']}/segments.xlsx")
    assert export.status_code == 200
    sheet = pd.read_excel(io.BytesIO(export.data))
    assert {"Segment ID", "Persona", "Confidence"} <= set(sheet.columns) and len(sheet) == RETAIL_ROWS


def test_upload_matches_spellings_ignores_extras_places_unknowns_and_skips_bad_rows(table_app, retail_release):
    app, _ = table_app
    frame, _ = generate_retail(120, seed=99)
    frame = frame.rename(columns={"Annual Income": "annual_income", "Preferred Channel": "PREFERRED CHANNEL"})
    frame["Favourite Colour"] = "Teal"
    frame.loc[3, "City"] = "Atlantis"
    frame.loc[4, "Age"] = 190
    frame["Age"] = frame["Age"].astype(object)
    frame.loc[7, "Age"] = "forty-two"
    frame["Signup Date"] = frame["Signup Date"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[9, "Signup Date"] = "not a date"
    frame.loc[11, "Membership"] = "Obsidian"
    body = upload(app.test_client(), frame.to_csv(index=False).encode()).get_json()

    assert body["status"] == "ok", body
    assert body["rows"]["received"] == 120 and body["rows"]["used"] == 117 and body["rows"]["skipped"] == 3
    levels = next(c for c in retail_release[1]["schema"]["columns"] if c["name"] == "Membership")["values"]
    assert body["skipped_examples"] == [
        {"row": 9, "reason": "Age is not a number"}, {"row": 11, "reason": "Signup Date is not a date"},
        {"row": 13, "reason": "Membership is not one of the levels the model knows; use "
                              f"{', '.join(levels[:-1])} or {levels[-1]}"}]
    assert body["file"]["columns"]["annual_income"] == "Annual Income"
    assert "Favourite Colour" not in body["file"]["columns"]


def test_upload_missing_feature_columns_is_422_naming_them_and_how_to_train(table_app):
    app, _ = table_app
    frame, _ = generate_retail(50, seed=3)
    response = upload(app.test_client(), frame.drop(columns=["Age", "City"]).to_csv(index=False).encode())
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "missing_columns"
    assert "'Age'" in error["message"] and "'City'" in error["message"] and "flask --app app train" in error["message"]
    assert set(error["details"]["missing"]) == {"Age", "City"} and "Membership" in error["details"]["expected"]


def test_audience_fields_on_a_learned_schema_are_refused_with_the_fix(table_app):
    app, _ = table_app
    response = app.test_client().post("/generate-promo", json={**CAMPAIGN, "location": "Tampines"})
    assert response.status_code == 422 and "cluster_id" in response.get_json()["error"]["message"]
    assert app.test_client().get("/personas").status_code == 200


@pytest.fixture(scope="session")
def seed_named_release(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A learned-schema release of a table that uses the seed's column names (plus a spend column)."""
    from portal.segmentation.sample_data import generate_customers
    from portal.segmentation.table_training import train_table_release

    frame, _ = generate_customers(rows=600, seed=4)
    frame["Annual Spend"] = np.random.default_rng(4).lognormal(6, 0.5, len(frame)).round(2)
    frame.loc[:2, "Gender"] = "Non-binary"  # three customers: too few to be listed as a form value
    path = _write(frame, tmp_path_factory.mktemp("seed_named") / "members.csv")
    production = tmp_path_factory.mktemp("seed_named_models")
    staging, manifest, _ = train_table_release(path, production, measure_stability=False)
    return releases.publish_release(staging, production, manifest["version"]), frame


def test_the_seed_header_aliases_and_form_fields_work_on_a_learned_schema_with_those_columns(seed_named_release,
                                                                                           tmp_path):
    release, frame = seed_named_release
    app, _ = _app_on(release, tmp_path)
    client = app.test_client()
    try:
        spelled = frame.rename(columns={"Date Joined": "Join Date", "Location": "Planning Area",
                                        "Loyalty Tier": "Membership Level", "Gender": "Sex"})
        body = upload(client, spelled.to_csv(index=False, date_format="%Y-%m-%d").encode()).get_json()
        assert body["status"] == "ok" and body["rows"]["used"] == len(frame), body
        assert body["file"]["columns"]["Join Date"] == "Date Joined" and "left_blank" not in body["file"]
        # Gender is optional in the seed's contract: a list without it is placed, and the response says so
        no_gender = upload(client, frame.drop(columns="Gender").to_csv(index=False).encode()).get_json()
        assert no_gender["status"] == "ok" and no_gender["rows"]["used"] == len(frame), no_gender
        assert no_gender["file"]["left_blank"] == ["Gender"] and "Gender" in no_gender["file"]["note"]
        refused = upload(client, frame.drop(columns="Location").to_csv(index=False).encode())
        assert refused.status_code == 422 and "Location" in refused.get_json()["error"]["message"]

        options = client.get("/options").get_json()
        fields = {f["name"]: f for f in options["audience_fields"]}
        assert sorted(fields["Gender"]["values"]) == ["Female", "Male"]
        held = frame["Location"].value_counts()
        assert set(fields["Location"]["values"]) == set(held[held >= 10].index) and (held < 10).any()
        assert options["locations"] == sorted(held[held >= 10].index)  # the seed form's dropdown
        form = client.post("/generate-promo", json={**CAMPAIGN, "location": "Bedok", "loyalty_tier": "gold",
                                                     "date_joined": "2021-03-01"})
        answer = form.get_json()
        assert form.status_code == 200 and answer["persona_source"] == "audience", answer
        assert set(answer["audience_assumed"]) == {"Gender", "Annual Spend"}
        spelled_form = client.post("/generate-promo", json={**CAMPAIGN, "audience": {"join date": "2021-03-01",
                                                                                     "area": "Bedok"}})
        assert spelled_form.status_code == 200 and "Date Joined" not in spelled_form.get_json()["audience_assumed"]
    finally:
        app.extensions["portal"].content.close()


def test_order_export_is_rolled_up_in_training_and_upload(orders_release, orders_file, tmp_path):
    manifest = releases.read_manifest(orders_release)
    assert manifest["rolled_up"]["customers"] == 300 and manifest["training_rows"] == 300
    features = {c["name"] for c in manifest["schema"]["columns"] if c["role"] not in ("identifier", "personal")}
    assert {"Last purchase", "Orders", "Total spend"} <= features
    app, _ = _app_on(orders_release, tmp_path)
    try:
        client = app.test_client()
        body = upload(client, orders_file.read_bytes(), "orders.csv").get_json()
        export = pd.read_excel(io.BytesIO(client.get(f"/uploads/{body['upload_id']}/segments.xlsx").data))
    finally:
        app.extensions["portal"].content.close()
    order_rows = len(pd.read_csv(orders_file))
    assert len(export) == order_rows and export.groupby("Customer ID")["Segment ID"].nunique().max() == 1
    assert body["status"] == "ok", body
    assert body["rolled_up"] == {"order_rows": order_rows, "customers": 300}
    assert sum(s["size"] for s in body["segments"]) == 300


def test_personal_data_never_reaches_the_llm_the_response_or_the_logs(retail_release, retail_file, tmp_path,
                                                                      llm_server, caplog):
    caplog.set_level(logging.DEBUG)
    app, _ = _app_on(retail_release[0], tmp_path, openai_api_key="sk-test", openai_base_url=llm_server.base_url,
                     openai_model="gpt-test", openai_timeout_s=5.0, openai_max_retries=0, cache_ttl_s=0)
    try:
        response = upload(app.test_client(), retail_file.read_bytes())
    finally:
        app.extensions["portal"].content.close()
    body = response.get_json()
    assert response.status_code == 200 and body["segments"][0]["content"]["provider"] == "openai"
    sent = "\n".join(call.raw for call in llm_server.requests)
    assert llm_server.requests
    frame = pd.read_csv(retail_file)
    samples = [MARKER, *frame["Phone"].head(20), *frame["Postcode"].head(20)]
    for text in (sent, json.dumps(body), caplog.text):
        for value in samples:
            assert str(value).lower() not in text.lower(), value


# -- training entry point ----------------------------------------------------------------------

def test_cli_trains_a_table_and_makes_it_live(runner, workspace, orders_file):
    result = runner.invoke(args=["train", "--data", str(orders_file), "--no-stability", "--exclude", "Category"])
    assert result.exit_code == 0, result.output
    live = releases.live_release_dir(workspace["model"])
    manifest = releases.read_manifest(live)
    assert manifest["kind"] == "table" and "rolled up" in result.output
    assert {c["name"]: c["role"] for c in manifest["order_schema"]["columns"]}["Category"] == "excluded"
    assert "Category" not in {c["name"] for c in manifest["schema"]["columns"]}


def test_cli_refuses_a_table_without_feature_columns_naming_each_column(runner, workspace, tmp_path):
    before = releases.live_release_dir(workspace["model"])
    frame = _retail_with_pii(150, 1)[["Customer ID", "Name", "Contact", "Notes"]]
    result = runner.invoke(args=["train", "--data", str(_write(frame, tmp_path / "people.csv"))])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "unchanged" in lines[0]
    for column in ("Customer ID", "Name", "Contact", "Notes"):
        assert f"{column}: " in lines[0]
    assert MARKER not in result.output.lower()
    assert releases.live_release_dir(workspace["model"]) == before


def test_get_model_lists_each_column_role_and_reason(table_app, client):
    app, _ = table_app
    body = app.test_client().get("/model").get_json()
    assert body["kind"] == "table" and body["metrics"]["fast_path_agreement"] >= 0.97
    roles = {c["column"]: c for c in body["columns"]}
    assert roles["Contact"]["role"] == "personal" and roles["Contact"]["reason"]
    assert "Membership" in body["feature_blocks"]
    loyalty = client.get("/model").get_json()
    assert loyalty["kind"] == "loyalty" and {c["column"] for c in loyalty["columns"]} >= {"Location", "Gender"}


def test_retraining_without_snapshots_of_the_live_schema_keeps_it_and_says_how_to_train(table_app):
    from retraining.job import run_retraining

    app, folders = table_app
    before = releases.live_release_dir(folders["model"])
    report = run_retraining(app.extensions["portal"].settings)
    assert report.state == "rejected" and "no snapshots of its schema" in report.reason
    assert "flask --app app train" in report.reason
    assert releases.live_release_dir(folders["model"]) == before


def test_a_learned_schema_model_retrains_on_its_own_snapshots(runner, app, workspace, orders_file):
    """Training keeps its customers (hashed id and feature columns only), uploads add theirs, and the
    quarterly retrain refits the live schema on both: same roles, order exports still rolled up."""
    from retraining.job import run_retraining
    from retraining.snapshots import lineage_dir, schema_of

    result = runner.invoke(args=["train", "--data", str(orders_file), "--no-stability"])
    assert result.exit_code == 0, result.output
    first = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    schema = schema_of(first)
    lineage = lineage_dir(workspace["base_data"], schema)
    (training,) = lineage.rglob("training-*.csv")
    kept = pd.read_csv(training, dtype=str)
    assert list(kept.columns) == [schema.identifier, *[c.name for c in schema.features]]
    assert len(kept) == first["training_rows"]
    assert not set(pd.read_csv(orders_file, dtype=str)["Customer ID"]) & set(kept[schema.identifier])

    more, _ = generate_orders(200, seed=9, max_orders=8)
    more["Customer ID"] = "NEW-" + more["Customer ID"].astype(str)
    newcomers = more["Customer ID"].nunique()
    app.extensions["portal"].models.reload_if_changed()
    client = app.test_client()
    assert upload(client, more.to_csv(index=False).encode(), "orders.csv").status_code == 200
    (from_upload,) = lineage.rglob("upload-*.csv")
    assert "NEW-" not in from_upload.read_text()
    assert not list(workspace["base_data"].glob("*/upload-*.csv"))  # nothing in the loyalty snapshots

    report = run_retraining(app.extensions["portal"].settings)
    assert report.state == "succeeded", report.reason
    second = releases.read_manifest(releases.live_release_dir(workspace["model"]))
    assert second["version"] != first["version"] and second["kind"] == "table"
    assert schema_of(second) == schema
    assert second["training_rows"] == first["training_rows"] + newcomers
    assert second["sources"] == [training.name, from_upload.name]
    assert second["rolled_up"]["id_column"] == first["rolled_up"]["id_column"]
    assert second["segment_ids"]["method"] == "placement"  # its segments matched to the live schema's
    assert second["segment_ids"]["compared_with"] == first["version"]
    assert app.extensions["portal"].models.reload_if_changed()
    again = upload(client, more.to_csv(index=False).encode(), "orders.csv")
    assert again.status_code == 200 and again.get_json()["rolled_up"]["customers"] == newcomers
    assert again.get_json()["model_version"] == second["version"]


def test_dates_of_an_upload_are_read_the_way_training_read_them():
    """A month-first training column reads a small upload's ambiguous 04/09/2024 as April 9, not 4 September."""
    n = 200
    frame = pd.DataFrame({"Joined": [f"{1 + i % 12:02d}/{13 + i % 15}/2024" for i in range(n)],
                          "Spend": np.arange(n, dtype=float)})
    features = TableFeatures(infer_schema(frame)).fit(frame)
    assert features.columns_.month_first_ == {"Joined": True}
    days = features.columns_.transform(pd.DataFrame({"Joined": ["04/09/2024"], "Spend": [1.0]}))["Joined"]
    assert days.iloc[0] == (features.columns_.reference_date_ - pd.Timestamp("2024-04-09")).days


def test_a_release_of_another_schema_swaps_in_without_a_restart(make_app, workspace, retail_release, retail_file):
    app = make_app()
    client = app.test_client()
    loyalty = releases.live_release_dir(workspace["model"])
    assert client.get("/model").get_json()["kind"] == "loyalty"
    copy = workspace["production_models"] / retail_release[0].name
    shutil.copytree(retail_release[0], copy)
    releases.set_live(workspace["model"], copy)
    assert app.extensions["portal"].models.reload_if_changed()
    assert client.get("/model").get_json()["kind"] == "table"
    assert upload(client, retail_file.read_bytes()).status_code == 200
    releases.set_live(workspace["model"], loyalty)
    assert app.extensions["portal"].models.reload_if_changed()
    assert client.get("/model").get_json()["kind"] == "loyalty"


_FIT_SCRIPT = """
import hashlib
from portal.ingestion.roles import infer_schema
from portal.segmentation.table_model import TableParams, TableSegmentationModel
from portal.segmentation.table_sample_data import generate_retail
frame, _ = generate_retail(1200, seed=3)
model = TableSegmentationModel(infer_schema(frame), TableParams(max_fit_rows=800)).fit(frame, progress=lambda m: None)
print(hashlib.sha256(model.labels_.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_the_same_table_gives_the_same_segments_whatever_the_blas_thread_count():
    """Fresh processes with one and two BLAS threads; rows outside the fitted sample go through the fast path."""
    import os
    import subprocess
    import sys

    from portal.settings import PROJECT_ROOT

    def labels_digest(threads: str) -> str:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
               "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", _FIT_SCRIPT], env=env, capture_output=True, text=True,
                              check=True, timeout=300)
        return done.stdout.strip().splitlines()[-1]

    assert labels_digest("1") == labels_digest("2")


def test_the_smart_form_places_an_audience_of_the_learned_schema(table_app, retail_file):
    app, _ = table_app
    client = app.test_client()
    fields = {f["name"]: f for f in client.get("/options").get_json()["audience_fields"]}
    assert fields["Membership"]["type"] == "ordinal" and fields["Membership"]["values"][0] == "Bronze"
    assert fields["Preferred Channel"]["type"] == "categorical" and "Online" in fields["Preferred Channel"]["values"]
    assert "Email" not in fields and "Name" not in fields  # personal columns are never form fields
    frame = pd.read_csv(retail_file)
    age = fields["Age"]["typical"]
    assert age["low"] == pytest.approx(frame["Age"].quantile(0.1)) and age["median"] == frame["Age"].median()
    assert age["high"] == pytest.approx(frame["Age"].quantile(0.9))
    signup = next(f for f in fields.values() if f["type"] == "date")["typical"]
    assert signup["low"] < signup["median"] < signup["high"]  # ISO dates, earliest first

    body = client.post("/generate-promo", json={**CAMPAIGN, "audience": {"age": 34, "membership": "Gold",
                                                                         "Preferred Channel": "Online"}}).get_json()
    assert body["persona_source"] == "audience" and body["cluster_id"] is not None
    assert body["persona"]["cluster_id"] == body["cluster_id"] and 0 <= body["confidence"] <= 1
    assert {"Age", "Membership", "Preferred Channel"}.isdisjoint(body["audience_assumed"])
    assert "Annual Income" in body["audience_assumed"]

    refused = client.post("/generate-promo", json={**CAMPAIGN, "audience": {"Shoe size": 42}})
    assert refused.status_code == 422 and "Shoe size" in refused.get_json()["error"]["message"]
    assert "Membership" in refused.get_json()["error"]["details"]["allowed"]


def test_numbers_too_large_to_mean_anything_are_unreadable_not_a_500(table_app):
    """1e308 overflowed the float32 features UMAP reads: a 500 on upload and on the smart form."""
    app, _ = table_app
    client = app.test_client()
    frame, _ = generate_retail(60, seed=5)
    frame["Total Spend"] = frame["Total Spend"].astype(object)
    frame.loc[2, "Total Spend"] = "1e308"
    body = upload(client, frame.to_csv(index=False).encode()).get_json()
    assert body["status"] == "ok" and body["rows"]["skipped"] == 1
    assert body["skipped_examples"] == [{"row": 4, "reason": "Total Spend is not a number"}]

    refused = client.post("/generate-promo", json={**CAMPAIGN, "audience": {"Total Spend": 1e308}})
    assert refused.status_code == 422 and "Total Spend" in refused.get_json()["error"]["message"]


# -- per-upload profiles and the fit check -------------------------------------------------------

def test_upload_profiles_each_segment_of_the_list_and_the_training_table_fits(table_app, retail_file):
    app, _ = table_app
    client = app.test_client()
    body = upload(client, retail_file.read_bytes()).get_json()
    assert body["model_fit"]["verdict"] == "good" and "action" not in body["model_fit"], body["model_fit"]
    export = pd.read_excel(io.BytesIO(client.get(f"/uploads/{body['upload_id']}/segments.xlsx").data))
    checked = 0
    for segment in body["segments"]:
        profile = segment["list_profile"]
        members = export["Segment ID"] == segment["cluster_id"]
        assert profile["size"] == segment["size"] == int(members.sum())
        for trait in profile["traits_vs_list"]:
            if "value" in trait:  # a category: its share in the segment and in the whole list, by pandas
                values = export[trait["column"]].astype(str)
                share = float((values[members] == trait["value"]).mean())
                assert (values[members] == trait["value"]).sum() >= 10
                assert trait["share"] == round(share, 3)
                assert trait["compared_share"] == round(float((values == trait["value"]).mean()), 3)
                checked += 1
            elif " median " in trait["trait"]:  # a number: the segment's median is the one pandas gives
                median = float(pd.to_numeric(export.loc[members, trait["column"]], errors="coerce").median())
                assert trait["trait"].startswith(f"{trait['column']} median {shown_number(median)} vs "), trait
                checked += 1
        assert all("in the training base" in t["trait"] for t in profile["traits_vs_base"])
    assert checked >= 2
    assert "tinytown" not in json.dumps(body).lower()


def test_a_list_of_another_population_on_a_learned_schema_fits_poorly_with_the_training_action(table_app):
    app, _ = table_app
    frame, _ = generate_retail(600, seed=21)
    frame = frame.assign(Age=frame["Age"] + 25, **{"Annual Income": frame["Annual Income"] * 3})
    body = upload(app.test_client(), frame.to_csv(index=False).encode()).get_json()
    fit = body["model_fit"]
    assert fit["verdict"] in ("weak", "poor") and fit["parts"]["out_of_range"]["value"] > 0.1, fit
    assert fit["action"]["command"] == "flask --app app train --data FILE"
    assert fit["action"]["admin_call"]["form"] == {"upload_id": body["upload_id"]}
    assert set(fit["parts"]["distribution_distance"]["by_feature"]) >= {"Age", "Annual Income", "City"}


def test_a_live_release_that_cannot_place_the_rows_costs_the_new_release_nothing_but_its_ids(
        retail_release, retail_file, tmp_path, caplog):
    """Matching segments to the live release is a comparison: when the live model cannot place the training
    rows (here a column it reads is not among them), the new fit gets new ids and says why."""
    from portal.segmentation.segment_ids import assign_stable_ids

    release, _ = retail_release
    frame = pd.read_csv(retail_file).head(400)
    model = TableSegmentationModel(infer_schema(frame)).fit(frame, measure_agreement=False)
    rows = frame.drop(columns=[model.schema.features[0].name])
    with caplog.at_level(logging.WARNING):
        ids = assign_stable_ids(model, rows, tmp_path, release)
    assert ids.method == "none" and "could not place the training rows (KeyError)" in ids.reason
    assert sorted(set(model.labels_.tolist()) - {-1}) == sorted(ids.mapping.values())
    assert "KeyError" in caplog.text and model.schema.features[0].name not in caplog.text

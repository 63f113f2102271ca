"""The fit check on every upload: the training base's distributions saved in the release, a verdict per list,
the training action when the list does not fit, and old releases without those distributions."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pandas as pd
import pytest

from portal.segmentation import base_distributions, releases
from portal.segmentation.sample_data import generate_customers
from portal.serving.model_fit import TRAIN_COMMAND, _divergence
from tests.test_upload_profile import post


def test_training_writes_the_base_distributions_into_the_release(trained_release):
    manifest = releases.read_manifest(trained_release)
    assert base_distributions.FILE in manifest["files"]
    base = base_distributions.load(trained_release)
    assert base is not None and base["rows"] == manifest["training_rows"]
    personas = json.loads((trained_release / "cluster_personas.json").read_text())
    assert set(base["segments"]) == set(personas)  # the release's (stable) segment ids
    assert 0 < base["mean_confidence"] <= 1 and 0 <= base["reassigned_share"] <= 1
    for name, entry in base["features"].items():
        assert sum(entry["shares"]) == pytest.approx(1, abs=1e-3), name
        assert {s: sum(c) for s, c in entry["by_segment"].items()} == base["segments"]
        if entry["kind"] == "number":
            low, high = entry["range"]
            assert low <= high and len(entry["buckets"]) == len(entry["edges"]) + 2
        else:
            assert all(entry["summary"]["counts"][b] >= 10 for b in entry["buckets"][:-1])
    assert base["features"]["Tenure (months)"]["range"][0] == 0


def test_a_sample_of_the_training_population_fits(client, training_file):
    sample = pd.read_excel(training_file).sample(n=600, random_state=1)
    body = post(client, sample).get_json()
    fit = body["model_fit"]
    assert fit["available"] and fit["verdict"] == "good" and "action" not in fit, fit
    assert fit["parts"]["unseen_categories"]["value"] == 0 and fit["parts"]["out_of_range"]["value"] == 0
    assert set(fit["parts"]["distribution_distance"]["by_feature"]) == {"Location", "Gender", "Loyalty Tier",
                                                                        "Tenure (months)"}


def _swapped_tiers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{"Loyalty Tier": frame["Loyalty Tier"].map({"Silver": "Platinum", "Platinum": "Silver",
                                                                      "Gold": "Gold"})})


def _earlier(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{"Date Joined": pd.to_datetime(frame["Date Joined"]) - pd.DateOffset(years=6)})


@pytest.mark.parametrize("make", [
    lambda: generate_customers(800, 1, "three-unbalanced")[0],
    lambda: generate_customers(800, 2, "eight-overlapping")[0],
    lambda: _swapped_tiers(generate_customers(800, 4)[0]),
    lambda: _earlier(generate_customers(800, 5)[0]),
], ids=["three-unbalanced", "eight-overlapping", "other-tiers", "other-dates"])
def test_a_list_from_another_population_fits_weakly_or_poorly_and_says_how_to_train_on_it(client, make):
    body = post(client, make()).get_json()
    fit = body["model_fit"]
    assert fit["verdict"] in ("weak", "poor"), fit
    assert fit["score"] < fit["thresholds"]["good_at"]
    action = fit["action"]
    assert action["command"] == TRAIN_COMMAND == "flask --app app train --data FILE"
    assert action["admin_call"] == {"method": "POST", "path": "/admin/train", "form": {"upload_id": body["upload_id"]}}
    assert body["upload_id"] in action["message"] and TRAIN_COMMAND in action["message"]


def test_the_fit_is_logged_per_upload_without_customer_data(client, caplog):
    caplog.set_level(logging.INFO)
    frame = generate_customers(300, 9)[0]
    body = post(client, frame).get_json()
    lines = [r.getMessage() for r in caplog.records if "model fit" in r.getMessage()]
    assert len(lines) == 1 and body["upload_id"] in lines[0] and body["model_fit"]["verdict"] in lines[0]
    for value in (*frame["Full Name"].head(20), *frame["Email Address"].head(20), *frame["Customer ID"].head(20)):
        assert value.lower() not in caplog.text.lower()


def test_an_old_release_without_base_distributions_says_so_and_still_serves(make_app, workspace):
    release = releases.live_release_dir(workspace["model"])
    assert release is not None
    (release / base_distributions.FILE).unlink()
    manifest = json.loads((release / releases.MANIFEST).read_text())
    del manifest["files"][base_distributions.FILE]
    (release / releases.MANIFEST).write_text(json.dumps(manifest))
    client = make_app().test_client()
    response = post(client, generate_customers(200, 3)[0])
    body = response.get_json()
    assert response.status_code == 200 and body["segments"]
    fit = body["model_fit"]
    assert fit["available"] is False and fit["verdict"] is None and fit["score"] is None
    assert "trained before" in fit["reason"] and TRAIN_COMMAND in fit["reason"]
    assert all(s["list_profile"]["traits_vs_base"] == [] for s in body["segments"])


def test_the_divergence_rarely_counts_for_samples_of_the_same_population_whatever_their_size():
    rng = np.random.default_rng(0)
    training = np.array([400, 300, 150, 100, 40, 10], dtype=float)
    shares = training / training.sum()
    for rows in (20, 100, 1000):
        same = [_divergence(rng.multinomial(rows, shares).astype(float), training) for _ in range(300)]
        assert np.mean(np.array(same) > 0) < 0.05 and np.mean(same) < 0, rows
    shifted = shares[::-1]
    assert _divergence(rng.multinomial(200, shifted).astype(float), training) > 1.0


def test_the_export_records_the_fit_check(client):
    body = post(client, generate_customers(300, 2, "eight-overlapping")[0]).get_json()
    data = client.get(f"/uploads/{body['upload_id']}/segments.xlsx").data
    fit = pd.read_excel(io.BytesIO(data), sheet_name="Model fit").set_index("Item")["Value"]
    assert fit["Verdict"] == body["model_fit"]["verdict"] and fit["Command"] == TRAIN_COMMAND

"""The per-upload segment profile: what the list's own members of each segment look like, beside the persona."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pandas as pd
import pytest

from portal.segmentation.geography import region_of
from portal.segmentation.sample_data import generate_customers

CAMPAIGN = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
            "past_engagement": "Low"}
RARE = "Zqrareville"


def post(client, frame: pd.DataFrame):
    data = frame.to_csv(index=False, date_format="%Y-%m-%d").encode()
    return client.post("/upload-excel", data={"file": (io.BytesIO(data), "list.csv"), **CAMPAIGN},
                       content_type="multipart/form-data")


def _campaign_list() -> pd.DataFrame:
    """A list unlike the training mix (mostly Gold), plus five customers of an area nobody else lives in."""
    frame, _ = generate_customers(700, seed=3)
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.6, "Loyalty Tier"] = "Gold"
    frame.loc[:4, "Location"] = RARE
    return frame


def _traits(frame: pd.DataFrame) -> pd.DataFrame:
    """The trait columns computed directly with pandas (not with the trait code)."""
    joined = pd.to_datetime(frame["Date Joined"])
    return pd.DataFrame({"Location": frame["Location"].astype(str),
                         "Region": frame["Location"].astype(str).map(region_of),
                         "Gender": frame["Gender"].astype(str), "Loyalty Tier": frame["Loyalty Tier"].astype(str),
                         "Join year": joined.dt.year.astype(str), "Join quarter": "Q" + joined.dt.quarter.astype(str)})


@pytest.fixture
def uploaded(client):
    frame = _campaign_list()
    response = post(client, frame)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    export = pd.read_excel(io.BytesIO(client.get(f"/uploads/{body['upload_id']}/segments.xlsx").data))
    return body, export


def test_profile_of_each_segment_equals_a_direct_pandas_computation(uploaded, training_file):
    body, export = uploaded
    listed = _traits(export)
    base = _traits(pd.read_excel(training_file))
    checked = 0
    for segment in body["segments"]:
        profile = segment["list_profile"]
        members = export["Segment ID"] == segment["cluster_id"]
        size = int(members.sum())
        assert (profile["size"], profile["share"]) == (size, round(size / len(export), 4)) == \
            (segment["size"], segment["share"])
        if size < 10:
            assert not profile["traits_vs_list"] and not profile["traits_vs_base"]
            continue
        tiers = export.loc[members, "Loyalty Tier"].value_counts()
        assert profile["tier_mix"] == {t: round(c / size, 3) for t, c in tiers.items() if c >= 10}
        places = export.loc[members, "Location"].value_counts()
        for place in profile["top_locations"]:
            assert places[place["value"]] >= 10 and place["share"] == round(places[place["value"]] / size, 3)
        for against, frame, key in (("traits_vs_list", listed, "list_share"), ("traits_vs_base", base, "base_share")):
            for trait in profile[against]:
                if trait["column"] not in listed.columns:
                    continue  # tenure bands depend on the model's reference date
                column, value = trait["column"], trait["value"]
                share = float((listed.loc[members, column] == value).mean())
                compared = float((frame[column] == value).mean())
                assert (listed.loc[members, column] == value).sum() >= 10
                assert trait["share"] == round(share, 3) and trait[key] == round(compared, 3), trait
                assert trait["lift"] == round(share / compared, 2)
                checked += 1
    assert checked >= 3


def test_the_list_profile_says_what_the_persona_cannot(uploaded):
    """A list that is mostly Gold says so in its profile, against the training base, where the persona cannot."""
    body, export = uploaded
    gold = [t for s in body["segments"] for t in s["list_profile"]["traits_vs_base"] if t["value"] == "Gold"]
    assert gold and all(t["lift"] > 1.2 and "in the training base" in t["trait"] for t in gold)
    assert all(s["list_profile"]["summary"].startswith(f"{s['size']:,} customers of this list")
               for s in body["segments"])


def test_no_category_of_fewer_than_ten_customers_is_shown(uploaded, caplog):
    body, export = uploaded
    assert (export["Location"] == RARE).sum() == 5
    assert RARE.lower() not in json.dumps(body).lower()


def test_the_export_summary_sheet_carries_each_segments_list_profile(client, uploaded):
    body, _ = uploaded
    data = client.get(f"/uploads/{body['upload_id']}/segments.xlsx").data
    summary = pd.read_excel(io.BytesIO(data), sheet_name="Summary")
    assert list(summary["Segment ID"]) == [s["cluster_id"] for s in body["segments"]]
    assert list(summary["Customers"]) == [s["size"] for s in body["segments"]]
    assert list(summary["This list's members"]) == [s["list_profile"]["summary"] for s in body["segments"]]
    fit = pd.read_excel(io.BytesIO(data), sheet_name="Model fit")
    assert fit.loc[fit["Item"] == "Verdict", "Value"].iloc[0] == body["model_fit"]["verdict"]
    assert RARE not in summary.to_csv() + fit.to_csv()


def test_content_is_written_for_the_list_as_well_as_the_persona(make_app, llm_server, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(openai_api_key="sk-test", openai_base_url=llm_server.base_url, openai_model="gpt-test",
                   openai_timeout_s=5.0, openai_max_retries=0, cache_ttl_s=0)
    frame = _campaign_list()
    body = post(app.test_client(), frame).get_json()
    assert body["status"] == "ok"
    prompts = [call.body["messages"][1]["content"] for call in llm_server.calls()]
    assert prompts and all("<list_data>" in p and "<audience_data>" in p for p in prompts)
    assert any("training base" in p and "Gold" in p for p in prompts)
    for text in ("\n".join(prompts), caplog.text):
        for value in (RARE, *frame["Full Name"].head(20), *frame["Email Address"].head(20)):
            assert value.lower() not in text.lower(), value


@pytest.mark.parametrize("drop", [None, "Gender"])
def test_the_fast_trait_table_of_a_list_holds_the_personas_trait_values(drop):
    from portal.ingestion.reader import read_customer_file
    from portal.segmentation.personas import trait_reference, trait_table
    from portal.serving.upload_profile import trait_categories

    frame = generate_customers(3000, seed=8)[0]
    customers = read_customer_file(frame.drop(columns=[drop] if drop else []).to_csv(index=False).encode(),
                                   filename="list.csv").frame.reset_index(drop=True)
    reference = trait_reference(customers)
    expected = trait_table(customers, reference)
    assert trait_categories(customers, reference).astype(str).equals(expected.astype(str))

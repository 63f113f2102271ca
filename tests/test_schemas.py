"""Request validation in one place: choices and their aliases, audience normalisation, campaign fields."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from schemas import (
    Audience,
    ContentPreferences,
    GeneratePostRequest,
    GeneratePromoRequest,
    UploadForm,
    business_today,
)

CAMPAIGN = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Awareness",
            "past_engagement": "Low"}


@pytest.mark.parametrize(("field", "given", "canonical"), [
    ("platform", "twitter", "X"), ("platform", " IG ", "Instagram"), ("prefer_output", "text + image", "both"),
    ("tone", "playful", "Playful"),
])
def test_choices_accept_their_own_aliases(field, given, canonical):
    assert getattr(ContentPreferences.model_validate({field: given}), field) == canonical


def test_an_alias_of_one_list_is_not_accepted_by_another():
    """'loyalty' is a funnel stage (Retention); it was also taken as a platform."""
    assert GeneratePromoRequest.model_validate({**CAMPAIGN, "funnel_stage": "loyalty"}).funnel_stage == "Retention"
    with pytest.raises(ValidationError, match="platform"):
        ContentPreferences.model_validate({"platform": "loyalty"})


def test_audience_values_are_normalised_once_in_the_model():
    audience = Audience.model_validate({"location": "  tampines ", "gender": "F", "loyalty_tier": "gold member",
                                        "join_year": 2019, "join_month": 5})
    assert (audience.location, audience.gender, audience.loyalty_tier) == ("Tampines", "Female", "Gold")
    assert audience.date_joined == date(2019, 5, 1)


@pytest.mark.parametrize(("fields", "words"), [
    ({"gender": "Robot"}, "use one of Female, Male"), ({"loyalty_tier": "Bronze"}, "use one of Silver, Gold"),
    ({"join_month": 4}, "together"), ({"date_joined": "1970-01-01"}, "before 1980"),
])
def test_bad_audience_fields_name_the_fix(fields, words):
    with pytest.raises(ValidationError, match=words):
        Audience.model_validate(fields)


def test_the_future_is_judged_in_singapore():
    tomorrow = business_today() + timedelta(days=1)
    with pytest.raises(ValidationError, match="future"):
        Audience.model_validate({"date_joined": tomorrow.isoformat()})
    with pytest.raises(ValidationError, match="future"):
        Audience.model_validate({"join_year": tomorrow.year + 1, "join_month": 1})
    assert Audience.model_validate({"date_joined": business_today().isoformat()}).given()


def test_generate_post_lists_the_required_campaign_fields_it_lacks():
    request = GeneratePostRequest.model_validate({"cluster_id": 1, "objective": "Win back lapsed customers"})
    assert request.missing_campaign_fields() == ["industry", "funnel_stage", "past_engagement"]
    assert request.campaign_overrides() == {"objective": "Win back lapsed customers"}


def test_a_request_splits_into_campaign_and_preferences():
    campaign, prefs = UploadForm.model_validate({"platform": "fb", "offer": "2-for-1"}).campaign_and_preferences()
    assert (campaign.objective, campaign.offer, prefs.platform) == ("Increase sales", "2-for-1", "Facebook")


def test_an_unknown_gender_is_a_422_naming_the_allowed_values(client):
    response = client.post("/generate-promo", json={**CAMPAIGN, "gender": "Robot", "location": "Bedok"})
    assert response.status_code == 422
    problem = next(p for p in response.get_json()["error"]["details"] if p["field"] == "gender")
    assert problem["allowed"] == ["Female", "Male", "Other", "Unknown"] and "Robot" not in response.get_data(True)


def test_blank_audience_values_count_as_not_given():
    audience = Audience.model_validate({"gender": " ", "loyalty_tier": ""})
    assert audience.gender is None and audience.loyalty_tier is None and not audience.given()

"""The offline writer: deterministic, persona-aware, varied, on-brand and within every platform's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.content.brand import load_brand_profile
from portal.content.checks import finalise, hard_failures
from portal.content.offline_writer import write_variant
from portal.content.prompts import persona_brief
from schemas import PLATFORMS, TONES
from tests.test_content import GENERAL, PERSONA, campaign, prefs

BRAND = load_brand_profile(Path(__file__).parent / "data" / "brand_profile.json")
BRIEF = persona_brief(PERSONA)


def text_of(draft: dict) -> str:
    return " ".join([draft["headline"], draft["body"], draft["cta"], *draft["hashtags"]])


def test_same_inputs_give_the_same_draft():
    assert write_variant(BRIEF, campaign(), prefs(), None, 1) == write_variant(BRIEF, campaign(), prefs(), None, 1)


def test_variants_differ():
    bodies = {write_variant(BRIEF, campaign(), prefs(num_variants=5), None, i)["body"] for i in range(5)}
    assert len(bodies) == 5


@pytest.mark.parametrize("axis", ["platform", "tone"])
def test_platform_and_tone_change_the_copy(axis):
    values = PLATFORMS if axis == "platform" else TONES
    bodies = {write_variant(BRIEF, campaign(), prefs(**{axis: value}), None, 0)["body"] for value in values}
    assert len(bodies) == len(values)


def test_copy_speaks_to_the_segment():
    drafts = [write_variant(BRIEF, campaign(), prefs(platform=p), None, i) for p in PLATFORMS for i in range(3)]
    joined = " ".join(text_of(d) for d in drafts)
    assert "Bukit Timah" in joined and "Platinum" in joined
    assert "exclusive previews" in joined or "early access" in joined
    assert "20% off your first month" in joined and "Kopi Peng subscription" in joined


def test_general_audience_without_traits_still_reads_well():
    draft = write_variant(persona_brief(GENERAL), campaign(product=None, offer=None, brand_name=None),
                          prefs(platform="Facebook"), None, 0)
    assert len(draft["body"]) > 60 and "{" not in draft["body"] and "None" not in draft["body"]


def test_brand_profile_is_honoured():
    for i in range(5):
        for platform in PLATFORMS:
            draft = write_variant(BRIEF, campaign(offer="cheap kopi, best ever deal"), prefs(platform=platform),
                                  BRAND, i)
            lowered = text_of(draft).lower()
            assert "cheap" not in lowered and "best ever" not in lowered
            assert draft["cta"] == "Order on the Kopi & Co app"
            variant = finalise(draft, platform, BRAND, want_image=False)
            if platform not in ("Email", "Website"):
                assert "#KopiAndCo" in variant["hashtags"]
                assert len(variant["hashtags"]) <= 4


def test_personal_data_in_campaign_text_is_not_repeated():
    draft = write_variant(BRIEF, campaign(offer="call 9123 4567 or mail a@b.com for 10% off"), prefs(), None, 0)
    assert "9123" not in draft["body"] and "a@b.com" not in draft["body"]


def test_image_prompt_only_when_asked():
    assert write_variant(BRIEF, campaign(), prefs(prefer_output="text"), None, 0)["image_prompt"] is None
    prompt = write_variant(BRIEF, campaign(), prefs(platform="TikTok", prefer_output="image"), None, 0)["image_prompt"]
    assert "vertical" in prompt and "no text" in prompt


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("tone", TONES)
def test_every_platform_and_tone_passes_the_hard_checks(platform, tone):
    for index in range(3):
        draft = write_variant(BRIEF, campaign(), prefs(platform=platform, tone=tone), BRAND, index)
        variant = finalise(draft, platform, BRAND, want_image=False)
        assert not hard_failures(variant["checks"]), variant["checks"]
        assert not variant["shortened"] and variant["score"] >= 85, variant


def test_email_has_a_subject_within_60_and_a_sign_off():
    draft = write_variant(BRIEF, campaign(), prefs(platform="Email"), None, 0)
    assert len(draft["headline"]) <= 60 and draft["body"].startswith("Hi there,")
    assert "The Kopi & Co team" in draft["body"] and draft["hashtags"] == []


def test_the_lists_profile_decides_what_is_true_of_the_audience():
    """Drafts for an upload speak to the list's members of the segment (Silver, Punggol) rather than to the
    training base's archetype (Platinum, Bukit Timah), through the prompt builder's brief."""
    profile = {"size": 300, "tier_mix": {"Silver": 0.8, "Gold": 0.2},
               "top_locations": [{"value": "Punggol", "share": 0.5}], "median_tenure_months": 9}
    brief = persona_brief({**PERSONA, "list_profile": profile})
    drafts = [write_variant(brief, campaign(), prefs(platform=p), None, i) for p in PLATFORMS for i in range(3)]
    joined = " ".join(text_of(d) for d in drafts)
    assert "Silver" in joined and "Punggol" in joined
    assert "Platinum" not in joined and "Bukit Timah" not in joined

"""Platform limits, personal-data detection, checks and the score."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.content.brand import load_brand_profile
from portal.content.checks import finalise, hard_failures, score
from portal.content.pii import find_pii, redact_pii
from portal.content.platforms import PLATFORM_RULES, x_weighted_length

BRAND = load_brand_profile(Path(__file__).parent / "data" / "brand_profile.json")


def draft(**changes) -> dict:
    return {"headline": "Fresh picks for members", "body": "Fresh picks just landed. Treat yourself. Shop now.",
            "cta": "Shop now", "hashtags": ["#ShopLocal"], "image_prompt": None, **changes}


def checks_of(variant: dict) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in variant["checks"]}


@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5), ("😀", 2), ("👍🏽", 2), ("👨‍👩‍👧", 6), ("咖啡", 4), ("café", 4),
    ("see https://example.com/a/very/long/path/that/goes/on", 4 + 23), ("www.kopi.sg", 23),
])
def test_x_counts_emoji_cjk_and_urls_like_x(text, length):
    assert x_weighted_length(text) == length


def test_x_posts_are_cut_to_280_weighted_keeping_hook_and_cta():
    body = "Big news for members! " + " ".join(["Our kopi is brewed fresh every morning."] * 10) + " Order now."
    variant = finalise(draft(body=body, cta="Order now", hashtags=["#A", "#B"]), "X", None, want_image=False)
    assert variant["shortened"] and variant["char_count"] <= 280
    assert variant["text"].startswith("Big news for members!") and "Order now." in variant["text"]
    assert checks_of(variant)["within_limit"] and not checks_of(variant)["not_shortened"]


def test_cjk_text_is_measured_double_on_x():
    body = "新品上市" * 40 + "。立即购买"
    variant = finalise(draft(body=body, cta="立即购买", hashtags=[]), "X", None, want_image=False)
    assert variant["char_count"] <= 280 and x_weighted_length(variant["text"]) == variant["char_count"]


def test_instagram_keeps_at_most_five_hashtags():
    tags = [f"#Tag{n}" for n in range(9)]
    variant = finalise(draft(hashtags=tags), "Instagram", None, want_image=False)
    assert len(variant["hashtags"]) == 5 and variant["text"].count("#") == 5


def test_trailing_hashtags_in_the_body_count_towards_the_cap():
    variant = finalise(draft(body="Fresh picks. Shop now.\n#One #Two #Three #Four", hashtags=["#Five", "#Six"]),
                       "Instagram", None, want_image=False)
    assert variant["text"].count("#") == 5


@pytest.mark.parametrize(("platform", "limit"), [("LinkedIn", 3000), ("TikTok", 2200), ("Instagram", 2200),
                                                 ("Facebook", 63206)])
def test_long_posts_are_cut_per_platform(platform, limit):
    body = "A sentence about fresh kopi. " * 2500 + "Shop now."
    variant = finalise(draft(body=body), platform, None, want_image=False)
    assert variant["shortened"] and variant["char_count"] <= limit and PLATFORM_RULES[platform].max_chars == limit


def test_email_subject_is_cut_to_60():
    subject = "An unusually long subject line that keeps going well past what inboxes show"
    variant = finalise(draft(headline=subject), "Email", None, want_image=False)
    assert len(variant["headline"]) <= 60 and variant["shortened"] and variant["hashtags"] == []


def test_missing_cta_is_appended():
    variant = finalise(draft(body="Fresh picks just landed.", cta="Visit us this week"), "Facebook", None, False)
    assert variant["text"].startswith("Fresh picks just landed. Visit us this week.")
    assert checks_of(variant)["has_cta"]


def test_empty_cta_fails_a_hard_check():
    variant = finalise(draft(body="Fresh picks just landed.", cta=""), "Facebook", None, False)
    assert "has_cta" in [c["name"] for c in hard_failures(variant["checks"])]


@pytest.mark.parametrize(("body", "hole"), [("Hi [First Name], shop now.", "[First Name]"),
                                            ("Use code {{code}} today. Shop now.", "{{code}}"),
                                            ("Launching on TBD. Shop now.", "TBD"),
                                            ("Click <link> to shop now.", "<link>")])
def test_placeholders_are_caught(body, hole):
    variant = finalise(draft(body=body), "Facebook", None, False)
    failed = {c["name"]: c["detail"] for c in hard_failures(variant["checks"])}
    assert hole in failed["no_placeholders"]


def test_avoided_words_fail_and_lower_the_score():
    variant = finalise(draft(body="The best ever cheap kopi. Shop now."), "Facebook", BRAND, False)
    failed = {c["name"]: c["detail"] for c in hard_failures(variant["checks"])}
    assert "cheap" in failed["no_avoided_words"] and "best ever" in failed["no_avoided_words"]
    assert variant["score"] <= 80


def test_brand_hashtag_policy_applies():
    variant = finalise(draft(hashtags=["#fyp", "#A", "#B", "#C", "#D"]), "Instagram", BRAND, False)
    assert variant["hashtags"][0] == "#KopiAndCo" and "#fyp" not in variant["hashtags"]
    assert len(variant["hashtags"]) == 4


def test_clean_variant_scores_high_and_reasons_are_given():
    variant = finalise(draft(body="Fresh kopi, brewed every morning for members who love a slow start. "
                                  "Drop by your nearest outlet this week. Shop now.",
                             hashtags=["#Kopi", "#SGFood", "#Members"]), "Instagram", None, False)
    assert variant["score"] >= 90 and all(c["detail"] for c in variant["checks"])
    assert score([{"name": "has_cta", "passed": False, "detail": ""}]) == 80


@pytest.mark.parametrize("text", ["mail jane.doe@example.com", "call +65 9123 4567", "call 9123 4567",
                                  "call 91234567", "(555) 123-4567", "+44 20 7946 0958", "NRIC S1234567D",
                                  "ring 202-555-0147"])
def test_personal_data_is_detected_and_redacted(text):
    assert find_pii(text)
    assert not find_pii(redact_pii(text)) and "[redacted]" in redact_pii(text)


@pytest.mark.parametrize("text", ["Members since 2019–2021", "Save 20% on 3,000 items", "Only $1,299.90",
                                  "Sale ends 2024-01-15", "Image 1024x1024", "Open 10am-10pm daily",
                                  "Top 5 picks for 2025", "Median tenure 61 months", "Call us at the store"])
def test_ordinary_numbers_are_not_personal_data(text):
    assert find_pii(text) == [] and redact_pii(text) == text


def test_personal_data_in_a_variant_fails_a_hard_check():
    variant = finalise(draft(body="Questions? Email help@kopi.example. Shop now."), "Facebook", None, False)
    assert "no_customer_data" in [c["name"] for c in hard_failures(variant["checks"])]
    assert variant["score"] <= 50

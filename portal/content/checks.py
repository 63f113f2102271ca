"""The checks shown next to each variant, its 0-100 score, and turning a draft into a finished variant.

The same checks decide whether a draft is worth one automatic regeneration.
"""

from __future__ import annotations

import re
from typing import Any

from portal.content.brand import BrandProfile
from portal.content.pii import find_pii, redact_pii
from portal.content.platforms import (
    INLINE_TAG,
    PLATFORM_RULES,
    compose,
    ensure_cta,
    fit_subject,
    fit_to_limit,
    loose_words,
    normalise_hashtags,
    platform_length,
    split_trailing_hashtags,
)

# ---------------------------------------------------------------------------------------------
# Checks and score
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"\[(?!redacted\])[^\]\n]{1,40}\]|\{\{?[^}\n]{1,40}\}?\}|<[A-Za-z _-]{2,30}>|\b(?:TBD|TBC|XX+|lorem ipsum)\b"
    r"|\binsert (?:link|brand|name|url|company|date|price)\b|\b(?:link|url) here\b",
    re.IGNORECASE)
HARD_CHECKS = ("within_limit", "has_cta", "no_avoided_words", "no_placeholders", "no_customer_data")
_WEIGHTS = {"within_limit": 25, "has_cta": 20, "no_avoided_words": 20, "no_placeholders": 20,
            "no_customer_data": 50, "hashtags": 5, "length": 5, "not_shortened": 5, "subject_length": 10,
            "headline": 5, "language": 5, "image": 5}
_CTA_VERBS = re.compile(
    r"\b(shop|buy|order|book|visit|join|sign up|register|download|install|get|claim|discover|learn|try|"
    r"explore|reserve|save|subscribe|follow|start|apply|call|contact|tap|click|swipe|grab|come|see|enrol|"
    r"enroll|redeem|upgrade|renew|share|tell|find|check|unlock|treat)\b", re.IGNORECASE)


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def run_checks(variant: dict[str, Any], platform: str, brand: BrandProfile | None) -> list[dict[str, Any]]:
    """The checks shown to the marketer; the ones in HARD_CHECKS trigger one regeneration."""
    rule = PLATFORM_RULES[platform]
    text, cta, headline = variant["text"], variant["cta"], variant["headline"]
    everything = "\n".join([headline, text, cta, variant.get("image_prompt") or ""])
    length = platform_length(text, platform)
    unit = "weighted characters" if platform == "X" else "characters"
    checks = [_check("within_limit", length <= rule.max_chars, f"{length} of {rule.max_chars} {unit}")]
    has_cta = bool(cta.strip()) and bool(_CTA_VERBS.search(cta) or loose_words(cta) in loose_words(text))
    checks.append(_check("has_cta", has_cta, f"call to action: {cta!r}" if cta.strip() else "no call to action"))
    avoided = brand.avoided_words_in(everything) if brand else []
    checks.append(_check("no_avoided_words", not avoided,
                         f"uses avoided words: {', '.join(avoided)}" if avoided else "no avoided brand words"))
    holes = sorted({m.group() for m in _PLACEHOLDER.finditer(everything)})
    checks.append(_check("no_placeholders", not holes,
                         f"unfilled placeholders: {', '.join(holes[:3])}" if holes else "no placeholders"))
    pii = find_pii(everything)
    checks.append(_check("no_customer_data", not pii,
                         f"contains {', '.join(pii)}" if pii else "no emails, phone numbers or IDs"))
    total_tags = len(variant["hashtags"]) + len(INLINE_TAG.findall(text.rsplit("\n\n", 1)[0]
                                                                   if variant["hashtags"] else text))
    low, high = rule.norm_hashtags
    checks.append(_check("hashtags", low <= total_tags <= high,
                         f"{total_tags} hashtags; {platform} norm is {low}–{high}"))
    lo, hi = rule.ideal_chars
    checks.append(_check("length", lo <= length <= hi, f"{length} {unit}; sweet spot {lo}–{hi}"))
    checks.append(_check("not_shortened", not variant["shortened"],
                         "cut to fit the platform limit" if variant["shortened"] else "fits without cuts"))
    if rule.subject_max:
        checks.append(_check("subject_length", len(headline) <= rule.subject_max,
                             f"subject {len(headline)} of {rule.subject_max} characters"))
    checks.append(_check("headline", bool(headline.strip()), "has a hook" if headline.strip() else "no hook"))
    return checks


def score(checks: list[dict[str, Any]]) -> int:
    """100 minus the weight of each failed check, floored at 0."""
    return max(0, 100 - sum(_WEIGHTS.get(c["name"], 5) for c in checks if not c["passed"]))


def hard_failures(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed checks serious enough to regenerate for."""
    return [c for c in checks if c["name"] in HARD_CHECKS and not c["passed"]]


def finalise(draft: dict[str, Any], platform: str, brand: BrandProfile | None, want_image: bool,
             ) -> dict[str, Any]:
    """Turn a draft (headline, body, cta, hashtags, image_prompt) into the variant users receive."""
    body, trailing = split_trailing_hashtags(str(draft.get("body") or ""))
    cta = " ".join(str(draft.get("cta") or "").split())
    body = ensure_cta(body, cta)
    tags = normalise_hashtags([*(draft.get("hashtags") or []), *trailing], body, platform, brand)
    body, tags, shortened = fit_to_limit(body, cta, tags, platform)
    headline, cut_subject = fit_subject(" ".join(str(draft.get("headline") or "").split()), platform)
    text = compose(body, tags)
    image_prompt = str(draft.get("image_prompt") or "").strip() or None
    variant: dict[str, Any] = {
        "text": text, "headline": headline, "cta": cta, "hashtags": tags,
        "image_prompt": image_prompt if want_image else None, "image_url": None,
        "char_count": platform_length(text, platform), "shortened": shortened or cut_subject,
    }
    variant["checks"] = run_checks(variant, platform, brand)
    variant["score"] = score(variant["checks"])
    return variant


def redact_variant(variant: dict[str, Any], platform: str, brand: BrandProfile | None) -> dict[str, Any]:
    """Last resort: strip personal data the model still wrote after a regeneration."""
    for key in ("text", "headline", "cta", "image_prompt"):
        if variant.get(key):
            variant[key] = redact_pii(variant[key])
    variant["char_count"] = platform_length(variant["text"], platform)
    variant["checks"] = run_checks(variant, platform, brand)
    variant["score"] = score(variant["checks"])
    return variant

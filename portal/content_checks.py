"""Platform limits enforced by code, the checks shown next to each variant, and its 0-100 score.

Models are asked to respect limits but do not always count well (X weighs emoji and CJK double and every
URL as 23), so the final text is measured and cut here. The same checks decide whether a draft is worth
one automatic regeneration.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from portal.brand import BrandProfile, as_hashtag

# ---------------------------------------------------------------------------------------------
# Personal data: used by the outbound chokepoint and by the output check
# ---------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{5,20}\d(?![\w])")
_SG_LOCAL_PHONE = re.compile(r"^[689]\d{3}[ -]?\d{4}$")
_NRIC = re.compile(r"\b[STFGM]\d{7}[A-Z]\b")
REDACTED = "[redacted]"


def _is_phone(candidate: str) -> bool:
    """Tell phone numbers from years, prices and dates: by digit count, '+' prefix or SG shape."""
    digits = sum(ch.isdigit() for ch in candidate)
    if not 8 <= digits <= 15:
        return False
    if candidate.startswith("+"):
        return True
    if digits == 8:
        return bool(_SG_LOCAL_PHONE.match(candidate.strip()))
    return digits in (10, 11)


def find_pii(text: str) -> list[str]:
    """Kinds of personal data present in text ('email', 'phone', 'national_id'), without the values."""
    kinds = []
    if _EMAIL.search(text):
        kinds.append("email")
    if any(_is_phone(m.group()) for m in _PHONE_CANDIDATE.finditer(text)):
        kinds.append("phone")
    if _NRIC.search(text):
        kinds.append("national_id")
    return kinds


def redact_pii(text: str) -> str:
    """Replace emails, phone numbers and NRIC-style IDs with a marker."""
    text = _EMAIL.sub(REDACTED, text)
    text = _PHONE_CANDIDATE.sub(lambda m: REDACTED if _is_phone(m.group()) else m.group(), text)
    return _NRIC.sub(REDACTED, text)


# ---------------------------------------------------------------------------------------------
# Platform rules and counting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformRule:
    """Hard limits (cut by code) and norms (scored) for one platform."""

    max_chars: int
    ideal_chars: tuple[int, int]
    max_hashtags: int
    norm_hashtags: tuple[int, int]
    subject_max: int | None = None


PLATFORM_RULES: dict[str, PlatformRule] = {
    "X": PlatformRule(280, (70, 260), 3, (0, 2)),
    "Instagram": PlatformRule(2200, (120, 1000), 5, (3, 5)),
    "LinkedIn": PlatformRule(3000, (300, 1500), 5, (1, 3)),
    "TikTok": PlatformRule(2200, (60, 400), 5, (2, 5)),
    "Facebook": PlatformRule(63206, (60, 600), 5, (0, 3)),
    "Email": PlatformRule(5000, (150, 2000), 0, (0, 0), subject_max=60),
    "Website": PlatformRule(5000, (150, 2500), 0, (0, 0)),
}
X_URL_WEIGHT = 23
_URL = re.compile(r"(?:https?://|www\.)[^\s]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|sg|net|org|io|co)(?:/[^\s]*)?\b",
                  re.IGNORECASE)
_X_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_ZERO_WIDTH = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))


def x_weighted_length(text: str) -> int:
    """Length as X counts it (twitter-text v3): URLs 23, Latin 1, emoji/CJK and the rest 2."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for match in _URL.finditer(text):
        total += _x_chars(text[position:match.start()]) + X_URL_WEIGHT
        position = match.end()
    return total + _x_chars(text[position:])


def _x_chars(text: str) -> int:
    total = 0
    for ch in text:
        code = ord(ch)
        if code in _ZERO_WIDTH or unicodedata.category(ch) == "Mn":
            continue
        total += 1 if any(lo <= code <= hi for lo, hi in _X_LIGHT_RANGES) else 2
    return total


def platform_length(text: str, platform: str) -> int:
    """Characters as the platform counts them."""
    return x_weighted_length(text) if platform == "X" else len(text)


# ---------------------------------------------------------------------------------------------
# Composition and enforcement
# ---------------------------------------------------------------------------------------------

_TRAILING_TAGS = re.compile(r"(?:\n|^)[ \t]*((?:#[^\W_][\w]*[ \t]*)+)\s*$")
_INLINE_TAG = re.compile(r"(?<![\w&])#[^\W_]\w*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def normalise_hashtags(tags: list[str], body: str, platform: str, brand: BrandProfile | None) -> list[str]:
    """Clean, de-duplicate and cap hashtags; brand-required first; inline ones in the body count too."""
    rule = PLATFORM_RULES[platform]
    cap = rule.max_hashtags if brand is None or brand.hashtags.max is None else min(
        rule.max_hashtags, brand.hashtags.max)
    banned = {t.lower() for t in brand.hashtags.banned} if brand else set()
    inline = {t.lower() for t in _INLINE_TAG.findall(body)}
    seen = set(inline)
    out: list[str] = []
    required = brand.hashtags.required if brand else []
    for raw in [*required, *tags]:
        tag = as_hashtag(raw)
        if tag and tag.lower() not in seen and tag.lower() not in banned:
            seen.add(tag.lower())
            out.append(tag)
    return out[:max(0, cap - len(inline))]


def split_trailing_hashtags(body: str) -> tuple[str, list[str]]:
    """Move a final line of hashtags out of the body so the code decides how many are kept."""
    match = _TRAILING_TAGS.search(body)
    if not match:
        return body.strip(), []
    return body[:match.start()].strip(), match.group(1).split()


def _loose(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def ensure_cta(body: str, cta: str) -> str:
    """Every post ends by asking for something: append the CTA when the body forgot it."""
    cta = cta.strip()
    if not cta:
        return body
    words = _loose(cta).split()
    tail = _loose(body[-300:])
    if words and sum(w in tail.split() for w in words) >= max(1, round(len(words) * 0.6)):
        return body
    joiner = "" if not body else ("\n\n" if "\n" in body else " ")
    end = "" if cta[-1:] in ".!?…" else "."
    return f"{body}{joiner}{cta}{end}"


def compose(body: str, hashtags: list[str]) -> str:
    """The ready-to-paste post: body, then the hashtags on their own line."""
    return f"{body}\n\n{' '.join(hashtags)}" if hashtags else body


def _cut_words(text: str, limit: int, platform: str) -> str:
    """Cut at a word boundary with an ellipsis so that the result fits."""
    words = text.split(" ")
    while words and platform_length(" ".join(words) + "…", platform) > limit:
        words.pop()
    return (" ".join(words).rstrip(",;:-–— ") + "…") if words else ""


def fit_to_limit(body: str, cta: str, hashtags: list[str], platform: str) -> tuple[str, list[str], bool]:
    """Make body + hashtags fit: drop hashtags, then middle sentences (hook and CTA kept), then words."""
    limit = PLATFORM_RULES[platform].max_chars
    tags = list(hashtags)

    def fits(b: str) -> bool:
        return platform_length(compose(b, tags), platform) <= limit

    if fits(body):
        return body, tags, False
    while tags and not fits(body):
        tags.pop()
    if fits(body):
        return body, tags, True
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
    cta_key = _loose(cta)
    cta_index = next((i for i in range(len(sentences) - 1, -1, -1)
                      if cta_key and cta_key.split()[0] in _loose(sentences[i])), len(sentences) - 1)
    keep = list(range(len(sentences)))
    while len(keep) > 2 and not fits(" ".join(sentences[i] for i in keep)):
        drop = next((i for i in reversed(keep[1:]) if i != cta_index), None)
        if drop is None:
            break
        keep.remove(drop)
    body = " ".join(sentences[i] for i in keep)
    if fits(body):
        return body, tags, True
    closing = sentences[cta_index] if cta_index in keep and len(keep) > 1 else ""
    room = limit - platform_length(compose(" " + closing if closing else "", tags), platform)
    head = _cut_words(sentences[keep[0]], room, platform) if room > 10 else ""
    body = f"{head} {closing}".strip()
    if not fits(body):
        body = _cut_words(body, limit - platform_length(compose("", tags), platform), platform)
    return body, tags, True


def fit_subject(headline: str, platform: str) -> tuple[str, bool]:
    """Email subjects over the recommended length get cut at a word."""
    cap = PLATFORM_RULES[platform].subject_max
    if cap is None or len(headline) <= cap:
        return headline, False
    return _cut_words(headline, cap, "Email"), True


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


def avoided_words_in(text: str, brand: BrandProfile | None) -> list[str]:
    """Brand words-to-avoid present in the text (whole words, any case)."""
    if brand is None:
        return []
    return [w for w in brand.words_to_avoid
            if w.strip() and re.search(rf"(?<!\w){re.escape(w.strip())}(?!\w)", text, re.IGNORECASE)]


def run_checks(variant: dict[str, Any], platform: str, brand: BrandProfile | None) -> list[dict[str, Any]]:
    """The checks shown to the marketer; the ones in HARD_CHECKS trigger one regeneration."""
    rule = PLATFORM_RULES[platform]
    text, cta, headline = variant["text"], variant["cta"], variant["headline"]
    everything = "\n".join([headline, text, cta, variant.get("image_prompt") or ""])
    length = platform_length(text, platform)
    unit = "weighted characters" if platform == "X" else "characters"
    checks = [_check("within_limit", length <= rule.max_chars, f"{length} of {rule.max_chars} {unit}")]
    has_cta = bool(cta.strip()) and bool(_CTA_VERBS.search(cta) or _loose(cta) in _loose(text))
    checks.append(_check("has_cta", has_cta, f"call to action: {cta!r}" if cta.strip() else "no call to action"))
    avoided = avoided_words_in(everything, brand)
    checks.append(_check("no_avoided_words", not avoided,
                         f"uses avoided words: {', '.join(avoided)}" if avoided else "no avoided brand words"))
    holes = sorted({m.group() for m in _PLACEHOLDER.finditer(everything)})
    checks.append(_check("no_placeholders", not holes,
                         f"unfilled placeholders: {', '.join(holes[:3])}" if holes else "no placeholders"))
    pii = find_pii(everything)
    checks.append(_check("no_customer_data", not pii,
                         f"contains {', '.join(pii)}" if pii else "no emails, phone numbers or IDs"))
    total_tags = len(variant["hashtags"]) + len(_INLINE_TAG.findall(text.rsplit("\n\n", 1)[0]
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


def scrub(variant: dict[str, Any], platform: str, brand: BrandProfile | None) -> dict[str, Any]:
    """Last resort: strip personal data the model still wrote after a regeneration."""
    for key in ("text", "headline", "cta", "image_prompt"):
        if variant.get(key):
            variant[key] = redact_pii(variant[key])
    variant["char_count"] = platform_length(variant["text"], platform)
    variant["checks"] = run_checks(variant, platform, brand)
    variant["score"] = score(variant["checks"])
    return variant

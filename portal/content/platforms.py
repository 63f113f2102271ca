"""Platform rules enforced by code: limits, counting as each platform counts, and fitting a post to them.

Models are asked to respect limits but do not always count well (X weighs emoji and CJK double and every
URL as 23), so the final text is measured and cut here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from portal.content.brand import BrandProfile, as_hashtag

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
INLINE_TAG = re.compile(r"(?<![\w&])#[^\W_]\w*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def normalise_hashtags(tags: list[str], body: str, platform: str, brand: BrandProfile | None) -> list[str]:
    """Clean, de-duplicate and cap hashtags; brand-required first; inline ones in the body count too."""
    rule = PLATFORM_RULES[platform]
    cap = rule.max_hashtags if brand is None or brand.hashtags.max is None else min(
        rule.max_hashtags, brand.hashtags.max)
    banned = {t.lower() for t in brand.hashtags.banned} if brand else set()
    inline = {t.lower() for t in INLINE_TAG.findall(body)}
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


def loose_words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def ensure_cta(body: str, cta: str) -> str:
    """Every post ends by asking for something: append the CTA when the body forgot it."""
    cta = cta.strip()
    if not cta:
        return body
    words = loose_words(cta).split()
    tail = loose_words(body[-300:])
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
    cta_key = loose_words(cta)
    cta_index = next((i for i in range(len(sentences) - 1, -1, -1)
                      if cta_key and cta_key.split()[0] in loose_words(sentences[i])), len(sentences) - 1)
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

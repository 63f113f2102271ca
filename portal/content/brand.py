"""The optional brand profile: one voice applied to every generation, online or offline.

Marketers keep a style guide (voice, words to use and avoid, default call to action, hashtag policy);
the leading tools call it "brand voice". Loading it once at start-up and failing loudly on a broken
file beats silently generating off-brand copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portal.settings import SettingsError

log = logging.getLogger(__name__)


class HashtagPolicy(BaseModel):
    """Hashtags every post carries, ones it must never carry, and a ceiling below the platform's."""

    model_config = ConfigDict(extra="forbid")

    required: list[str] = Field(default_factory=list, max_length=5)
    banned: list[str] = Field(default_factory=list, max_length=50)
    max: int | None = Field(None, ge=0, le=30)

    @field_validator("required", "banned")
    @classmethod
    def _as_hashtags(cls, tags: list[str]) -> list[str]:
        return [t for t in (as_hashtag(tag) for tag in tags) if t]


class BrandProfile(BaseModel):
    """A brand's style guide, as stored in the JSON file named by BRAND_PROFILE_PATH."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, max_length=100)
    voice: str | None = Field(None, max_length=600, description="How the brand sounds, in plain words.")
    tagline: str | None = Field(None, max_length=120)
    words_to_use: list[str] = Field(default_factory=list, max_length=30)
    words_to_avoid: list[str] = Field(default_factory=list, max_length=100)
    default_cta: str | None = Field(None, max_length=80)
    hashtags: HashtagPolicy = Field(default_factory=HashtagPolicy)

    def fingerprint(self) -> str:
        """A short stable hash, so a changed style guide never serves stale cached copy."""
        raw = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def avoided_words_in(self, text: str) -> list[str]:
        """Words to avoid that the text uses (whole words, any case)."""
        return [w for w in self.words_to_avoid
                if w.strip() and re.search(rf"(?<!\w){re.escape(w.strip())}(?!\w)", text, re.IGNORECASE)]

    def prompt_data(self) -> dict[str, object]:
        """The fields the prompt quotes as data (empty ones left out to save tokens)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["hashtags"] = {k: v for k, v in data["hashtags"].items() if v not in ([], None)}
        return {k: v for k, v in data.items() if v not in ([], {}, None, "")}


def as_hashtag(text: str) -> str:
    """'#kopi & co' -> '#KopiAndCo'; an empty string when nothing usable is left."""
    words = re.findall(r"[^\W_]+", text.lstrip("#").replace("&", " and "))
    if not words:
        return ""
    if len(words) == 1:
        return "#" + words[0]
    return "#" + "".join(w[:1].upper() + w[1:] for w in words)


def load_brand_profile(path: Path | None) -> BrandProfile | None:
    """Read the brand file; a missing or invalid file stops start-up with one readable line."""
    if path is None:
        return None
    try:
        profile = BrandProfile.model_validate_json(Path(path).read_bytes())
    except FileNotFoundError:
        raise SettingsError(f"Invalid setting BRAND_PROFILE_PATH: no file at {path}.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise SettingsError(f"Invalid setting BRAND_PROFILE_PATH: {where}: {first['msg']}.") from None
    log.info("brand profile loaded (%s)", profile.fingerprint())
    return profile

"""Content providers behind one small interface: the OpenAI SDK, and the offline template writer.

The OpenAI provider owns the one outbound chokepoint (`_send`): every chat or image request passes through
it, and it strips anything that looks like an email, phone number or national ID before the SDK sees the
payload. Retries are ours, not the SDK's (its own retry 429 `insufficient_quota`, which never succeeds,
and cannot be bounded by our time budget): exponential backoff with jitter, Retry-After honoured, and
nothing slept past the caller's deadline.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import openai
from pydantic import ValidationError

from portal.content.brand import BrandProfile
from portal.content.offline_writer import write_variant
from portal.content.pii import find_pii, redact_pii
from portal.content.prompts import DraftVariant, build_messages, persona_brief, response_format
from portal.settings import Settings
from schemas import CampaignInputs, ContentPreferences

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_ATTEMPT_S = 0.25
QUOTA_PAUSE_S = 60.0
IMAGE_SIZES = {
    "dall-e-3": {"square": "1024x1024", "landscape": "1792x1024", "portrait": "1024x1792"},
    "gpt-image": {"square": "1024x1024", "landscape": "1536x1024", "portrait": "1024x1536"},
    "dall-e-2": {"square": "1024x1024", "landscape": "1024x1024", "portrait": "1024x1024"},
}
PLATFORM_SHAPE = {"Instagram": "square", "TikTok": "portrait", "X": "landscape", "LinkedIn": "landscape",
                  "Facebook": "landscape", "Email": "landscape", "Website": "landscape"}


def empty_usage() -> dict[str, int]:
    """Token usage with every counter at zero."""
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def add_usage(total: dict[str, int], more: dict[str, int] | None) -> dict[str, int]:
    """Sum usage in place, so a job reports every token it spent, failed attempts included."""
    for key in total:
        total[key] += int((more or {}).get(key) or 0)
    return total


def image_size(model: str, platform: str) -> str:
    """The Images API size closest to the platform's shape for this model family."""
    family = next((f for f in IMAGE_SIZES if model.startswith(f)), "gpt-image")
    return IMAGE_SIZES[family][PLATFORM_SHAPE.get(platform, "square")]


@dataclass(frozen=True)
class DraftRequest:
    """Everything one variant needs; providers read the persona through the prompt whitelist."""

    persona: dict[str, Any]
    campaign: CampaignInputs
    prefs: ContentPreferences
    brand: BrandProfile | None
    index: int = 0
    feedback: tuple[str, ...] = ()


@dataclass
class Drafted:
    """A provider's draft of one variant and the tokens it cost."""

    draft: dict[str, Any]
    usage: dict[str, int] = field(default_factory=empty_usage)


class ProviderError(Exception):
    """The provider gave up; `reason` is short enough to show users as `degraded_reason`."""

    def __init__(self, reason: str, usage: dict[str, int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or empty_usage()


class ContentProvider(Protocol):
    """What the content service needs from a provider."""

    name: Literal["openai", "offline"]
    model: str | None

    def draft(self, request: DraftRequest, deadline: float) -> Drafted: ...

    def image(self, prompt: str, platform: str, deadline: float) -> str | None: ...

    def close(self) -> None: ...


class OfflineProvider:
    """Deterministic template copy; no network, no images."""

    name: Literal["openai", "offline"] = "offline"
    model: str | None = None

    def draft(self, request: DraftRequest, deadline: float) -> Drafted:
        """Write the variant from templates."""
        brief = persona_brief(request.persona)
        return Drafted(write_variant(brief, request.campaign, request.prefs, request.brand, request.index))

    def image(self, prompt: str, platform: str, deadline: float) -> str | None:
        """No image generation offline."""
        return None

    def close(self) -> None:
        """Nothing to release."""


class _BadOutput(Exception):
    """The server answered 200 but the content is unusable (invalid JSON, wrong shape, truncated)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Failure:
    reason: str
    retriable: bool
    retry_after: float | None = None


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, retry-after seconds or HTTP date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def _usage_of(response: Any) -> dict[str, int]:
    usage = getattr(response, "usage", None)
    return {key: int(getattr(usage, key, 0) or 0) for key in empty_usage()} if usage else empty_usage()


class OpenAIProvider:
    """The official SDK with one reused client, explicit token and time limits, and our retry policy."""

    name: Literal["openai", "offline"] = "openai"

    def __init__(self, settings: Settings, *, backoff_base_s: float = 0.5, backoff_cap_s: float = 8.0,
                 max_retry_after_s: float = 60.0) -> None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self.model: str | None = settings.openai_model
        self.image_model = settings.openai_image_model
        self.timeout_s = settings.openai_timeout_s
        self.max_retries = settings.openai_max_retries
        self.max_completion_tokens = settings.openai_max_completion_tokens
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.max_retry_after_s = max_retry_after_s
        self._client = openai.OpenAI(api_key=key, base_url=settings.openai_base_url,
                                     timeout=settings.openai_timeout_s, max_retries=0)
        self._quota_until = 0.0
        self._lock = threading.Lock()

    # -- public interface --------------------------------------------------------------------

    def draft(self, request: DraftRequest, deadline: float) -> Drafted:
        """One variant as structured output, retried within the deadline."""
        messages = build_messages(request.persona, request.campaign, request.prefs, request.brand,
                                  variant_index=request.index, feedback=list(request.feedback))
        payload = {"model": self.model, "messages": messages, "response_format": response_format(),
                   "max_completion_tokens": self.max_completion_tokens}
        draft, usage = self._call("chat", payload, deadline, self._parse_draft)
        return Drafted(draft, usage)

    def image(self, prompt: str, platform: str, deadline: float) -> str | None:
        """A platform-sized image through the Images API; a URL or a data: URL."""
        payload: dict[str, Any] = {"model": self.image_model, "prompt": prompt, "n": 1,
                                   "size": image_size(self.image_model, platform)}
        if self.image_model.startswith("dall-e"):
            payload["response_format"] = "url"
        url, _ = self._call("image", payload, deadline, self._parse_image)
        return url

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    # -- the outbound chokepoint -------------------------------------------------------------

    @staticmethod
    def _scrub(value: Any, found: set[str]) -> Any:
        if isinstance(value, str):
            kinds = find_pii(value)
            if kinds:
                found.update(kinds)
                return redact_pii(value)
            return value
        if isinstance(value, dict):
            return {k: OpenAIProvider._scrub(v, found) for k, v in value.items()}
        if isinstance(value, list):
            return [OpenAIProvider._scrub(v, found) for v in value]
        return value

    def _send(self, kind: str, payload: dict[str, Any], timeout: float) -> Any:
        """The only place a request leaves the process; personal data is removed here."""
        found: set[str] = set()
        clean = self._scrub(payload, found)
        if found:
            log.warning("removed %s from an outbound %s request", ", ".join(sorted(found)), kind)
        if kind == "chat":
            return self._client.chat.completions.create(**clean, timeout=timeout)
        return self._client.images.generate(**clean, timeout=timeout)

    # -- retries -----------------------------------------------------------------------------

    def _backoff(self, retry_number: int) -> float:
        """Exponential backoff with equal jitter: between half and all of base * 2^n (capped)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** retry_number)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _classify(self, exc: Exception) -> _Failure:
        if isinstance(exc, _BadOutput):
            return _Failure(exc.reason, retriable=True)
        if isinstance(exc, openai.RateLimitError):
            if exc.code == "insufficient_quota" or getattr(exc, "type", None) == "insufficient_quota":
                with self._lock:
                    self._quota_until = time.monotonic() + QUOTA_PAUSE_S
                return _Failure("OpenAI quota exhausted (insufficient_quota)", retriable=False)
            return _Failure("rate limited (429)", True, _retry_after(exc.response.headers))
        if isinstance(exc, openai.APITimeoutError):
            return _Failure(f"timed out after {self.timeout_s:g} s", retriable=True)
        if isinstance(exc, openai.APIConnectionError):
            return _Failure("could not connect to the model server", retriable=True)
        if isinstance(exc, openai.AuthenticationError):
            return _Failure("authentication failed; check OPENAI_API_KEY", retriable=False)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retriable = status in (408, 409) or status >= 500
            return _Failure(f"server error (HTTP {status})" if status >= 500 else f"request rejected (HTTP {status})",
                            retriable, _retry_after(exc.response.headers) if retriable else None)
        return _Failure(f"unexpected error ({type(exc).__name__})", retriable=False)

    def _call(self, kind: str, payload: dict[str, Any], deadline: float,
              parse: Callable[[Any], T]) -> tuple[T, dict[str, int]]:
        """Send with retries inside the deadline; raise ProviderError with a short reason when giving up."""
        usage = empty_usage()
        if time.monotonic() < self._quota_until:
            raise ProviderError("OpenAI quota exhausted (insufficient_quota)", usage)
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining < MIN_ATTEMPT_S:
                raise ProviderError(f"time budget exhausted after {attempt - 1} attempts", usage)
            try:
                response = self._send(kind, payload, timeout=min(self.timeout_s, remaining))
                add_usage(usage, _usage_of(response))
                return parse(response), usage
            except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
                failure = self._classify(exc)
                log.warning("%s request failed (attempt %d of %d): %s", kind, attempt, attempts, failure.reason)
                if not failure.retriable:
                    raise ProviderError(failure.reason, usage) from None
                if attempt == attempts:
                    break
                if failure.retry_after is not None and failure.retry_after > self.max_retry_after_s:
                    raise ProviderError(f"{failure.reason}; server asked to wait {failure.retry_after:g} s",
                                        usage) from None
                delay = (failure.retry_after + random.uniform(0, min(0.25, failure.retry_after / 10))
                         if failure.retry_after is not None else self._backoff(attempt - 1))
                if time.monotonic() + delay + MIN_ATTEMPT_S > deadline:
                    raise ProviderError(f"{failure.reason}; no time left to retry", usage) from None
                time.sleep(delay)
        raise ProviderError(f"{failure.reason} after {attempts} attempts", usage)

    # -- response parsing --------------------------------------------------------------------

    @staticmethod
    def _parse_draft(response: Any) -> dict[str, Any]:
        if not getattr(response, "choices", None):
            raise _BadOutput("empty response from the model")
        choice = response.choices[0]
        if getattr(choice.message, "refusal", None):
            raise _BadOutput("the model refused")
        if choice.finish_reason == "length":
            raise _BadOutput("output cut at max_completion_tokens")
        try:
            return DraftVariant.model_validate_json(choice.message.content or "").model_dump()
        except ValidationError:
            raise _BadOutput("invalid JSON from the model") from None

    @staticmethod
    def _parse_image(response: Any) -> str | None:
        data = getattr(response, "data", None) or []
        if not data:
            raise _BadOutput("no image in the response")
        if getattr(data[0], "url", None):
            return data[0].url
        if getattr(data[0], "b64_json", None):
            return f"data:image/png;base64,{data[0].b64_json}"
        raise _BadOutput("no image in the response")


def make_provider(settings: Settings) -> ContentProvider:
    """OpenAI when a key is set, else the offline writer."""
    return OpenAIProvider(settings) if settings.content_provider == "openai" else OfflineProvider()

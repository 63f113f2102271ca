"""The content-generation service `generate.py` calls: persona + campaign + preferences -> variants.

It ties the stages together: cache lookup, one bounded thread pool for every (segment, variant) call so K
segments cost about one LLM round-trip, platform limits and checks, one regeneration when a hard check
fails, offline fallback with `degraded: true` when the provider gives up, and optional images. It never
raises to the caller: whatever fails, each job still gets usable content.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from portal.content.brand import load_brand_profile
from portal.content.cache import cache_key, make_cache
from portal.content.checks import finalise, hard_failures, redact_variant, score
from portal.content.prompts import PROMPT_VERSION, persona_brief
from portal.content.providers import (
    MIN_ATTEMPT_S,
    DraftRequest,
    OfflineProvider,
    ProviderError,
    add_usage,
    empty_usage,
    make_provider,
)
from portal.settings import Settings
from schemas import CampaignInputs, ContentPreferences

log = logging.getLogger(__name__)

Job = tuple[dict, CampaignInputs, ContentPreferences]


def time_budget_s(settings: Settings) -> float:
    """Wall time one generate call may use: three quarters of the gunicorn timeout, less a second.

    The rest of the worker timeout is left for reading the upload, placing rows and writing the response.
    """
    return max(1.0, settings.gunicorn_timeout_s * 0.75 - 1.0)


@dataclass
class _Outcome:
    """One finished variant, where it came from, and why it fell back if it did."""

    variant: dict[str, Any]
    usage: dict[str, int]
    source: Literal["openai", "offline"]
    reason: str | None = None


class ContentService:
    """Generates marketing content per persona; one instance per process, reused across requests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.brand = load_brand_profile(settings.brand_profile_path)
        self.budget_s = time_budget_s(settings)
        self._provider = make_provider(settings)
        self._offline = OfflineProvider()
        self._cache = make_cache(settings)
        self._pool = ThreadPoolExecutor(max_workers=settings.generation_concurrency,
                                        thread_name_prefix="content")

    @property
    def provider_name(self) -> Literal["openai", "offline"]:
        """Which provider serves when nothing fails."""
        return self._provider.name

    def close(self) -> None:
        """Stop the pool and release the HTTP client and cache connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._provider.close()
        self._cache.close()

    def generate(self, persona: dict, campaign: CampaignInputs, prefs: ContentPreferences) -> dict:
        """Content for one persona."""
        return self.generate_many([(persona, campaign, prefs)])[0]

    def generate_many(self, jobs: list[Job]) -> list[dict]:
        """Content for many personas at once, results in job order; identical jobs are generated once."""
        started = time.monotonic()
        deadline = started + self.budget_s
        results: list[dict | None] = [None] * len(jobs)
        pending: dict[str, list[int]] = {}
        jobs = [(persona if isinstance(persona, dict) else {}, campaign, prefs) for persona, campaign, prefs in jobs]
        keys = [self._key(*job) for job in jobs]
        for i, key in enumerate(keys):
            if key in pending:
                pending[key].append(i)
                continue
            hit = self._cache.get(key)
            if hit is not None:
                results[i] = {**hit, "cached": True, "elapsed_ms": self._ms(started)}
            else:
                pending[key] = [i]
        futures = {key: [self._pool.submit(self._variant, jobs[idx[0]], v, deadline)
                         for v in range(jobs[idx[0]][2].num_variants)] for key, idx in pending.items()}
        for key, indices in pending.items():
            prefs = jobs[indices[0]][2]
            outcomes = [self._outcome_of(future, jobs[indices[0]], v, deadline)
                        for v, future in enumerate(futures[key])]
            content = self._assemble(prefs, outcomes, started)
            if not content["degraded"]:
                self._cache.set(key, {k: v for k, v in content.items() if k not in ("cached", "elapsed_ms")})
            results[indices[0]] = content
            for twin in indices[1:]:
                results[twin] = {**copy.deepcopy(content), "cached": True}
        log.info("generated content for %d jobs (%d from cache, %d degraded) in %d ms", len(jobs),
                 len(jobs) - sum(len(i) for i in pending.values()),
                 sum(1 for r in results if r and r["degraded"]), self._ms(started))
        done = [r for r in results if r is not None]
        assert len(done) == len(results), "every job has a result"
        return done

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _ms(started: float) -> int:
        return int((time.monotonic() - started) * 1000)

    def _key(self, persona: dict, campaign: CampaignInputs, prefs: ContentPreferences) -> str:
        """The normalised request: whitelisted persona, inputs, preferences, model and brand."""
        images = self.settings.generate_images and prefs.prefer_output != "text"
        return cache_key({
            "v": PROMPT_VERSION, "provider": self._provider.name, "model": self._provider.model,
            "image_model": self.settings.openai_image_model if images else None,
            "persona": persona_brief(persona), "campaign": campaign.model_dump(), "prefs": prefs.model_dump(),
            "brand": self.brand.fingerprint() if self.brand else None,
        })

    def _outcome_of(self, future: concurrent.futures.Future, job: Job, index: int, deadline: float) -> _Outcome:
        """Wait for a variant, but never past the deadline; a late one is replaced by offline copy."""
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 5.0)
        except Exception as exc:  # noqa: BLE001 - includes TimeoutError and CancelledError
            future.cancel()
            log.error("variant %d did not finish: %s", index, type(exc).__name__)
            request = DraftRequest(job[0], job[1], job[2], self.brand, index)
            return self._fallback(request, empty_usage(), "time budget exhausted")

    def _variant(self, job: Job, index: int, deadline: float) -> _Outcome:
        """Draft, check, regenerate once on a hard failure, fall back offline if the provider gives up."""
        persona, campaign, prefs = job
        request = DraftRequest(persona, campaign, prefs, self.brand, index)
        usage = empty_usage()
        provider = self._provider
        try:
            drafted = provider.draft(request, deadline)
            add_usage(usage, drafted.usage)
            variant = self._finalise(drafted.draft, request)
            failures = hard_failures(variant["checks"])
            if failures and provider.name == "openai" and deadline - time.monotonic() > MIN_ATTEMPT_S:
                log.info("variant %d failed %s; regenerating once", index, [c["name"] for c in failures])
                feedback = tuple(f"{c['name']}: {c['detail']}" for c in failures)
                try:
                    second = provider.draft(replace(request, feedback=feedback), deadline)
                    add_usage(usage, second.usage)
                    candidate = self._finalise(second.draft, request)
                    if (len(hard_failures(candidate["checks"])), -candidate["score"]) <= (
                            len(failures), -variant["score"]):
                        variant = candidate
                except ProviderError as exc:
                    add_usage(usage, exc.usage)
            if any(c["name"] == "no_customer_data" and not c["passed"] for c in variant["checks"]):
                variant = redact_variant(variant, prefs.platform, self.brand)
        except ProviderError as exc:
            add_usage(usage, exc.usage)
            return self._fallback(request, usage, exc.reason)
        except Exception:
            log.exception("content generation failed unexpectedly")
            return self._fallback(request, usage, "internal error while generating")
        self._add_image(variant, request, deadline)
        variant["provider"] = provider.name
        if provider.name == "offline":
            self._note_language(variant, prefs)
        return _Outcome(variant, usage, provider.name)

    def _finalise(self, draft: dict[str, Any], request: DraftRequest) -> dict[str, Any]:
        """Limits, checks and score; an image prompt from the templates when the model left it empty."""
        prefs = request.prefs
        want_image = prefs.prefer_output in ("image", "both")
        if want_image and not (draft.get("image_prompt") or "").strip():
            draft = {**draft, "image_prompt": self._offline.draft(request, 0.0).draft["image_prompt"]}
        return finalise(draft, prefs.platform, self.brand, want_image)

    def _fallback(self, request: DraftRequest, usage: dict[str, int], reason: str) -> _Outcome:
        """Offline copy in place of a failed variant."""
        variant = self._finalise(self._offline.draft(request, 0.0).draft, request)
        variant["provider"] = "offline"
        self._note_language(variant, request.prefs)
        return _Outcome(variant, usage, "offline", reason)

    def _add_image(self, variant: dict[str, Any], request: DraftRequest, deadline: float) -> None:
        """A platform-sized image when GENERATE_IMAGES is on; a failure shows as a check, not an error."""
        if not (self.settings.generate_images and variant["image_prompt"]):
            return
        try:
            variant["image_url"] = self._provider.image(variant["image_prompt"], request.prefs.platform, deadline)
        except ProviderError as exc:
            self._add_check(variant, "image", False, f"image not generated: {exc.reason}")
        except Exception:
            log.exception("image generation failed unexpectedly")
            self._add_check(variant, "image", False, "image not generated: internal error")

    def _note_language(self, variant: dict[str, Any], prefs: ContentPreferences) -> None:
        if prefs.language and prefs.language.strip().lower() not in ("english", "en", "en-sg", "en-gb", "en-us"):
            self._add_check(variant, "language", False,
                            f"offline drafts are in English; {prefs.language} needs the OpenAI provider")

    @staticmethod
    def _add_check(variant: dict[str, Any], name: str, passed: bool, detail: str) -> None:
        variant["checks"].append({"name": name, "passed": passed, "detail": detail})
        variant["score"] = score(variant["checks"])

    def _assemble(self, prefs: ContentPreferences, outcomes: list[_Outcome], started: float) -> dict[str, Any]:
        """The response shape generate.py returns for one persona."""
        usage = empty_usage()
        for outcome in outcomes:
            add_usage(usage, outcome.usage)
        reasons = list(dict.fromkeys(o.reason for o in outcomes if o.reason))
        provider = "openai" if any(o.source == "openai" for o in outcomes) else "offline"
        variants = [o.variant for o in outcomes]
        return {
            "provider": provider,
            "model": self._provider.model if provider == "openai" else None,
            "cached": False,
            "degraded": bool(reasons),
            "degraded_reason": "; ".join(reasons) if reasons else None,
            "variants": variants,
            "text": None if prefs.prefer_output == "image" else variants[0]["text"],
            "image_prompt": variants[0]["image_prompt"],
            "usage": usage,
            "elapsed_ms": self._ms(started),
        }


__all__ = ["ContentService", "time_budget_s"]

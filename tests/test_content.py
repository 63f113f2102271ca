"""The content service end to end: the real openai SDK against the local fake server in tests/llm_server.py."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from portal.content.providers import DraftRequest, OpenAIProvider, ProviderError, image_size
from portal.content.service import ContentService, time_budget_s
from schemas import CampaignInputs, ContentPreferences
from tests.llm_server import Reply

BRAND_FILE = Path(__file__).parent / "data" / "brand_profile.json"

PERSONA: dict[str, Any] = {
    "cluster_id": 2, "name": "Bukit Timah Platinum Loyalists",
    "summary": "Long-standing Platinum members concentrated in the central region.", "size": 820, "share": 0.16,
    "traits": {"gender_mix": {"Female": 0.6, "Male": 0.4},
               "top_locations": [{"value": "Bukit Timah", "share": 0.21}],
               "top_regions": [{"value": "Central", "share": 0.7}],
               "tier_mix": {"Silver": 0.1, "Gold": 0.2, "Platinum": 0.7},
               "typical_join_period": "2019–2021", "median_tenure_months": 61},
    "distinguishing_traits": [{"trait": "Lives in Bukit Timah", "share": 0.21, "base_share": 0.04, "lift": 5.2}],
    "suggested_tone": "Professional", "content_angles": ["exclusive previews", "early access"],
}
GENERAL = {"cluster_id": None, "name": "General audience", "summary": "All customers.", "size": 5000,
           "share": 1.0, "traits": {}, "distinguishing_traits": [], "suggested_tone": "Casual", "content_angles": []}


def campaign(**changes: Any) -> CampaignInputs:
    values = {"objective": "Increase sales", "industry": "Retail", "funnel_stage": "Conversion",
              "past_engagement": "Medium", "brand_name": "Kopi & Co", "product": "Kopi Peng subscription",
              "offer": "20% off your first month"}
    return CampaignInputs(**{**values, **changes})


def prefs(**changes: Any) -> ContentPreferences:
    return ContentPreferences(**{"platform": "Instagram", "tone": "Casual", **changes})


def persona(n: int) -> dict[str, Any]:
    return {**PERSONA, "cluster_id": n, "name": f"Segment {n}"}


@pytest.fixture
def service(llm_settings):
    made: list[ContentService] = []

    def make(**overrides: Any) -> ContentService:
        made.append(ContentService(llm_settings(**overrides)))
        return made[-1]

    yield make
    for svc in made:
        svc.close()


def test_openai_result_has_the_promised_shape(service, llm_server):
    svc = service()
    result = svc.generate(PERSONA, campaign(), prefs(num_variants=2, prefer_output="both"))
    assert svc.provider_name == "openai"
    assert result["provider"] == "openai" and result["model"] == "gpt-test"
    assert (result["cached"], result["degraded"], result["degraded_reason"]) == (False, False, None)
    assert len(result["variants"]) == 2 and result["text"] == result["variants"][0]["text"]
    variant = result["variants"][0]
    assert set(variant) >= {"text", "headline", "cta", "hashtags", "image_prompt", "image_url", "char_count",
                            "shortened", "score", "checks"}
    assert variant["image_prompt"] and variant["image_url"] is None
    assert 0 <= variant["score"] <= 100 and all({"name", "passed", "detail"} <= set(c) for c in variant["checks"])
    calls = llm_server.calls()
    assert len(calls) == 2
    sent = calls[0].body
    assert sent["model"] == "gpt-test" and sent["max_completion_tokens"] == 900
    assert sent["response_format"]["type"] == "json_schema" and sent["response_format"]["json_schema"]["strict"]
    served = [json.loads(c.raw) for c in calls]
    expected_prompt = sum(max(1, len(json.dumps(b["messages"])) // 4) for b in served)
    assert result["usage"]["prompt_tokens"] == expected_prompt
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    json.dumps(result)


def test_image_only_output_has_no_text_but_an_image_prompt(service):
    result = service().generate(PERSONA, campaign(), prefs(prefer_output="image"))
    assert result["text"] is None and result["image_prompt"]


def test_retry_after_is_honoured_and_then_succeeds(service, llm_server):
    llm_server.queue(Reply(status=429, retry_after="0.3"), Reply(status=429, retry_after="0.3"))
    result = service().generate(PERSONA, campaign(), prefs())
    calls = llm_server.calls()
    assert len(calls) == 3 and not result["degraded"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(0.3 <= gap < 0.8 for gap in gaps), gaps


def test_backoff_grows_exponentially_with_jitter(llm_settings, llm_server):
    provider = OpenAIProvider(llm_settings(openai_max_retries=3), backoff_base_s=0.1)
    llm_server.queue(Reply(status=500), Reply(status=500), Reply(status=503))
    request = DraftRequest(PERSONA, campaign(), prefs(), None)
    drafted = provider.draft(request, deadline=time.monotonic() + 10)
    provider.close()
    calls = llm_server.calls()
    assert len(calls) == 4 and drafted.draft["cta"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    for n, gap in enumerate(gaps):  # equal jitter: between half and all of 0.1 * 2^n, plus request overhead
        assert 0.1 * 2 ** n / 2 <= gap <= 0.1 * 2 ** n + 0.15, gaps


def test_server_errors_exhaust_retries_then_degrade_to_offline(service, llm_server):
    llm_server.default = Reply(status=500)
    result = service(openai_max_retries=2).generate(PERSONA, campaign(), prefs(num_variants=1))
    assert len(llm_server.calls()) == 3
    assert result["degraded"] and result["provider"] == "offline" and result["model"] is None
    assert "server error (HTTP 500)" in result["degraded_reason"] and "3 attempts" in result["degraded_reason"]
    variant = result["variants"][0]
    assert variant["provider"] == "offline" and len(variant["text"]) > 80 and variant["score"] >= 80


def test_insufficient_quota_is_never_retried(service, llm_server):
    llm_server.default = Reply(status=429, error_code="insufficient_quota", retry_after="0")
    svc = service(openai_max_retries=3)
    started = time.monotonic()
    result = svc.generate(PERSONA, campaign(), prefs())
    assert len(llm_server.calls()) == 1 and time.monotonic() - started < 1.0
    assert result["degraded"] and "insufficient_quota" in result["degraded_reason"]
    svc.generate(GENERAL, campaign(), prefs(platform="X"))
    assert len(llm_server.calls()) == 1, "a known-exhausted quota should not be asked again straight away"


def test_a_hanging_server_is_cut_off_by_the_timeout(service, llm_server):
    llm_server.default = Reply(hang_s=5)
    svc = service(openai_timeout_s=0.4, openai_max_retries=1)
    started = time.monotonic()
    result = svc.generate(PERSONA, campaign(), prefs())
    elapsed = time.monotonic() - started
    assert len(llm_server.calls()) == 2
    assert elapsed < 0.4 * 2 + 0.5 + 0.6, elapsed  # two timeouts, one back-off of at most 0.5 s, overhead
    assert result["degraded"] and "timed out" in result["degraded_reason"]


def test_retries_stop_at_the_time_budget(llm_settings, llm_server):
    llm_server.default = Reply(hang_s=5)
    provider = OpenAIProvider(llm_settings(openai_timeout_s=5, openai_max_retries=5))
    started = time.monotonic()
    with pytest.raises(ProviderError):
        provider.draft(DraftRequest(PERSONA, campaign(), prefs(), None), deadline=started + 1.0)
    provider.close()
    assert time.monotonic() - started < 1.4


def test_time_budget_fits_inside_the_gunicorn_timeout(llm_settings):
    for timeout in (10, 30, 120):
        settings = llm_settings(gunicorn_timeout_s=timeout)
        assert 0 < time_budget_s(settings) < timeout


def test_invalid_json_is_retried_then_accepted(service, llm_server):
    llm_server.queue(Reply(content="{not json"))
    result = service().generate(PERSONA, campaign(), prefs())
    assert len(llm_server.calls()) == 2 and not result["degraded"]
    assert result["usage"]["completion_tokens"] > 1  # the failed attempt's tokens are counted too
    # ... exactly once: the server bills len(json.dumps(messages)) // 4 prompt tokens per call
    billed = sum(max(1, len(json.dumps(call.body["messages"])) // 4) for call in llm_server.calls())
    assert result["usage"]["prompt_tokens"] == billed


def test_invalid_json_every_time_degrades(service, llm_server):
    llm_server.default = Reply(content='{"headline": "half')
    result = service(openai_max_retries=1).generate(PERSONA, campaign(), prefs())
    assert result["degraded"] and "invalid JSON" in result["degraded_reason"]


def test_parallel_segments_cost_about_one_round_trip(service, llm_server):
    llm_server.latency_s = 0.5
    svc = service()
    jobs = [(persona(n), campaign(), prefs()) for n in range(4)]
    started = time.monotonic()
    results = svc.generate_many(jobs)
    elapsed = time.monotonic() - started
    assert len(llm_server.calls()) == 4 and not any(r["degraded"] for r in results)
    assert elapsed < 1.2, f"4 segments at 0.5 s took {elapsed:.2f} s"


def test_variants_run_in_parallel_too(service, llm_server):
    llm_server.latency_s = 0.5
    started = time.monotonic()
    result = service().generate(PERSONA, campaign(), prefs(num_variants=4))
    assert len(result["variants"]) == 4 and time.monotonic() - started < 1.2


def test_generate_many_keeps_job_order_and_dedupes(service, llm_server):
    svc = service()
    jobs = [(persona(0), campaign(), prefs(num_variants=1)), (persona(1), campaign(), prefs(platform="Email",
                                                                                             num_variants=3)),
            (persona(0), campaign(), prefs(num_variants=1)), (GENERAL, campaign(), prefs(num_variants=2))]
    results = svc.generate_many(jobs)
    assert [len(r["variants"]) for r in results] == [1, 3, 1, 2]
    assert results[1]["variants"][0]["hashtags"] == []  # the Email job stayed in its place
    assert results[2]["cached"] and not results[0]["cached"]
    assert len(llm_server.calls()) == 1 + 3 + 2


def test_repeated_request_is_served_from_cache(service, llm_server):
    svc = service()
    first = svc.generate(PERSONA, campaign(), prefs())
    calls = len(llm_server.calls())
    reordered = dict(reversed(list(PERSONA.items())), extra_key="ignored by the whitelist")
    again = svc.generate(reordered, campaign(objective="  Increase   sales "), prefs())
    assert len(llm_server.calls()) == calls
    assert again["cached"] and not first["cached"] and again["variants"] == first["variants"]
    svc.generate(PERSONA, campaign(), prefs(tone="Playful"))
    assert len(llm_server.calls()) == calls + 1


def test_degraded_results_are_not_cached(service, llm_server):
    llm_server.queue(Reply(status=500), Reply(status=500))
    svc = service(openai_max_retries=1)
    assert svc.generate(PERSONA, campaign(), prefs())["degraded"]
    second = svc.generate(PERSONA, campaign(), prefs())
    assert not second["degraded"] and not second["cached"] and len(llm_server.calls()) == 3


def test_redis_cache_is_shared_between_workers(llm_settings, llm_server, redis_server, redis_url):
    from portal.coordination.redis_link import RedisLink

    worker_a = ContentService(llm_settings(redis_url=redis_url))
    worker_b = ContentService(llm_settings(redis_url=redis_url))
    worker_b._cache.link = RedisLink(redis_url, 0.5)  # another process: its own connections
    try:
        worker_a.generate(PERSONA, campaign(), prefs())
        hit = worker_b.generate(PERSONA, campaign(), prefs())
    finally:
        worker_a.close()
        worker_b.close()
    assert hit["cached"] and len(llm_server.calls()) == 1
    direct = redis_server.client()
    assert 0 < direct.ttl(direct.keys("portal:content:*")[0]) <= 3600


def test_redis_down_is_a_cache_miss_and_its_return_a_hit_again(llm_settings, llm_server, redis_server, redis_url):
    from portal.coordination import redis_link

    svc = ContentService(llm_settings(redis_url=redis_url))
    try:
        redis_server.stop()
        started = time.perf_counter()
        down = [svc.generate(PERSONA, campaign(), prefs()) for _ in range(3)]
        elapsed = time.perf_counter() - started
        assert not any(r["cached"] or r["degraded"] for r in down) and len(llm_server.calls()) == 3
        assert elapsed < 3  # skipped while known down, not a timeout per call

        redis_server.start()
        time.sleep(redis_link.RETRY_AFTER_S)
        svc.generate(PERSONA, campaign(), prefs())
        assert svc.generate(PERSONA, campaign(), prefs())["cached"]
    finally:
        svc.close()


def test_no_personal_data_ever_reaches_the_server(service, llm_server):
    planted = {
        **PERSONA,
        "summary": "Mostly Platinum members; escalations go to ops.lead@kopi.example or +65 6123 4567.",
        "distinguishing_traits": [{"trait": "Call back on 9123 4567", "share": 0.2, "lift": 3.0}],
        "members": [{"Full Name": "Tan Wei Ling", "Email Address": "weiling.tan@example.com",
                     "Phone Number": "+65 9876 5432", "Customer ID": "C-000123", "Notes": "asked about refund"}],
        "sample_rows": "Siti Nurhaliza, siti@example.sg, 8123 4567",
        "traits": {**PERSONA["traits"], "example_customer": "Rajesh Kumar"},
    }
    risky = campaign(objective="Increase sales; reply to jane.doe@example.com or call +65 8234 5678",
                     offer="Ask Ahmad at (555) 123-4567 for 20% off", product="S1234567D loyalty upgrade")
    result = service().generate(planted, risky, prefs(num_variants=2, prefer_output="both"))
    sent = "\n".join(c.raw for c in llm_server.requests)
    assert len(llm_server.requests) >= 2
    for secret in ("Tan Wei Ling", "weiling.tan", "9876", "C-000123", "refund", "Siti", "siti@", "8123",
                   "Rajesh", "jane.doe", "8234", "123-4567", "ops.lead@", "6123 4567", "9123 4567", "S1234567D"):
        assert secret not in sent, secret
    assert "Bukit Timah" in sent  # aggregate traits still go out
    assert "[redacted]" in sent  # the chokepoint, not only the whitelist, did work here
    for variant in result["variants"]:
        assert "@" not in variant["text"]


def test_a_hard_check_failure_triggers_one_regeneration(service, llm_server):
    llm_server.queue(Reply(fields={"body": "Our cheap deals are here. Shop now.", "cta": "Shop now"}))
    result = service(brand_profile_path=BRAND_FILE).generate(PERSONA, campaign(), prefs())
    calls = llm_server.calls()
    assert len(calls) == 2
    assert "no_avoided_words" in calls[1].body["messages"][-1]["content"]
    variant = result["variants"][0]
    assert next(c for c in variant["checks"] if c["name"] == "no_avoided_words")["passed"]
    assert "cheap" not in variant["text"].lower()


def test_model_output_is_cut_to_the_platform_limit(service, llm_server):
    long_body = " ".join(["Our members in the neighbourhood love a good weekday treat."] * 12) + " Shop now."
    llm_server.default = Reply(fields={"body": long_body, "hashtags": ["#A", "#B", "#C", "#D"]})
    result = service().generate(PERSONA, campaign(), prefs(platform="X"))
    variant = result["variants"][0]
    assert variant["shortened"] and variant["char_count"] <= 280
    assert "Shop now" in variant["text"]


def test_images_are_generated_at_platform_size_when_enabled(service, llm_server):
    svc = service(generate_images=True)
    result = svc.generate(PERSONA, campaign(), prefs(platform="TikTok", prefer_output="both"))
    images = llm_server.calls("/v1/images/generations")
    assert len(images) == 1 and images[0].body["size"] == "1024x1792"
    assert result["variants"][0]["image_url"].startswith(llm_server.origin)
    svc.generate(PERSONA, campaign(), prefs(platform="TikTok", prefer_output="text"))
    assert len(llm_server.calls("/v1/images/generations")) == 1


def test_image_failure_keeps_the_text(service, llm_server):
    svc = service(generate_images=True, openai_max_retries=0)
    llm_server.queue(Reply(), Reply(status=500))
    result = svc.generate(PERSONA, campaign(), prefs(prefer_output="both"))
    variant = result["variants"][0]
    assert not result["degraded"] and variant["text"] and variant["image_url"] is None
    assert any(c["name"] == "image" and not c["passed"] for c in variant["checks"])


@pytest.mark.parametrize(("model", "platform", "size"), [
    ("dall-e-3", "Instagram", "1024x1024"), ("dall-e-3", "LinkedIn", "1792x1024"),
    ("gpt-image-1", "TikTok", "1024x1536"), ("gpt-image-1", "X", "1536x1024")])
def test_image_sizes_follow_the_platform(model, platform, size):
    assert image_size(model, platform) == size


def test_no_key_means_offline_content(llm_settings, llm_server):
    svc = ContentService(llm_settings(openai_api_key=None))
    try:
        result = svc.generate(GENERAL, campaign(brand_name=None, product=None, offer=None),
                              prefs(num_variants=3, language="Malay"))
    finally:
        svc.close()
    assert svc.provider_name == "offline" and result["provider"] == "offline" and not result["degraded"]
    assert llm_server.requests == []
    texts = [v["text"] for v in result["variants"]]
    assert len(set(texts)) == 3 and all(len(t) > 60 for t in texts)
    assert any(c["name"] == "language" and not c["passed"] for c in result["variants"][0]["checks"])


def test_general_audience_works_online(service, llm_server):
    result = service().generate(GENERAL, campaign(), prefs(platform="LinkedIn", tone="Professional"))
    assert not result["degraded"]
    assert "<audience_data>" in llm_server.calls()[0].body["messages"][1]["content"]


def test_generate_many_never_raises(service, llm_server):
    llm_server.default = Reply(status=400)
    results = service().generate_many([("not a dict", campaign(), prefs()), (GENERAL, campaign(), prefs())])
    assert len(results) == 2 and all(r["degraded"] and r["variants"][0]["text"] for r in results)
    assert "HTTP 400" in results[0]["degraded_reason"]

"""Section `generation`: content for K segments against a local OpenAI-compatible server with latency."""

from __future__ import annotations

import time
from typing import Any

from bench.common import Context, Table, median, run_child

LATENCY_S = 0.5


def _personas(count: int) -> list[dict]:
    """Real persona dicts (from portal.segmentation.personas) for ``count`` segments of generated customers."""
    import numpy as np

    from portal.segmentation.personas import build_personas
    from portal.segmentation.sample_data import generate_customers
    from schemas import CUSTOMER_ID, DATE_JOINED, GENDER, LOCATION, LOYALTY_TIER

    customers, _ = generate_customers(2000, seed=11)
    customers = customers[[CUSTOMER_ID, DATE_JOINED, LOCATION, GENDER, LOYALTY_TIER]]
    labels = np.arange(len(customers)) % count
    personas, _ = build_personas(customers, labels)
    return [personas[k] for k in sorted(personas)]


def child_generation(segments: list[int], runs: int) -> dict[str, Any]:
    """Wall time of ContentService.generate_many for K personas, serial vs the shipped concurrency."""
    from portal.content.service import ContentService
    from portal.settings import Settings
    from schemas import CampaignInputs, ContentPreferences
    from tests.llm_server import FakeLLMServer

    server = FakeLLMServer()
    server.latency_s = LATENCY_S
    shipped = Settings(_env_file=None).generation_concurrency
    personas = _personas(max(segments))
    campaign = CampaignInputs(objective="Increase sales", industry="Retail", funnel_stage="Consideration",
                              past_engagement="Medium")
    prefs = ContentPreferences()
    results: dict[str, Any] = {"shipped_concurrency": shipped, "rows": []}
    try:
        for k in segments:
            for label, concurrency in (("serial", 1), ("shipped", shipped)):
                times, calls, degraded = [], [], 0
                for _ in range(runs):
                    settings = Settings(_env_file=None, openai_api_key="sk-bench", openai_base_url=server.base_url,
                                        openai_model="gpt-bench", generation_concurrency=concurrency,
                                        redis_url=None, brand_profile_path=None, generate_images=False)
                    service = ContentService(settings)  # fresh cache each run: every call reaches the server
                    before = len(server.calls())
                    started = time.perf_counter()
                    out = service.generate_many([(p, campaign, prefs) for p in personas[:k]])
                    times.append(time.perf_counter() - started)
                    calls.append(len(server.calls()) - before)
                    degraded += sum(1 for c in out if c["degraded"])
                    service.close()
                results["rows"].append({"segments": k, "mode": label, "concurrency": concurrency,
                                        "median_s": median(times), "calls": median(calls), "degraded": degraded})
    finally:
        server.close()
    return results


def run(ctx: Context) -> list[Table]:
    segments = [1, 4] if ctx.quick else [1, 4, 8]
    runs = 1 if ctx.quick else 3
    value = run_child("bench.generation:child_generation", {"segments": segments, "runs": runs}).value
    table = Table(f"generation: K segments, 1 variant each, local OpenAI-compatible server with {LATENCY_S} s latency",
                  ["segments", "serial (concurrency 1)", f"shipped (concurrency {value['shipped_concurrency']})",
                   "speed-up", "LLM calls per run", "degraded"])
    by = {(r["segments"], r["mode"]): r for r in value["rows"]}
    for k in segments:
        serial, shipped = by[(k, "serial")], by[(k, "shipped")]
        table.add(k, f"{serial['median_s']:.2f} s", f"{shipped['median_s']:.2f} s",
                  f"{serial['median_s'] / shipped['median_s']:.1f}x", f"{shipped['calls']:.0f}",
                  serial["degraded"] + shipped["degraded"])
    table.notes += [
        "ContentService.generate_many with the real openai SDK against tests/llm_server.FakeLLMServer "
        f"(latency_s={LATENCY_S}), a fresh service (empty cache) per run; median of {runs} run(s)",
        "shipped = Settings() default GENERATION_CONCURRENCY; personas: portal.segmentation.personas on generated "
        "customers; 'degraded' counts segments that fell back to offline copy (should be 0)",
        "target (issue 4): K segments in well under K x 0.5 s",
    ]
    return [table]

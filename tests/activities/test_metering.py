"""Metering around a model call and a reviewer's decision, on a real FalkorDB: what is counted,
priced, reserved and settled."""

from __future__ import annotations

import uuid

import pytest

from activities.metering import Metering, Stopwatch
from keel.core.budgets import BudgetScope
from keel.core.chunks import ScoredChunk
from keel.core.models import Generation
from keel.core.models.openai_compat import OpenAICompatibleProvider
from keel.core.settings import Settings
from keel.stores.budgets import BudgetLedger
from keel.stores.redis import make_redis
from keel.stores.usage import UsageLedger

pytestmark = pytest.mark.integration

MODEL = "metered"
PASSAGES = [ScoredChunk("d#0", "d", 1.0, title="Kestrel", text="Kestrel is owned by Team Aurora.")]


def metering(falkordb_url: str, counted: list[list[str]], **cost: object) -> Metering:
    settings = Settings(
        models={"base_url": "http://unused", "model": MODEL, "max_tokens": 100},
        cost={"prices": [{"match": MODEL, "input_per_1m": 1000, "output_per_1m": 2000}], **cost},
    )
    client = make_redis(falkordb_url)

    def count(texts: list[str]) -> int:
        counted.append(list(texts))
        return sum(len(t.split()) for t in texts)

    return Metering(settings, UsageLedger(client), BudgetLedger(client), count)  # type: ignore[arg-type]


def provider() -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(None, MODEL, lambda texts: [], max_tokens=100)  # type: ignore[arg-type]


def test_without_a_budget_nothing_is_counted_before_the_call(falkordb_url: str) -> None:
    counted: list[list[str]] = []
    meter = metering(falkordb_url, counted)
    budget = meter.reserve(BudgetScope("t", "k", "task-t.1"), "r1", provider(), "Who owns Kestrel?", PASSAGES)
    assert budget.reservation.granted and budget.prompt_tokens is None and counted == []
    reported = Generation("Team Aurora [1].", [], f"{MODEL}", input_tokens=300, output_tokens=4)
    usage = meter.settle(budget, reported, Stopwatch().stop(), "routing off")
    assert (usage.input_tokens, usage.output_tokens, usage.tokens_counted) == (300, 4, False)
    assert usage.cost == pytest.approx((300 * 1000 + 4 * 2000) / 1e6)
    assert counted == []  # the provider's usage is taken as it is


def test_a_provider_without_usage_is_counted_and_a_budget_reserves_the_most_it_may_cost(
    falkordb_url: str,
) -> None:
    counted: list[list[str]] = []
    tenant = f"m{uuid.uuid4().hex[:8]}"
    meter = metering(falkordb_url, counted, tenant_budgets={tenant: {"tenant_day": {"limit": 10}}})
    budget = meter.reserve(
        BudgetScope(tenant, "k", "task-m.1"), "r1", provider(), "Who owns Kestrel?", PASSAGES
    )
    assert budget.prompt_tokens and counted  # counted once, for the estimate
    # The estimate: the counted prompt with the margin, and every output token max_tokens allows.
    margin_tokens = -(-budget.prompt_tokens * 125 // 100)
    assert budget.estimate == pytest.approx((margin_tokens * 1000 + 100 * 2000) / 1e6)
    unreported = Generation("Team Aurora owns it.", [], MODEL)
    usage = meter.settle(budget, unreported, Stopwatch().stop(), "")
    assert usage.tokens_counted and usage.input_tokens == budget.prompt_tokens
    assert usage.output_tokens == 4  # "Team Aurora owns it." counted by this test's counter
    (state,) = BudgetLedger(make_redis(falkordb_url)).state(budget.lines)
    assert state.reserved_nanos == 0 and state.spent_nanos == round(usage.cost * 1e9)


def test_a_reviewers_time_is_priced_from_their_claim_or_at_the_unclaimed_minutes(falkordb_url: str) -> None:
    meter = metering(falkordb_url, [], review_per_hour=60.0, review_minutes_unclaimed=5.0)
    claimed = meter.review_usage(waited_s=3600, handled_s=90)
    assert (claimed.latency_ms, claimed.waited_ms, claimed.cost) == (90_000, 3_600_000, pytest.approx(1.5))
    unclaimed = meter.review_usage(waited_s=7200, handled_s=None)
    assert unclaimed.latency_ms == 300_000 and unclaimed.cost == pytest.approx(5.0)
    instant = meter.review_usage(waited_s=1, handled_s=0.0)  # decided the moment it was claimed
    assert instant.cost == 0.0

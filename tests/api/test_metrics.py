"""GET /metrics: Keel's state read from the stores at scrape time, in Prometheus' text format."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import count_tasks, exposition, ingestion_lag_s
from keel.core.domain import ReviewQueueEntry, ReviewState, SyncRecord
from keel.core.settings import Budget, BudgetSet, Settings
from keel.core.usage import StepUsage
from keel.stores.redis import make_redis
from keel.stores.review_index import ReviewQueueIndex
from keel.stores.sources import SourceRegistry, SourceSpec
from keel.stores.usage import UsageLedger

API_FAMILIES = {
    "keel_up": "gauge",
    "keel_tasks": "gauge",
    "keel_tokens": "counter",
    "keel_cost": "counter",
    "keel_model_calls": "counter",
    "keel_budget_remaining": "gauge",
    "keel_budget_limit": "gauge",
    "keel_review_queue_depth": "gauge",
    "keel_review_queue_oldest_age_seconds": "gauge",
    "keel_ingestion_lag_seconds": "gauge",
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def fresh_tenant() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = make_redis(settings.falkordb_url)
    yield client
    client.close()


# --- the lag's definition, without servers ---------------------------------------------------------

NOW_S = 1_800_000_000.0


@pytest.mark.unit
@pytest.mark.parametrize(
    "record, lag",
    [
        (SyncRecord(), None),
        (SyncRecord(status="running", oldest_unsynced_ns=int((NOW_S - 90) * 1e9)), 90.0),
        (SyncRecord(status="running"), 0.0),  # its plan found no change (yet)
        (SyncRecord(status="completed", oldest_unsynced_ns=int((NOW_S - 90) * 1e9)), 0.0),
        (SyncRecord(status="completed", failed=2, oldest_unsynced_ns=int((NOW_S - 90) * 1e9)), 90.0),
        (SyncRecord(status="failed", oldest_unsynced_ns=int((NOW_S - 30) * 1e9)), 30.0),
        (SyncRecord(status="running", oldest_unsynced_ns=int((NOW_S + 5) * 1e9)), 0.0),  # clock skew
    ],
)
def test_ingestion_lag(record: SyncRecord, lag: float | None) -> None:
    found = ingestion_lag_s(record, NOW_S)
    assert found == (None if lag is None else pytest.approx(lag, abs=1e-3))


# --- the route, on the session's app -----------------------------------------------------------------


@pytest.mark.integration
async def test_metrics_are_served_in_text_format_without_a_key(api: httpx.AsyncClient, callers) -> None:
    async with callers.raw({}) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family.type for family in text_string_to_metric_families(response.text)}
    assert families.items() >= API_FAMILIES.items()
    assert value(response.text, "keel_up") == 1
    # The operator's tenant is always counted, in every status.
    for status in ("running", "awaiting_review", "completed", "rejected", "failed", "cancelled"):
        assert value(response.text, "keel_tasks", tenant="default", status=status) is not None, status
    assert "/metrics" not in (await api.get("/openapi.json")).json()["paths"]


@pytest.mark.integration
async def test_a_tenants_usage_appears_as_token_cost_and_call_counters(
    api: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    tenant, ledger = fresh_tenant(), UsageLedger(redis_client)
    for step, attempt in (("generate", 1), ("grade", 1)):
        usage = StepUsage(
            step=step, kind="llm", model="m-1", calls=1, input_tokens=100, output_tokens=20, cost=0.25
        )
        assert ledger.record(f"wf/{step}/{attempt}", tenant, "key-1", date.today(), "p1", usage)
    text = (await api.get("/metrics")).text
    assert value(text, "keel_tokens_total", tenant=tenant, model="m-1", direction="input") == 200
    assert value(text, "keel_tokens_total", tenant=tenant, model="m-1", direction="output") == 40
    assert value(text, "keel_cost_total", tenant=tenant, model="m-1") == pytest.approx(0.5)
    assert value(text, "keel_model_calls_total", tenant=tenant, model="m-1", step="generate") == 1
    assert value(text, "keel_model_calls_total", tenant=tenant, model="m-1", step="grade") == 1
    # A tenant with usage has its tasks counted too (none yet).
    assert value(text, "keel_tasks", tenant=tenant, status="running") == 0


@pytest.mark.integration
async def test_the_review_queue_depth_and_its_oldest_wait(
    api: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    tenant, now = fresh_tenant(), datetime.now(UTC)
    index = ReviewQueueIndex(redis_client)
    for task, waited_s in (("task-a", 600), ("task-b", 30)):
        requested = (now - timedelta(seconds=waited_s)).isoformat()
        review = ReviewState(1, "reviewers", ["weak grounding"], requested, "", False, "admin", False)
        index.publish(ReviewQueueEntry(tenant, f"{task}-{tenant}", "Q?", "draft", "weak grounding", review))
    text = (await api.get("/metrics")).text
    assert value(text, "keel_review_queue_depth", tenant=tenant) == 2
    oldest = value(text, "keel_review_queue_oldest_age_seconds", tenant=tenant)
    assert oldest is not None and 600 <= oldest < 660


@pytest.mark.integration
async def test_a_sources_index_lag(
    api: httpx.AsyncClient, redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tenant, registry = fresh_tenant(), SourceRegistry(redis_client)
    root = str(tmp_path_factory.mktemp("lagging"))
    for source_id in ("behind", "current", "never"):
        registry.add(SourceSpec(source_id, tenant, root, ["*.md"]))
    started = datetime.now(UTC).isoformat()
    two_minutes_ago_ns = int((datetime.now(UTC) - timedelta(minutes=2)).timestamp() * 1e9)
    registry.record(
        tenant, "behind", SyncRecord("r1", "running", started, oldest_unsynced_ns=two_minutes_ago_ns)
    )
    registry.record(tenant, "current", SyncRecord("r2", "completed", started, started, oldest_unsynced_ns=1))
    text = (await api.get("/metrics")).text
    behind = value(text, "keel_ingestion_lag_seconds", tenant=tenant, source="behind")
    assert behind is not None and 120 <= behind < 180
    assert value(text, "keel_ingestion_lag_seconds", tenant=tenant, source="current") == 0
    assert value(text, "keel_ingestion_lag_seconds", tenant=tenant, source="never") is None


@pytest.mark.integration
async def test_tenant_budgets_show_what_is_left(settings: Settings, redis_client: redis.Redis) -> None:
    tenant = fresh_tenant()
    budgets = BudgetSet(task=Budget(limit=1.0), tenant_day=Budget(limit=2.0), tenant_month=Budget(limit=30.0))
    cost = settings.cost.model_copy(update={"tenant_budgets": {tenant: budgets}})
    text = exposition(
        redis_client, settings.model_copy(update={"cost": cost}), [], datetime.now(UTC)
    ).decode()
    assert value(text, "keel_budget_limit", tenant=tenant, budget="tenant_day") == 2.0
    assert value(text, "keel_budget_remaining", tenant=tenant, budget="tenant_day") == 2.0
    assert value(text, "keel_budget_limit", tenant=tenant, budget="tenant_month") == 30.0
    assert value(text, "keel_budget_remaining", tenant=tenant, budget="tenant_month") == 30.0
    # A task's budget is per task: not a tenant's line.
    assert not [key for key in samples(text) if ("budget", "task") in key[1]]


@pytest.mark.integration
async def test_a_count_that_fails_is_left_out_not_the_scrape(temporal_env) -> None:
    counts = await count_tasks(temporal_env.client, ["default", "not a tenant!"])
    assert {count.tenant for count in counts} == {"default"}
    assert len(counts) == 6

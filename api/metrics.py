"""What the API's /metrics exports: Keel's state as its stores hold it, read at scrape time.

Nothing is counted in the API process: usage, budgets, the review queue and sync records live in
Redis and task states in Temporal, written by whichever worker did the work, so any API replica
exports the same figures. Each scrape builds its own registry (no process-wide state: tests build
several apps). What a worker measures in its own process (step latency, cache lookups, slots in
use) is on the worker's endpoint (activities/metrics.py).

Every family carries tenant ids as labels: /metrics is for the operator's Prometheus only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio.client import Client

from keel.control import tasks
from keel.core.budgets import BudgetScope, budget_lines
from keel.core.domain import SyncRecord, TaskStatus
from keel.core.settings import BudgetSet, Settings
from keel.stores.budgets import BudgetLedger
from keel.stores.review_index import ReviewQueueIndex
from keel.stores.sources import SourceRegistry
from keel.stores.usage import UsageLedger

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
# The budgets of a whole tenant; a key's or a task's are too many lines to export.
TENANT_BUDGETS = ("tenant_day", "tenant_month")
_COUNT_TIMEOUT = timedelta(seconds=3)
_COUNTS_AT_ONCE = 8


@dataclass(frozen=True)
class TaskCount:
    tenant: str
    status: TaskStatus
    count: int


async def count_tasks(client: Client, tenants: Iterable[str]) -> list[TaskCount]:
    """Each tenant's tasks per status, from Temporal's visibility. A count that fails or times out
    is left out (logged): a scrape must not fail because one query did."""
    gate = asyncio.Semaphore(_COUNTS_AT_ONCE)

    async def one(tenant: str, status: TaskStatus) -> TaskCount | None:
        try:
            async with gate:
                found = await tasks.count_tasks(client, tenant, status, rpc_timeout=_COUNT_TIMEOUT)
        except Exception as err:
            log.warning("metrics: counting %s tasks of tenant %s failed: %s", status, tenant, err)
            return None
        return TaskCount(tenant, status, found)

    counts = await asyncio.gather(*(one(t, s) for t in tenants for s in TASK_STATUSES))
    return [count for count in counts if count is not None]


def task_tenants(client: redis.Redis, settings: Settings) -> list[str]:
    """The tenants whose tasks are counted: those with usage or a review waiting, and the
    operator's own."""
    found = set(UsageLedger(client).tenants()) | set(ReviewQueueIndex(client).tenants())
    return sorted(found | {settings.tenant})


def ingestion_lag_s(record: SyncRecord, now_s: float) -> float | None:
    """How far behind its source a source's index is, as far as its last sync knows.

    - never synced: None (no series);
    - a sync running, failed, or completed with files that failed to index: now minus the oldest
      modification among the changes its plan found, since those may not be indexed yet (0 when it
      found no change, or stopped before its plan);
    - completed with every change indexed: 0, caught up as of that sync's scan (a change made
      since is seen by the next sync, not here).
    """
    if record.status == "never":
        return None
    caught_up = record.status == "completed" and not record.failed
    if caught_up or not record.oldest_unsynced_ns:
        return 0.0
    return max(0.0, now_s - record.oldest_unsynced_ns / 1e9)


class StoreCollector(Collector):
    """Keel's families, read from the stores when collected. `tasks`: the counts from Temporal,
    read before (they are async; collection runs in a thread)."""

    def __init__(
        self, client: redis.Redis, settings: Settings, tasks: Sequence[TaskCount], now: datetime
    ) -> None:
        self._client = client
        self._settings = settings
        self._tasks = tasks
        self._now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("keel_up", "1 while the API answers a scrape")
        up.add_metric([], 1)
        yield up
        sections: list[Callable[[], Iterable[Metric]]] = [
            self._task_counts,
            self._usage,
            self._budgets,
            self._reviews,
            self._ingestion,
        ]
        for section in sections:
            try:
                families = list(section())
            except Exception:
                # One store's failure leaves its families out, not the whole scrape.
                log.exception("metrics: %s failed", section.__name__)
                continue
            yield from families

    def _task_counts(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "keel_tasks", "Tasks by tenant and status (Temporal visibility)", labels=["tenant", "status"]
        )
        for count in self._tasks:
            family.add_metric([count.tenant, count.status], count.count)
        yield family

    def _usage(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "keel_tokens",
            "Model tokens since the start, by direction (input|output)",
            labels=["tenant", "model", "direction"],
        )
        cost = CounterMetricFamily(
            "keel_cost",
            f"Model cost since the start, in {self._settings.cost.currency}",
            labels=["tenant", "model"],
        )
        calls = CounterMetricFamily(
            "keel_model_calls",
            "Model calls since the start, by agent step",
            labels=["tenant", "model", "step"],
        )
        ledger = UsageLedger(self._client)
        for tenant in ledger.tenants():
            by_model: dict[tuple[str, str], float] = defaultdict(float)
            for (model, step, metric), value in ledger.totals(tenant).items():
                if metric in ("input_tokens", "output_tokens"):
                    by_model[(model, metric.removesuffix("_tokens"))] += value
                elif metric == "cost":
                    by_model[(model, "cost")] += value
                elif metric == "calls":
                    calls.add_metric([tenant, model, step], value)
            for (model, what), value in sorted(by_model.items()):
                if what == "cost":
                    cost.add_metric([tenant, model], value)
                else:
                    tokens.add_metric([tenant, model, what], value)
        yield from (tokens, cost, calls)

    def _budgets(self) -> Iterator[Metric]:
        currency = self._settings.cost.currency
        remaining = GaugeMetricFamily(
            "keel_budget_remaining",
            f"What a tenant's budget leaves this period (limit - spent - reserved), in {currency}",
            labels=["tenant", "budget"],
        )
        limit = GaugeMetricFamily(
            "keel_budget_limit", "A tenant's budget for the period", labels=["tenant", "budget"]
        )
        cost = self._settings.cost
        tenants = set(cost.tenant_budgets) | set(UsageLedger(self._client).tenants())
        if any(getattr(cost.budgets, name) for name in TENANT_BUDGETS):
            tenants.add("default")
        ledger = BudgetLedger(self._client)
        for tenant in sorted(tenants):
            budgets = cost.budgets_for(tenant)
            named = []
            for name in TENANT_BUDGETS:
                if getattr(budgets, name) is None:
                    continue
                only = BudgetSet.model_validate({name: getattr(budgets, name)})
                named += [(name, line) for line in budget_lines(only, BudgetScope(tenant, "", ""), self._now)]
            # One call per tenant: its lines share a Redis Cluster slot, two tenants' may not.
            states = ledger.state([line for _, line in named])
            for (name, line), state in zip(named, states, strict=True):
                remaining.add_metric([tenant, name], state.remaining)
                limit.add_metric([tenant, name], line.limit)
        yield from (remaining, limit)

    def _reviews(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "keel_review_queue_depth", "Tasks waiting for a reviewer", labels=["tenant"]
        )
        oldest = GaugeMetricFamily(
            "keel_review_queue_oldest_age_seconds",
            "How long the longest-waiting task has waited for a reviewer (0: none waits)",
            labels=["tenant"],
        )
        index = ReviewQueueIndex(self._client)
        for tenant in ReviewQueueIndex(self._client).tenants():
            entries = index.entries(tenant)
            ages = [
                (self._now - datetime.fromisoformat(entry["review"]["requested_at"])).total_seconds()
                for entry in entries
            ]
            depth.add_metric([tenant], len(entries))
            oldest.add_metric([tenant], max([0.0, *ages]))
        yield from (depth, oldest)

    def _ingestion(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "keel_ingestion_lag_seconds",
            "How far behind its source a source's index is (see api/metrics.py ingestion_lag_s)",
            labels=["tenant", "source"],
        )
        registry = SourceRegistry(self._client)
        for tenant in SourceRegistry(self._client).tenants():
            for spec in registry.list(tenant):
                seconds = ingestion_lag_s(registry.last_sync(tenant, spec.source_id), self._now.timestamp())
                if seconds is not None:
                    lag.add_metric([tenant, spec.source_id], seconds)
        yield lag


def exposition(client: redis.Redis, settings: Settings, tasks: Sequence[TaskCount], now: datetime) -> bytes:
    """The text exposition of Keel's families as of `now` (blocking: Redis reads)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(client, settings, tasks, now))
    return generate_latest(registry)

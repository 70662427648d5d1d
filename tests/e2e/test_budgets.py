"""Budgets that hold under concurrency, on the real servers: 50 tasks at once against a tenant
budget that fits 10 model calls never spend past it, every refused task says why, a refusal can go
to a reviewer instead, and a worker SIGKILLed mid-call leaks no reservation.

The model is a small OpenAI-compatible HTTP server in this test (tests/support/fake_model.py): the
test is about what Keel does around a priced model call, not about the model. It writes 7 tokens
a call; the workers allow it 8 (`max_tokens`), so a reservation prices 8 and the call settles at 7.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from keel.control.tasks import start_task
from keel.core.budgets import BudgetScope, budget_lines
from keel.core.domain import TaskRequest, TaskResult
from keel.core.errors import failure_reason
from keel.core.settings import Budget, BudgetSet, Settings
from keel.core.usage import from_nanos
from keel.stores.budgets import BudgetLedger
from keel.stores.redis import make_redis
from tests.support.fake_model import FakeModel, fake_model, worker_for
from tests.support.polling import eventually, wait_for_status
from tests.support.servers import stop_process
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration]

MODEL = "priced-model"
ANSWER = "Team Aurora owns Kestrel [1]."
PER_TOKEN = 0.001  # output price per token: 1,000 per million
CALL_COST = FakeModel.COMPLETION_TOKENS * PER_TOKEN
RESERVATION_TTL_S = 3
PRICES = [{"match": MODEL, "input_per_1m": 0.0, "output_per_1m": PER_TOKEN * 1_000_000}]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeModel]:
    with fake_model(MODEL, ANSWER) as priced:
        yield priced


def budgeted(settings: Settings, tenants: dict[str, BudgetSet], on_hard_limit: str) -> Settings:
    return settings.model_copy(
        update={
            "models": settings.models.model_copy(update={"max_tokens": 8}),
            "cost": settings.cost.model_copy(
                update={
                    "prices": Settings(cost={"prices": PRICES}).cost.prices,
                    "tenant_budgets": tenants,
                    "on_hard_limit": on_hard_limit,
                    "reservation_ttl_s": RESERVATION_TTL_S,
                }
            ),
        }
    )


def tenant_day(tenant: str, limit: float, at: datetime | None = None) -> list:
    budgets = BudgetSet(tenant_day=Budget(limit=limit))
    return budget_lines(budgets, BudgetScope(tenant, "", ""), at or datetime.now(UTC))


async def ask(client: Client, queue: str, tenant: str) -> str:
    # The cache is bypassed: every task must make its own model call.
    request = TaskRequest(question="Which team owns Kestrel?", review="never", tenant=tenant, cache=False)
    return await start_task(client, request, queue)


async def outcome(client: Client, task_id: str) -> TaskResult | str:
    """The task's result, or the reason it failed."""
    try:
        return await client.get_workflow_handle(task_id, result_type=TaskResult).result()
    except WorkflowFailureError as err:
        return failure_reason(err)


async def test_fifty_concurrent_tasks_never_spend_past_a_budget_that_fits_ten(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    endpoint: FakeModel,
) -> None:
    tenant = f"b{uuid.uuid4().hex[:8]}"
    limit = 10 * CALL_COST + CALL_COST / 2  # ten calls fit, an eleventh does not
    own = budgeted(settings, {tenant: BudgetSet(tenant_day=Budget(limit=limit))}, "fail")
    client = temporal_env.client
    started = datetime.now(UTC)
    async with worker_for(client, own, endpoint, tmp_path_factory.mktemp("budget"), "budget") as worker:
        queue = worker.temporal.task_queue
        task_ids = await asyncio.gather(*(ask(client, queue, tenant) for _ in range(50)))
        outcomes = await asyncio.wait_for(asyncio.gather(*(outcome(client, t) for t in task_ids)), 600)
    answered = [o for o in outcomes if isinstance(o, TaskResult)]
    refused = [o for o in outcomes if isinstance(o, str)]
    spent = sum(r.usage.cost for r in answered)
    # The day's line; had the run crossed midnight, the next day's too (each day has its own budget).
    days = {tenant_day(tenant, limit, at)[0] for at in (started, datetime.now(UTC))}
    states = BudgetLedger(make_redis(settings.falkordb_url)).state(sorted(days, key=lambda line: line.key))
    assert from_nanos(sum(s.spent_nanos for s in states)) == pytest.approx(
        spent
    )  # the counters: what was paid
    assert spent <= limit * len(days), f"spent {spent} past the budget {limit}"
    assert 1 <= len(answered) <= 10 * len(days) and len(answered) + len(refused) == 50
    assert all(s.reserved_nanos == 0 for s in states)  # every reservation settled
    for reason in refused:
        assert "model call refused: budget tenant" in reason and "per day" in reason, reason


async def test_a_refused_call_sends_the_task_to_a_reviewer_with_the_budget_reason(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    settings: Settings,
    endpoint: FakeModel,
) -> None:
    tenant = "default"  # the API's test caller reads it
    tiny = BudgetSet(task=Budget(limit=CALL_COST / 2))  # no call fits one task's budget
    own = budgeted(settings, {tenant: tiny}, "review")
    client = temporal_env.client
    endpoint.requests.clear()
    async with worker_for(client, own, endpoint, tmp_path_factory.mktemp("refer"), "refer") as worker:
        task_id = await ask(client, worker.temporal.task_queue, tenant)
        view = await wait_for_status(api, task_id, {"awaiting_review", "completed", "failed"})
        assert view["status"] == "awaiting_review", view
        item = (await api.get(f"/v1/reviews/{task_id}")).json()
        reasons = item.get("reasons") or item.get("review", {}).get("reasons")
        assert any(r.startswith(f"budget: budget task {task_id}") for r in reasons), item
        assert endpoint.requests == []  # refused before the call
        await client.get_workflow_handle(task_id).terminate("test over")


@pytest_asyncio.fixture
async def killable_worker(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    falkordb_url: str,
    settings: Settings,
    endpoint: FakeModel,
) -> AsyncIterator[tuple[WorkerProcess, str, subprocess.Popen[bytes]]]:
    """A worker process of its own (so it can be SIGKILLed), its tenant under a daily budget."""
    tenant = f"k{uuid.uuid4().hex[:8]}"
    process = WorkerProcess.isolated(tmp_path, settings.temporal_address, falkordb_url, "killed").with_env(
        KEEL_MODELS__BASE_URL=endpoint.url,
        KEEL_MODELS__MODEL=MODEL,
        KEEL_MODELS__MAX_TOKENS="8",
        KEEL_EMBEDDING__QUERY_RUNTIME="torch",
        KEEL_COST__PRICES=json.dumps(PRICES),
        KEEL_COST__TENANT_BUDGETS=json.dumps({tenant: {"tenant_day": {"limit": 1.0}}}),
        KEEL_COST__RESERVATION_TTL_S=str(RESERVATION_TTL_S),
        KEEL_METRICS__WORKER_PORT="0",
    )
    popen = process.start(tmp_path / "worker.log")
    try:
        yield process, tenant, popen
    finally:
        stop_process(popen)


async def test_a_worker_killed_mid_call_leaks_no_reservation(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    endpoint: FakeModel,
    killable_worker: tuple[WorkerProcess, str, subprocess.Popen[bytes]],
) -> None:
    process, tenant, popen = killable_worker
    ledger = BudgetLedger(make_redis(settings.falkordb_url))
    lines = tenant_day(tenant, 1.0)
    endpoint.requests.clear()
    endpoint.delay_s = 60  # the call hangs: the kill lands inside it
    try:
        task_id = await ask(temporal_env.client, process.settings.temporal.task_queue, tenant)

        async def calling() -> bool:
            return bool(endpoint.requests)

        await eventually(calling, 120, "the model call to start")
        (state,) = ledger.state(lines)
        assert state.reserved_nanos > 0  # the call holds its reservation while it runs
        os.kill(popen.pid, signal.SIGKILL)
        assert popen.wait(timeout=10) == -signal.SIGKILL

        async def released() -> bool:
            return ledger.state(lines)[0].reserved_nanos == 0

        await eventually(released, RESERVATION_TTL_S + 10, "the killed call's reservation to expire")
        assert ledger.state(lines)[0].spent_nanos == 0  # nothing was paid, nothing is held
        await temporal_env.client.get_workflow_handle(task_id).terminate("test over")
    finally:
        endpoint.delay_s = 0

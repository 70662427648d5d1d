"""/readyz and the worker's liveness: a worker counts only if it polled its task queues recently.

The rule on given poller listings first (no servers), then the real thing: the session's worker,
a task queue no worker polls, and a worker process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.routers.health import PollerSeen, unpolled, watched_task_queues
from keel.core.settings import Settings
from tests.support.polling import eventually
from tests.support.servers import stop_process
from tests.support.workers import WorkerProcess

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _seen(identity: str, age_s: float) -> PollerSeen:
    return PollerSeen(identity, NOW - timedelta(seconds=age_s))


@pytest.mark.unit
def test_a_worker_that_polled_every_queue_recently_is_live() -> None:
    listings = {("keel", "workflow"): [_seen("1@a", 5)], ("keel", "activity"): [_seen("1@a", 50)]}
    assert unpolled(listings, NOW, 60) == []


@pytest.mark.unit
def test_a_dead_workers_lingering_pollers_do_not_count() -> None:
    listings = {("keel", "workflow"): [_seen("1@a", 61)], ("keel", "activity"): [_seen("1@a", 61)]}
    assert unpolled(listings, NOW, 60) == [
        "no worker has polled task queue keel (workflow tasks) in 60 s",
        "no worker has polled task queue keel (activity tasks) in 60 s",
    ]


@pytest.mark.unit
def test_a_worker_with_every_activity_slot_busy_is_live_by_its_workflow_polls() -> None:
    # Its activity poll is old (it polls none while its slots are full), its workflow poll fresh.
    listings = {("keel", "workflow"): [_seen("1@a", 3)], ("keel", "activity"): [_seen("1@a", 500)]}
    assert unpolled(listings, NOW, 60) == []


@pytest.mark.unit
def test_a_live_worker_elsewhere_does_not_vouch_for_a_dead_one() -> None:
    listings = {
        ("keel", "workflow"): [_seen("live@a", 3)],
        ("keel", "activity"): [_seen("live@a", 3)],
        ("keel-ingest", "workflow"): [_seen("dead@b", 200)],
        ("keel-ingest", "activity"): [],
    }
    assert unpolled(listings, NOW, 60) == [
        "no worker has polled task queue keel-ingest (workflow tasks) in 60 s",
        "no worker has polled task queue keel-ingest (activity tasks) in 60 s",
    ]


@pytest.mark.unit
def test_both_task_queues_are_watched() -> None:
    settings = Settings(temporal={"task_queue": "q", "ingest_task_queue": "bulk"})
    assert watched_task_queues(settings) == ["q", "bulk"]


# --- on the real servers --------------------------------------------------------------------


def _with(settings: Settings, task_queue: str | None = None, liveness_s: float | None = None) -> Settings:
    temporal, api = settings.temporal, settings.api
    return settings.model_copy(
        update={
            "temporal": temporal.model_copy(update={"task_queue": task_queue or temporal.task_queue}),
            "api": api.model_copy(update={"worker_liveness_s": liveness_s or api.worker_liveness_s}),
        }
    )


@asynccontextmanager
async def api_of(settings: Settings, temporal: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The real API app built with `settings` (/readyz needs no key)."""
    from keel.app.api_server import build_api

    app = build_api(settings, temporal=temporal)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            yield client


@pytest.mark.integration
async def test_ready_with_the_session_worker(api: httpx.AsyncClient) -> None:
    async def ready() -> httpx.Response | None:
        response = await api.get("/readyz")
        return response if response.status_code == 200 else None

    # Temporal lists a worker's pollers a moment (0.2 s here) after the worker starts.
    response = await eventually(ready, 30, "the session worker to poll its task queues")
    assert response.json()["checks"]["worker"] == "ok"


@pytest.mark.integration
async def test_a_task_queue_no_worker_polls_is_named(
    platform: object, settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    async with api_of(_with(settings, task_queue=queue), temporal_env.client) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["temporal"] == "ok"
    assert f"no worker has polled task queue {queue} (workflow tasks) in 90 s" in body["checks"]["worker"]


async def _pollers(client: Client, settings: Settings) -> list[str]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal.namespace,
            task_queue=TaskQueue(name=settings.temporal.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [poller.identity for poller in response.pollers]


@pytest.mark.integration
async def test_a_worker_killed_with_sigkill_is_not_ready_within_the_window(
    tmp_path: Path, temporal_env: WorkflowEnvironment, falkordb_url: str, settings: Settings
) -> None:
    window_s = 10.0  # short, so the test is; the default (90 s) is explained in settings
    process = WorkerProcess.isolated(tmp_path, settings.temporal_address, falkordb_url, "readyz")
    own = _with(process.settings, liveness_s=window_s)
    worker = process.start(tmp_path / "worker.log")
    try:
        async with api_of(own, temporal_env.client) as client:

            async def status_is(wanted: int) -> httpx.Response | None:
                response = await client.get("/readyz")
                return response if response.status_code == wanted else None

            await eventually(lambda: status_is(200), 180, "the worker to poll its task queues")
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=10) == -signal.SIGKILL
            killed_at = time.monotonic()
            response = await eventually(lambda: status_is(503), window_s + 10, "readyz to see the kill")
            # It polled last before the kill: the kill is seen within the window (plus a poll's slack).
            assert time.monotonic() - killed_at <= window_s + 2
            worker_check = response.json()["checks"]["worker"]
            assert f"no worker has polled task queue {own.temporal.task_queue} " in worker_check
            # What the old check trusted: Temporal still lists the dead worker's poller.
            assert await _pollers(temporal_env.client, own), "the dead poller is no longer listed"
    finally:
        stop_process(worker)

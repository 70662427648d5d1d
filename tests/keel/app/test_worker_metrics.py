"""The worker's own metrics: every step timed, slots counted while held, the endpoint served."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.metrics import count_cache_lookup
from keel.app.embedded import free_port
from keel.app.worker_metrics import StepMetrics, start_worker_metrics
from keel.core.settings import Settings

_STEP = timedelta(seconds=30)


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class TinySteps:
    """Three activities: one held until the test lets it go, one quick, one that fails."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="metrics-test.hold")
    async def hold(self) -> str:
        self.started.set()
        await self.release.wait()
        return "held"

    @activity.defn(name="metrics-test.quick")
    async def quick(self) -> str:
        return "quick"

    @activity.defn(name="metrics-test.broken")
    async def broken(self) -> str:
        raise ApplicationError("broken on purpose", non_retryable=True)


@workflow.defn(name="MetricsTestWorkflow", sandboxed=False)
class MetricsTestWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        done = [await workflow.execute_activity("metrics-test.hold", start_to_close_timeout=_STEP)]
        done.append(await workflow.execute_local_activity("metrics-test.quick", start_to_close_timeout=_STEP))
        try:
            await workflow.execute_activity(
                "metrics-test.broken",
                start_to_close_timeout=_STEP,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            done.append("broken")
        return done


@pytest.mark.integration
async def test_each_step_is_timed_and_holds_a_slot_while_it_runs(temporal_env: WorkflowEnvironment) -> None:
    client, queue, steps = temporal_env.client, f"metrics-{uuid.uuid4().hex[:8]}", TinySteps()
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[MetricsTestWorkflow],
        activities=[steps.hold, steps.quick, steps.broken],
        interceptors=[StepMetrics(queue, {"activity": 3, "local_activity": 2})],
    )
    assert _sample("keel_worker_slots", task_queue=queue, kind="activity") == 3
    assert _sample("keel_worker_slots", task_queue=queue, kind="local_activity") == 2
    assert _sample("keel_worker_slots_in_use", task_queue=queue, kind="activity") == 0
    async with worker:
        handle = await client.start_workflow(
            MetricsTestWorkflow.run, id=f"metrics-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        await asyncio.wait_for(steps.started.wait(), timeout=30)
        assert _sample("keel_worker_slots_in_use", task_queue=queue, kind="activity") == 1
        steps.release.set()
        assert await handle.result() == ["held", "quick", "broken"]
    for kind in ("activity", "local_activity"):
        assert _sample("keel_worker_slots_in_use", task_queue=queue, kind=kind) == 0
    assert _sample("keel_step_duration_seconds_count", step="metrics-test.hold", outcome="ok") == 1
    assert _sample("keel_step_duration_seconds_count", step="metrics-test.quick", outcome="ok") == 1
    assert _sample("keel_step_duration_seconds_count", step="metrics-test.broken", outcome="error") == 1
    exposed = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest().decode())
        for sample in family.samples
    }
    quick = (("le", "0.025"), ("outcome", "ok"), ("step", "metrics-test.quick"))
    assert exposed[("keel_step_duration_seconds_bucket", quick)] == 1
    assert exposed[("keel_worker_slots", (("kind", "activity"), ("task_queue", queue)))] == 3


@pytest.mark.unit
def test_cache_lookups_are_counted_by_tenant_and_outcome() -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    count_cache_lookup(tenant, "hit")
    count_cache_lookup(tenant, "hit")
    count_cache_lookup(tenant, "miss")
    assert _sample("keel_cache_lookups_total", tenant=tenant, outcome="hit") == 2
    assert _sample("keel_cache_lookups_total", tenant=tenant, outcome="miss") == 1
    assert _sample("keel_cache_lookups_total", tenant=tenant, outcome="bypass") is None
    with pytest.raises(ValueError, match="expected one of bypass, hit, miss"):
        count_cache_lookup(tenant, "hot")


@pytest.mark.unit
def test_the_worker_serves_its_metrics_on_the_configured_port() -> None:
    port = free_port()
    start_worker_metrics(Settings(metrics={"worker_port": port, "worker_host": "127.0.0.1"}))
    served = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert served.status_code == 200
    assert "# TYPE keel_step_duration_seconds histogram" in served.text
    assert "# TYPE keel_worker_slots_in_use gauge" in served.text


@pytest.mark.unit
def test_a_taken_metrics_port_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="keel.app.worker_metrics"):
            start_worker_metrics(Settings(metrics={"worker_port": port, "worker_host": "127.0.0.1"}))
    assert f"worker metrics not served on 127.0.0.1:{port}" in caplog.text


@pytest.mark.unit
def test_port_zero_serves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="keel.app.worker_metrics"):
        start_worker_metrics(Settings(metrics={"worker_port": 0}))
    assert caplog.text == ""

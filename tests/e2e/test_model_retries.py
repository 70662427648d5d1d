"""A model endpoint that fails: Temporal retries what may pass, and fails the task at once on a refusal.

The endpoint is a small OpenAI-compatible HTTP server in this test that fails on purpose; the
task runs on a worker of its own whose settings point the model provider at it, through the
real OpenAI SDK, Temporal's retry policy and the API's task status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from keel.control.tasks import start_task
from keel.core.domain import TaskRequest
from keel.core.settings import Settings
from tests.support.fake_model import FakeModel, fake_model, worker_for
from tests.support.polling import wait_for_status

pytestmark = [pytest.mark.integration]

ANSWER = "Team Aurora owns Kestrel [1]."


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeModel]:
    with fake_model("flaky", ANSWER) as flaky:
        yield flaky


@pytest_asyncio.fixture(scope="module")
async def model_worker(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    endpoint: FakeModel,
) -> AsyncIterator[Settings]:
    data_dir = tmp_path_factory.mktemp("model-worker")
    async with worker_for(temporal_env.client, settings, endpoint, data_dir, "model") as own:
        yield own


async def _ask(client: Client, own: Settings) -> str:
    request = TaskRequest(question="Which team owns Kestrel?", review="never", tenant=own.tenant)
    return await start_task(client, request, own.temporal.task_queue)


async def _generate_attempts(client: Client, task_id: str) -> list[int]:
    """The attempt number of each start of the generate activity, from the task's history."""
    history = await client.get_workflow_handle(task_id).fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "agent.generate"
    }
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


async def test_an_unavailable_model_is_retried_until_it_answers(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment, model_worker: Settings, endpoint: FakeModel
) -> None:
    endpoint.failures = [503, 503]
    endpoint.requests.clear()
    task_id = await _ask(temporal_env.client, model_worker)
    view = await wait_for_status(api, task_id, {"completed", "failed"})
    assert view["status"] == "completed", view
    assert view["result"]["answer"] == ANSWER and view["result"]["model"] == "flaky"
    assert len(endpoint.requests) == 3
    assert await _generate_attempts(temporal_env.client, task_id) == [3]  # Temporal's third attempt


async def test_a_refused_request_fails_the_task_at_once_with_the_reason(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment, model_worker: Settings, endpoint: FakeModel
) -> None:
    endpoint.failures = [400]
    endpoint.requests.clear()
    task_id = await _ask(temporal_env.client, model_worker)
    view = await wait_for_status(api, task_id, {"completed", "failed"})
    assert view["status"] == "failed", view
    assert "refused the request" in view["reason"] and "400" in view["reason"], view["reason"]
    assert len(endpoint.requests) == 1
    assert await _generate_attempts(temporal_env.client, task_id) == [1]

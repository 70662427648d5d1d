"""A model endpoint that fails: Temporal retries what may pass, and fails the task at once on a refusal.

The endpoint is a small OpenAI-compatible HTTP server in this test that fails on purpose; the
task runs on a worker of its own whose settings point the model provider at it, through the
real OpenAI SDK, Temporal's retry policy and the API's task status.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from keel.app.worker import build_components, make_worker
from keel.control.tasks import start_task
from keel.core.domain import TaskRequest
from keel.core.settings import Settings
from tests.support.polling import wait_for_status
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration]

ANSWER = "Team Aurora owns Kestrel [1]."


@dataclass
class FlakyEndpoint:
    """Answers chat completions; the statuses in `failures` first, one per request."""

    url: str
    failures: list[int] = field(default_factory=list)
    requests: int = 0


def _handler(endpoint: FlakyEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            endpoint.requests += 1
            if endpoint.failures:
                status = endpoint.failures.pop(0)
                body = {
                    "error": {"message": f"failing on purpose with {status}", "type": "test", "code": status}
                }
            else:
                status = 200
                body = {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "flaky",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ANSWER},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47},
                }
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    return Handler


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FlakyEndpoint]:
    port = free_port()
    flaky = FlakyEndpoint(f"http://127.0.0.1:{port}/v1")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(flaky))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield flaky
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture(scope="module")
async def model_worker(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    endpoint: FlakyEndpoint,
) -> AsyncIterator[Settings]:
    """A worker of its own (task queue, data dir, graph) whose answers come from the endpoint."""
    own = settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("model-worker"),
            "temporal": settings.temporal.model_copy(update={"task_queue": f"model-{uuid.uuid4().hex[:8]}"}),
            "falkordb": settings.falkordb.model_copy(update={"graph_prefix": f"m{uuid.uuid4().hex[:6]}"}),
            "models": settings.models.model_copy(update={"base_url": endpoint.url, "model": "flaky"}),
            # torch queries: no ONNX export into this fresh data dir, which only slows the start.
            "embedding": settings.embedding.model_copy(update={"query_runtime": "torch"}),
        }
    )
    with ExitStack() as stack:
        components = build_components(own, stack)
        async with make_worker(temporal_env.client, own, components):
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
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment, model_worker: Settings, endpoint: FlakyEndpoint
) -> None:
    endpoint.failures, endpoint.requests = [503, 503], 0
    task_id = await _ask(temporal_env.client, model_worker)
    view = await wait_for_status(api, task_id, {"completed", "failed"})
    assert view["status"] == "completed", view
    assert view["result"]["answer"] == ANSWER and view["result"]["model"] == "flaky"
    assert endpoint.requests == 3
    assert await _generate_attempts(temporal_env.client, task_id) == [3]  # Temporal's third attempt


async def test_a_refused_request_fails_the_task_at_once_with_the_reason(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment, model_worker: Settings, endpoint: FlakyEndpoint
) -> None:
    endpoint.failures, endpoint.requests = [400], 0
    task_id = await _ask(temporal_env.client, model_worker)
    view = await wait_for_status(api, task_id, {"completed", "failed"})
    assert view["status"] == "failed", view
    assert "refused the request" in view["reason"] and "400" in view["reason"], view["reason"]
    assert endpoint.requests == 1
    assert await _generate_attempts(temporal_env.client, task_id) == [1]

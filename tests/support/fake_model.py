"""An OpenAI-compatible chat endpoint in a thread, and a worker of its own pointed at it.

It stands in for an LLM where a test is about what Keel does around the model (retries, fences,
markers), not about the model; a real small LLM answers in tests/keel/core/models/.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from temporalio.client import Client

from keel.app.worker import build_components, make_worker
from keel.core.settings import Settings
from tests.support.servers import free_port


@dataclass
class FakeModel:
    """Fails with the statuses in `failures` first, one per request, then answers `answer`
    (after `delay_s`); every request body it got is in `requests`. It reports as prompt tokens the
    words of the messages, and 7 completion tokens: a known usage, never above what a tokenizer
    counts for the same text (every word is at least one token)."""

    url: str
    model: str
    answer: str
    failures: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0

    COMPLETION_TOKENS = 7


def prompt_words(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


def _reply(endpoint: FakeModel, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if endpoint.delay_s:
        time.sleep(endpoint.delay_s)
    if endpoint.failures:
        status = endpoint.failures.pop(0)
        return status, {
            "error": {"message": f"failing on purpose with {status}", "type": "test", "code": status}
        }
    message = {"role": "assistant", "content": endpoint.answer}
    return 200, {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": 0,
        "model": endpoint.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_words(body),
            "completion_tokens": FakeModel.COMPLETION_TOKENS,
            "total_tokens": prompt_words(body) + FakeModel.COMPLETION_TOKENS,
        },
    }


def _handler(endpoint: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            endpoint.requests.append(request)
            status, body = _reply(endpoint, request)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    return Handler


@contextmanager
def fake_model(model: str, answer: str) -> Iterator[FakeModel]:
    port = free_port()
    endpoint = FakeModel(f"http://127.0.0.1:{port}/v1", model, answer)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(endpoint))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def worker_for(
    client: Client, settings: Settings, endpoint: FakeModel, data_dir: Path, tag: str
) -> AsyncIterator[Settings]:
    """A worker of its own (task queue, data dir, graph) whose answers come from the endpoint."""
    own = settings.model_copy(
        update={
            "data_dir": data_dir,
            "temporal": settings.temporal.model_copy(update={"task_queue": f"{tag}-{uuid.uuid4().hex[:8]}"}),
            "falkordb": settings.falkordb.model_copy(
                update={"graph_prefix": f"{tag[0]}{uuid.uuid4().hex[:6]}"}
            ),
            "models": settings.models.model_copy(update={"base_url": endpoint.url, "model": endpoint.model}),
            # torch queries: no ONNX export into this fresh data dir, which only slows the start.
            "embedding": settings.embedding.model_copy(update={"query_runtime": "torch"}),
        }
    )
    with ExitStack() as stack:
        components = build_components(own, stack)
        async with make_worker(client, own, components):
            yield own

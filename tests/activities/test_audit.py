"""Recording a review decision: the audit log, and a score on the task's Langfuse trace."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from activities.audit import AuditActivities
from keel.core.domain import AuditEntry
from keel.core.tracing import StepTracer, trace_id_for
from keel.stores.audit import AuditLog
from keel.stores.redis import make_redis
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, list[dict]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, json.loads(body or b"[]")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def langfuse_stub() -> Iterator[tuple[str, list[tuple[str, list[dict]]]]]:
    # A stand-in for the Langfuse server, which cannot run on these machines (it needs Postgres
    # and ClickHouse): it records what the real Langfuse SDK sends over HTTP.
    server = HTTPServer(("127.0.0.1", free_port()), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Collector.received
    finally:
        server.shutdown()


def test_a_decision_is_scored_on_the_tasks_langfuse_trace(
    falkordb_url: str, langfuse_stub: tuple[str, list[tuple[str, list[dict]]]]
) -> None:
    from langfuse import Langfuse
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    host, received = langfuse_stub
    langfuse = Langfuse(public_key="pk-x", secret_key="sk-x", host=host, span_exporter=InMemorySpanExporter())
    client = make_redis(falkordb_url)
    try:
        activities = AuditActivities(AuditLog(client), StepTracer(None, langfuse))
        task_id = f"task-{uuid.uuid4().hex}"
        decided = AuditEntry(
            task_id, "acme", 1, "reject", "sam", "2026-11-25T10:00:00+00:00", reason="wrong team"
        )
        activities.record(decided)
        langfuse.flush()
    finally:
        langfuse.shutdown()
        client.close()
    # The SDK posts scores in batches: a list of score bodies per request.
    scores = [score for path, body in received if path.endswith("/api/public/scores") for score in body]
    assert len(scores) == 1, received
    [score] = scores
    assert (score["traceId"], score["name"], score["value"]) == (trace_id_for(task_id), "review", "reject")
    assert score["dataType"] == "CATEGORICAL" and score["comment"] == "sam; wrong team"
    assert AuditLog(make_redis(falkordb_url)).for_task("acme", task_id) == [decided]

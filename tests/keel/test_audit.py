"""The audit log: kept once per decision, read per task and per reviewer, durable across restarts;
each decision also scored on the task's Langfuse trace."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from activities.audit import AuditActivities
from keel.audit import AuditLog
from keel.domain import AuditEntry
from keel.services import free_port, start_falkordb, stop_process, wait_for_falkordb
from keel.tracing import StepTracer, make_redis, trace_id_for

pytestmark = pytest.mark.integration


def entry(task_id: str, action: str, actor: str, at: str, round: int = 1, **details: object) -> AuditEntry:
    return AuditEntry(task_id, "acme", round, action, actor, at, **details)  # type: ignore[arg-type]


def test_entries_are_kept_once_and_read_per_task_and_per_reviewer(falkordb_url: str) -> None:
    client = make_redis(falkordb_url)
    log = AuditLog(client)
    task_a, task_b = f"task-{uuid.uuid4().hex}", f"task-{uuid.uuid4().hex}"
    rita = f"rita-{uuid.uuid4().hex[:6]}"
    changes = entry(task_a, "request_changes", rita, "2026-11-25T10:00:00+00:00", instruction="cite it")
    approve = entry(task_a, "approve", rita, "2026-11-25T10:05:00+00:00", round=2)
    edit = entry(task_b, "edit", rita, "2026-11-25T09:00:00+00:00", diff="-a\n+b", reason="typo")
    for written in (approve, changes, edit, approve):  # the repeat: an activity retried
        log.record(written)
    assert log.for_task("acme", task_a) == [changes, approve]
    assert log.for_reviewer("acme", rita) == [edit, changes, approve]
    assert log.for_task("globex", task_a) == []  # tenants never see each other's trail
    client.close()


def test_the_log_survives_a_restart_of_its_server(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "falkordb"
    written = entry(f"task-{uuid.uuid4().hex}", "reject", "sam", "2026-11-25T10:00:00+00:00", reason="off")
    for attempt in range(2):
        server = start_falkordb(data, port)
        try:
            wait_for_falkordb("127.0.0.1", port, timeout_s=30)
            client = make_redis(f"redis://127.0.0.1:{port}")
            if attempt == 0:
                AuditLog(client).record(written)
            else:
                assert AuditLog(client).for_task("acme", written.task_id) == [written]
                assert AuditLog(client).for_reviewer("acme", "sam") == [written]
            client.close()
        finally:
            stop_process(server, grace_s=10)  # SIGTERM: redis flushes its append-only file


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
        decided = entry(task_id, "reject", "sam", "2026-11-25T10:00:00+00:00", reason="wrong team")
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

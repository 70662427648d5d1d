"""The audit log: kept once per decision, read per task and per reviewer, durable across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from keel.core.domain import AuditEntry
from keel.stores.audit import AuditLog
from keel.stores.redis import make_redis
from tests.support.servers import falkordb_server

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
    data = tmp_path / "falkordb"
    written = entry(f"task-{uuid.uuid4().hex}", "reject", "sam", "2026-11-25T10:00:00+00:00", reason="off")
    for attempt in range(2):
        # Stopped with SIGTERM after each round: redis flushes its append-only file.
        with falkordb_server(data) as url:
            client = make_redis(url)
            if attempt == 0:
                AuditLog(client).record(written)
            else:
                assert AuditLog(client).for_task("acme", written.task_id) == [written]
                assert AuditLog(client).for_reviewer("acme", "sam") == [written]
            client.close()

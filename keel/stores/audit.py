"""The audit log of review decisions, in Redis on the FalkorDB server (AOF: it survives restarts).

One JSON entry per decision under a deterministic id (task, round, action), indexed by task
and by reviewer in sorted sets scored by time: writing an entry twice (an activity retried)
leaves one entry. Entries are never changed or deleted by Keel.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING

from keel.core.domain import AuditEntry

if TYPE_CHECKING:
    import redis

_ENTRIES = "keel:audit:{tenant}:entries"  # hash: entry id -> JSON
_BY_TASK = "keel:audit:{tenant}:task:{task_id}"  # sorted set of entry ids by time
_BY_REVIEWER = "keel:audit:{tenant}:reviewer:{reviewer}"
MAX_ENTRIES = 1000  # per read: the newest ones


def entry_id(entry: AuditEntry) -> str:
    return f"{entry.task_id}:{entry.round}:{entry.action}"


class AuditLog:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def record(self, entry: AuditEntry) -> None:
        """Store the entry once, under its id; indexed by its task and its actor."""
        key = entry_id(entry)
        score = datetime.fromisoformat(entry.at).timestamp()
        pipe = self._client.pipeline(transaction=True)
        pipe.hsetnx(_ENTRIES.format(tenant=entry.tenant), key, json.dumps(asdict(entry)))
        pipe.zadd(_BY_TASK.format(tenant=entry.tenant, task_id=entry.task_id), {key: score})
        pipe.zadd(_BY_REVIEWER.format(tenant=entry.tenant, reviewer=entry.actor), {key: score})
        pipe.execute()

    def for_task(self, tenant: str, task_id: str) -> list[AuditEntry]:
        return self._read(tenant, _BY_TASK.format(tenant=tenant, task_id=task_id))

    def for_reviewer(self, tenant: str, reviewer: str) -> list[AuditEntry]:
        return self._read(tenant, _BY_REVIEWER.format(tenant=tenant, reviewer=reviewer))

    def _read(self, tenant: str, index: str) -> list[AuditEntry]:
        """Oldest first."""
        # The newest MAX_ENTRIES, oldest first.
        ids: list[bytes] = list(self._client.zrange(index, -MAX_ENTRIES, -1))  # type: ignore[arg-type]
        if not ids:
            return []
        raw = self._client.hmget(_ENTRIES.format(tenant=tenant), ids)
        return [AuditEntry(**json.loads(value)) for value in raw if value is not None]

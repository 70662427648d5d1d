"""Keel's own record of each task's observations, in Redis on the FalkorDB server.

Both the worker (which writes) and the API (which serves `/v1/tasks/{id}/trace`) reach that
server already: traces work with no Langfuse at all. One hash per task, keyed by observation
id, so a retried activity overwrites its record, never duplicates it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from keel.core.tracing import Observation

if TYPE_CHECKING:
    import redis

_KEY_PREFIX = "keel:trace:"


class LocalTraceStore:
    """Observations per task in a Redis hash, keyed by observation id (idempotent)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def save(self, task_id: str, observation: Observation) -> None:
        self._client.hset(_KEY_PREFIX + task_id, observation.id, json.dumps(asdict(observation), default=str))

    def load(self, task_id: str) -> list[Observation]:
        raw = self._client.hvals(_KEY_PREFIX + task_id)
        observations = [Observation(**json.loads(value)) for value in raw]
        return sorted(observations, key=lambda o: (o.start_time, o.parent_id is not None, o.name))

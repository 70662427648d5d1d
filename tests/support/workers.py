"""Worker processes of a test's own, killed and restarted at will (`kill -9` mid-step)."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from keel.core.settings import Settings
from tests.support.servers import spawn_keel


@dataclass(frozen=True)
class WorkerProcess:
    """A worker process of its own: its task queue, data dir (Qdrant Edge) and graph prefix, so
    the session's in-process worker never takes its work. `start` it again after a kill."""

    settings: Settings
    env: dict[str, str]

    @classmethod
    def isolated(cls, tmp_path: Path, temporal_address: str, falkordb_url: str, name: str) -> WorkerProcess:
        queue, prefix = f"{name}-{uuid.uuid4().hex[:8]}", f"{name[:8]}{uuid.uuid4().hex[:6]}"
        settings = Settings(
            data_dir=tmp_path / "data",
            temporal={"address": temporal_address, "task_queue": queue},
            falkordb={"url": falkordb_url, "graph_prefix": prefix},
            cache={"enabled": False},
        )
        env = {
            **os.environ,
            "KEEL_DATA_DIR": str(settings.data_dir),
            "KEEL_TEMPORAL__ADDRESS": temporal_address,
            "KEEL_TEMPORAL__TASK_QUEUE": queue,
            "KEEL_FALKORDB__URL": falkordb_url,
            "KEEL_FALKORDB__GRAPH_PREFIX": prefix,
            "HF_HUB_OFFLINE": "1",
            # As in the session's worker (tests/conftest.py): fault tests ask one question again
            # and again, each expecting the agent's own run.
            "KEEL_CACHE__ENABLED": "false",
            # Workers of several tests may run at once: no metrics port to fight over.
            "KEEL_METRICS__WORKER_PORT": "0",
        }
        return cls(settings, env)

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        return spawn_keel(["worker"], log, self.env)

    def with_env(self, **extra: str) -> WorkerProcess:
        """The same worker with more environment (e.g. `KEEL_FAULTS__PAUSE_AT`), read at its start."""
        return replace(self, env={**self.env, **extra})

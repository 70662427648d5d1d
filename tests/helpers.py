"""Helpers shared by the integration tests: polling with a deadline, worker processes of their own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from keel.services import spawn
from keel.settings import Settings

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 60.0, what: str = "") -> T:
    """Poll `probe` until it returns a truthy value; fail after `timeout_s` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or probe}")


async def wait_for_status(
    api: httpx.AsyncClient, task_id: str, wanted: set[str], timeout_s: float = 120
) -> dict:
    async def probe() -> dict | None:
        view = (await api.get(f"/v1/tasks/{task_id}")).json()
        return view if view["status"] in wanted else None

    return await eventually(probe, timeout_s, f"task {task_id} to reach {wanted}")


async def wait_indexed(api: httpx.AsyncClient, document_id: str, ingestion_id: str) -> dict:
    """The document's view once this upload (`ingestion_id`) is indexed; fails if it failed."""

    async def probe() -> dict | None:
        response = await api.get(f"/v1/documents/{document_id}")
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["status"] != "failed", view
        return view if view["status"] == "indexed" and view["ingestion_id"] == ingestion_id else None

    return await eventually(probe, 120, f"document {document_id} to be indexed")


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
        )
        env = {
            **os.environ,
            "KEEL_DATA_DIR": str(settings.data_dir),
            "KEEL_TEMPORAL__ADDRESS": temporal_address,
            "KEEL_TEMPORAL__TASK_QUEUE": queue,
            "KEEL_FALKORDB__URL": falkordb_url,
            "KEEL_FALKORDB__GRAPH_PREFIX": prefix,
            "HF_HUB_OFFLINE": "1",
        }
        return cls(settings, env)

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        return spawn([sys.executable, "-m", "keel.cli", "worker"], log, self.env)

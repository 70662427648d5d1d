"""Waiting with a deadline, never a fixed sleep: for a probe, a task's status, a document's indexing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

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

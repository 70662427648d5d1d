"""A worker killed with SIGKILL mid-sync or mid-delete, then restarted, finishes with exactly the
right points and nodes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ingestion.sources import DEFAULT_INCLUDE
from keel.core.domain import SyncRecord, SyncRequest
from keel.core.settings import Settings
from keel.stores.redis import make_redis
from keel.stores.sources import SourceRegistry, SourceSpec
from retrieval.factories import make_vector_store
from retrieval.graph_store import GraphStore
from tests.support.polling import eventually
from tests.support.servers import stop_process
from tests.support.workers import WorkerProcess
from workflows.sources import SourceSyncWorkflow

pytestmark = [pytest.mark.integration]

FILES = 200
TEAMS = ["Aurora", "Basalt", "Cobalt", "Juniper", "Lantern", "Meridian", "Quill"]


def write_notes(root: Path) -> None:
    """Two-chunk notes that name shared teams: entities merged across documents, relations."""
    root.mkdir()
    for n in range(FILES):
        team, other = TEAMS[n % len(TEAMS)], TEAMS[(n + 3) % len(TEAMS)]
        body = " ".join(
            f"Service Relay{n} is owned by Team {team} and depends on Gateway{n % 11}. "
            f"Step {step}: when Relay{n} pages, the {team} on-call checks queue depth {n * step} "
            f"and hands over to Team {other} if the backlog grows past {step * 100} items."
            for step in range(1, 5)
        )
        (root / f"note-{n:04d}.md").write_text(f"# Relay{n} runbook\n\n{body}\n")


def register_notes(registry: SourceRegistry, root: Path) -> tuple[str, str]:
    """Two tenants, one folder: "crashed" is synced through a kill, "clean" without one."""
    for tenant in ("crashed", "clean"):
        registry.add(SourceSpec("notes", tenant, str(root), list(DEFAULT_INCLUDE)))
    return "crashed", "clean"


async def start_sync(client: Client, own: Settings, tenant: str) -> WorkflowHandle[Any, SyncRecord]:
    return await client.start_workflow(
        SourceSyncWorkflow.run,
        SyncRequest(tenant, "notes"),
        id=f"sync-crash-{tenant}-{uuid.uuid4().hex[:8]}",
        task_queue=own.temporal.ingest_queue,
        result_type=SyncRecord,
    )


async def test_worker_killed_mid_sync_finishes_with_exact_counts(
    tmp_path: Path, temporal_env: WorkflowEnvironment, falkordb_url: str, settings: Settings
) -> None:
    process = WorkerProcess.isolated(tmp_path, settings.temporal_address, falkordb_url, "synccrash")
    own = process.settings
    prefix = own.falkordb.graph_prefix
    root = tmp_path / "notes"
    write_notes(root)
    redis_client = make_redis(falkordb_url)
    registry = SourceRegistry(redis_client)
    crashed, clean = register_notes(registry, root)

    worker = process.start(tmp_path / "worker-1.log")
    try:
        handle = await start_sync(temporal_env.client, own, crashed)

        async def partly_done() -> bool:
            record = registry.live(crashed, "notes", time.time()).record
            assert record.status in ("never", "running"), "the sync ended before the worker was killed"
            return record.status == "running" and 0 < record.files_done < FILES

        await eventually(partly_done, 180, "the sync to be part-way through its files")
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL
        killed_at = registry.live(crashed, "notes", time.time()).record.files_done

        # A new worker: the batch activities time out on their heartbeats and resume where
        # their last heartbeat says; the workflows replay and go on.
        worker = process.start(tmp_path / "worker-2.log")
        record = await handle.result()
        reference = await (await start_sync(temporal_env.client, own, clean)).result()
    finally:
        stop_process(worker)
        redis_client.close()

    assert 0 < killed_at < FILES
    assert (record.status, record.failed) == ("completed", 0)
    assert record.files_done == record.changed_files == FILES
    # A document written by the killed worker after its last heartbeat is written again by the
    # retry, and then found unchanged: every document is counted once, as one or the other.
    assert record.indexed + record.unchanged == FILES
    assert (reference.indexed, reference.unchanged, reference.failed) == (FILES, 0, 0)

    # Exactly the points and nodes of the clean sync: none missing, none doubled.
    graph = GraphStore(falkordb_url, prefix=prefix)
    vectors = make_vector_store(own)  # the worker has stopped: its Edge shard is free to open
    try:
        counts = graph.counts(crashed)
        assert counts == graph.counts(clean)
        assert counts["documents"] == FILES and counts["chunks"] >= 2 * FILES and counts["relations"] > 0
        assert vectors.count(crashed) == vectors.count(clean) == counts["chunks"]
        for n in range(0, FILES, 37):
            document_id = f"note-{n:04d}"
            assert vectors.count(crashed, document_id) == vectors.count(clean, document_id) >= 2
    finally:
        vectors.close()
        graph.close()


# Mid-delete: one-line notes (one chunk each, quick to index), most of them deleted before the
# second sync, so its removal step (one document at a time, a heartbeat after each) runs long
# enough to be killed part-way.
NOTES = 160
GONE = {n for n in range(NOTES) if n % 4}


def write_short_notes(root: Path) -> None:
    root.mkdir()
    for n in range(NOTES):
        team = TEAMS[n % len(TEAMS)]
        (root / f"short-{n:04d}.md").write_text(f"# Relay{n}\n\nService Relay{n} is owned by Team {team}.\n")


async def test_worker_killed_mid_delete_finishes_with_exact_counts(
    tmp_path: Path, temporal_env: WorkflowEnvironment, falkordb_url: str, settings: Settings
) -> None:
    process = WorkerProcess.isolated(tmp_path, settings.temporal_address, falkordb_url, "delcrash")
    own = process.settings
    prefix = own.falkordb.graph_prefix
    root = tmp_path / "notes"
    write_short_notes(root)
    redis_client = make_redis(falkordb_url)
    registry = SourceRegistry(redis_client)
    crashed, clean = register_notes(registry, root)

    graph = GraphStore(falkordb_url, prefix=prefix)
    worker = process.start(tmp_path / "worker-1.log")
    try:
        for tenant in (crashed, clean):
            assert (await (await start_sync(temporal_env.client, own, tenant)).result()).indexed == NOTES
        for n in GONE:
            (root / f"short-{n:04d}.md").unlink()
        reference = await (await start_sync(temporal_env.client, own, clean)).result()
        removing = await start_sync(temporal_env.client, own, crashed)

        async def partly_removed() -> bool:
            documents = graph.counts(crashed)["documents"]
            assert documents > NOTES - len(GONE), "the removals ended before the worker was killed"
            return documents < NOTES

        await eventually(partly_removed, 120, "the sync to be part-way through its removals")
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL
        left_at_kill = graph.counts(crashed)["documents"]

        # The removal activity times out on its heartbeat and runs again over the whole list:
        # documents already removed are no-ops.
        worker = process.start(tmp_path / "worker-2.log")
        record = await removing.result()
        counts = graph.counts(crashed)
        assert counts == graph.counts(clean)
    finally:
        stop_process(worker)
        redis_client.close()
        graph.close()

    assert NOTES - len(GONE) < left_at_kill < NOTES
    assert (record.status, record.failed, record.deleted) == ("completed", 0, len(GONE))
    assert (reference.status, reference.deleted) == ("completed", len(GONE))
    assert counts["documents"] == counts["chunks"] == NOTES - len(GONE)
    vectors = make_vector_store(own)  # the worker has stopped: its Edge shard is free to open
    try:
        assert vectors.count(crashed) == vectors.count(clean) == NOTES - len(GONE)
        for n in range(NOTES):
            document_id = f"short-{n:04d}"
            assert vectors.count(crashed, document_id) == vectors.count(clean, document_id) == (n not in GONE)
    finally:
        vectors.close()

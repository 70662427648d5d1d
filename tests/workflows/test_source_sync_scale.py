"""A 5,000-file source syncs through child workflows with every history small."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ingestion.sources import DEFAULT_INCLUDE
from keel.core.domain import SyncRecord, SyncRequest
from keel.stores.redis import make_redis
from keel.stores.sources import SourceRegistry, SourceSpec
from workflows import policies
from workflows.sources import SourceSyncWorkflow

pytestmark = pytest.mark.integration

FILES = 5_000
# Temporal warns at 10,240 events or 10 MB per history and fails at 51,200 / 50 MB. A sync's
# histories must stay far under that, whatever the source's size: they grow with the number
# of batches, never with the number of files or their contents.
MAX_PARENT_EVENTS = 1_000
MAX_CHILD_EVENTS = 30
MAX_HISTORY_BYTES = 512 * 1024


async def _history(client: Client, workflow_id: str, run_id: str | None = None) -> tuple[int, int]:
    """(events, bytes) of one workflow's history."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return len(history.events), sum(event.ByteSize() for event in history.events)


async def test_five_thousand_files_sync_with_bounded_histories(
    platform, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    tenant, root = f"scale{uuid.uuid4().hex[:8]}", tmp_path / "tickets"
    for folder in range(50):
        (root / f"q{folder:02d}").mkdir(parents=True)
    for n in range(FILES):
        (root / f"q{n % 50:02d}" / f"ticket-{n:05d}.txt").write_text(
            f"Ticket {n}\n\nCustomer {n % 97} reported that export job {n} stalled at step {n % 13}."
        )
    client = make_redis(platform.settings.falkordb_url)
    registry = SourceRegistry(client)
    registry.add(SourceSpec("tickets", tenant, str(root), list(DEFAULT_INCLUDE)))
    dense = platform.components.ingestion._dense

    async def sync() -> tuple[WorkflowHandle, SyncRecord]:
        handle = await temporal_env.client.start_workflow(
            SourceSyncWorkflow.run,
            SyncRequest(tenant, "tickets"),
            id=f"sync-scale-{uuid.uuid4().hex[:8]}",
            task_queue=platform.settings.temporal.ingest_queue,
            result_type=SyncRecord,
        )
        return handle, await handle.result()

    try:
        calls = dense.encode_calls
        handle, first = await sync()
        assert (first.status, first.scanned, first.indexed, first.failed) == ("completed", FILES, FILES, 0)
        assert first.embedded_chunks == dense.encode_calls - calls == FILES
        assert platform.components.ingestion._vectors.count(tenant) == FILES

        events, size = await _history(temporal_env.client, handle.id)
        print(f"sync of {FILES} files: parent history {events} events, {size} bytes")
        assert events <= MAX_PARENT_EVENTS and size <= MAX_HISTORY_BYTES
        batches = FILES // policies.SYNC_BATCH_FILES
        children = [
            execution
            async for execution in temporal_env.client.list_workflows(
                f"WorkflowType = 'SourceBatchWorkflow' AND WorkflowId STARTS_WITH '{handle.id}-'"
            )
        ]
        assert len(children) == batches
        for child in children:
            events, size = await _history(temporal_env.client, child.id, child.run_id)
            assert events <= MAX_CHILD_EVENTS and size <= MAX_HISTORY_BYTES // 10

        # Unchanged: a scan and a compare, no embedding, no child workflow.
        calls = dense.encode_calls
        handle, again = await sync()
        assert (again.unchanged, again.indexed, again.embedded_chunks) == (FILES, 0, 0)
        assert dense.encode_calls == calls
    finally:
        registry.remove(tenant, "tickets")
        client.close()

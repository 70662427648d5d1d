"""The Temporal dev server and FalkorDB SIGKILLed and restarted while tasks run: none lost.

Both servers are this test's own (the session's must not go down under other tests), started the
way `keel up` starts them: Temporal with its SQLite file, FalkorDB with its AOF. A worker process
of its own runs the tasks, with the test-only fault hold (keel/core/faults.py) so that some are
inside a step when the servers die. Of six tasks: one was decided and finished before the
restarts, one was decided and is held in finalize, two wait for review across both restarts and
are decided after them, two (no review) are held in generate. Every one completes exactly once,
and every decision is in the audit log once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR
from keel.control.documents import start_batch
from keel.control.reviews import decide
from keel.control.tasks import start_task
from keel.core.domain import ReviewDecision, ReviewMode, TaskRequest, TaskResult
from keel.core.search_attributes import KEEL_STATUS
from keel.core.settings import Settings
from keel.stores.audit import AuditLog
from keel.stores.redis import make_redis
from tests.support.polling import eventually
from tests.support.servers import (
    connect_temporal,
    restartable_falkordb,
    restartable_temporal,
    stop_process,
)
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration]

CHAIN = {"project-halcyon", "system-kestrel", "team-aurora", "person-maya-okafor"}
QUESTION = "Who leads the team that owns the system Project Halcyon depends on?"
REVIEWER, REQUESTER = "ops", "asker"


async def start_many(client: Client, own: Settings, review: ReviewMode, count: int) -> list[WorkflowHandle]:
    request = TaskRequest(QUESTION, review=review, tenant=own.tenant, requester=REQUESTER)
    ids = [await start_task(client, request, own.temporal.task_queue) for _ in range(count)]
    return [client.get_workflow_handle(task_id, result_type=TaskResult) for task_id in ids]


async def all_awaiting_review(handles: Sequence[WorkflowHandle]) -> None:
    async def probe() -> bool:
        statuses = [(await h.describe()).typed_search_attributes.get(KEEL_STATUS) for h in handles]
        return all(status == "awaiting_review" for status in statuses)

    await eventually(probe, 120, "the tasks to wait for review")


async def approve_all(client: Client, own: Settings, handles: Sequence[WorkflowHandle]) -> None:
    for handle in handles:
        await decide(client, own.tenant, handle.id, ReviewDecision(decision="approve", reviewer=REVIEWER))


async def completions(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED for e in history.events)


async def held_at(marker: Path, handles: Sequence[WorkflowHandle]) -> None:
    async def probe() -> bool:
        return marker.exists() and {h.id for h in handles} <= set(marker.read_text().split())

    await eventually(probe, 120, f"the tasks to reach {marker.stem}")


async def test_temporal_and_falkordb_restarts_lose_no_task_and_no_decision(tmp_path: Path) -> None:
    holds = tmp_path / "holds"
    holds.mkdir()
    with (
        restartable_temporal(tmp_path / "temporal") as temporal,
        restartable_falkordb(tmp_path / "falkordb") as falkordb,
    ):
        client = await connect_temporal(temporal.address)
        process = WorkerProcess.isolated(tmp_path, temporal.address, falkordb.address, "restarts").with_env(
            KEEL_FAULTS__PAUSE_AT="generate,finalize", KEEL_FAULTS__PAUSE_DIR=str(holds)
        )
        own = process.settings
        worker = process.start(tmp_path / "worker.log")
        try:
            documents = [d for d in load_documents(CORPUS_DIR, {".md"}) if d[0] in CHAIN]
            batch = await start_batch(client, own, documents, batch_id=f"ingest-{uuid.uuid4().hex[:8]}")
            assert len((await batch.result()).indexed) == len(CHAIN)

            reviewed = await start_many(client, own, "always", 4)
            await all_awaiting_review(reviewed)
            finished_before, held_in_finalize, decided_after = reviewed[:1], reviewed[1:2], reviewed[2:]
            await approve_all(client, own, finished_before)
            await asyncio.wait_for(finished_before[0].result(), timeout=60)
            # Held mid-step through both restarts: one task decided (and audited) before them, in
            # finalize (a local activity: one slot of the worker's two, the other left to the next
            # tasks' short steps); two never reviewed, in generate (a regular activity).
            for step in ("generate", "finalize"):
                (holds / f"{step}.hold").touch()
            await approve_all(client, own, held_in_finalize)
            await held_at(holds / "finalize.reached", held_in_finalize)
            unreviewed = await start_many(client, own, "never", 2)
            await held_at(holds / "generate.reached", unreviewed)

            temporal.kill()
            temporal.start()
            client = await connect_temporal(temporal.address)
            # FalkorDB holds the graph, the audit log, the review queue and the traces.
            falkordb.kill()
            falkordb.start()
            for step in ("generate", "finalize"):
                (holds / f"{step}.hold").unlink()

            # Still waiting for their reviewer, across both restarts.
            await all_awaiting_review(decided_after)
            await approve_all(client, own, decided_after)
            results = await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in [*reviewed, *unreviewed])), timeout=120
            )
            assert worker.poll() is None, "the worker died with a server"
            once = [await completions(h) for h in [*reviewed, *unreviewed]]
        finally:
            stop_process(worker)

        assert [r.status for r in results] == ["completed"] * len(results)
        assert all("Maya Okafor" in (r.answer or "") for r in results)
        assert once == [1] * len(once)
        redis_client = make_redis(falkordb.address)
        try:
            audit = AuditLog(redis_client)
            for handle in reviewed:
                assert [(e.action, e.actor) for e in audit.for_task(own.tenant, handle.id)] == [
                    ("approve", REVIEWER)
                ]
            for handle in unreviewed:
                assert audit.for_task(own.tenant, handle.id) == []
        finally:
            redis_client.close()

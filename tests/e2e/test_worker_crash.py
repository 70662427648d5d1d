"""A worker killed with SIGKILL mid-task, then restarted, finishes the task."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from ingestion.files import load_documents
from keel.demo import CORPUS_DIR
from keel.domain import ReviewDecision, TaskRequest
from keel.ingest_client import start_batch
from keel.services import stop_process
from keel.settings import Settings
from tests.helpers import WorkerProcess, eventually
from workflows.agent import KEEL_STATUS, KEEL_TENANT, AgentWorkflow

pytestmark = [pytest.mark.integration]

CHAIN = {"project-halcyon", "system-kestrel", "team-aurora", "person-maya-okafor"}


async def test_killed_worker_restarts_and_finishes_the_task(
    tmp_path: Path, temporal_env: WorkflowEnvironment, falkordb_url: str, settings: Settings
) -> None:
    process = WorkerProcess.isolated(tmp_path, settings.temporal_address, falkordb_url, "crash")
    own, queue = process.settings, process.settings.temporal.task_queue
    client = temporal_env.client
    worker = process.start(tmp_path / "worker-1.log")
    try:
        documents = [d for d in load_documents(CORPUS_DIR, {".md"}) if d[0] in CHAIN]
        batch = await start_batch(own, documents, batch_id=f"ingest-crash-{uuid.uuid4().hex[:8]}")
        assert len((await batch.result()).indexed) == len(CHAIN)

        task_id = f"task-{uuid.uuid4().hex}"
        handle = await client.start_workflow(
            AgentWorkflow.run,
            TaskRequest(
                question="Who leads the team that owns the system Project Halcyon depends on?",
                review="always",
            ),
            id=task_id,
            task_queue=queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(KEEL_STATUS, "running"), SearchAttributePair(KEEL_TENANT, own.tenant)]
            ),
        )

        async def awaiting() -> bool:
            description = await handle.describe()
            return description.typed_search_attributes.get(KEEL_STATUS) == "awaiting_review"

        await eventually(awaiting, 120, "the task to wait for review")
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL

        # A new worker process replays the history (LangGraph state included) and resumes.
        worker = process.start(tmp_path / "worker-2.log")
        await handle.execute_update(
            AgentWorkflow.submit_review, ReviewDecision(decision="approve", reviewer="ops")
        )
        result = await handle.result()
        assert result.status == "completed" and result.review and result.review.reviewer == "ops"
        assert "Maya Okafor" in (result.answer or "")
        assert {c.document_id for c in result.citations} <= CHAIN
    finally:
        stop_process(worker)

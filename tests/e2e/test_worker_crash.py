"""A worker killed with SIGKILL mid-task, then restarted, finishes the task."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR
from keel.control.documents import start_batch
from keel.control.tasks import start_task
from keel.core.domain import ReviewDecision, TaskRequest, TaskResult
from keel.core.search_attributes import KEEL_STATUS
from keel.core.settings import Settings
from tests.support.polling import eventually
from tests.support.servers import stop_process
from tests.support.workers import WorkerProcess
from workflows.agent import AgentWorkflow

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
        batch = await start_batch(client, own, documents, batch_id=f"ingest-crash-{uuid.uuid4().hex[:8]}")
        assert len((await batch.result()).indexed) == len(CHAIN)

        question = "Who leads the team that owns the system Project Halcyon depends on?"
        task_id = await start_task(client, TaskRequest(question, review="always", tenant=own.tenant), queue)
        handle = client.get_workflow_handle(task_id, result_type=TaskResult)

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

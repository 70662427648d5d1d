"""Agent tasks and ingestion on separate task queues, each served by a worker role of its own."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from keel.app.worker import make_worker
from keel.control import documents
from keel.control.tasks import start_task
from keel.core.domain import TaskRequest, TaskResult
from keel.stores.blobs import BlobStore
from tests.support.polling import eventually
from workflows.ingest import document_workflow_id

pytestmark = pytest.mark.integration


async def picked_up(handle: WorkflowHandle) -> bool:
    """Whether any worker has started a workflow task of this run."""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return True
    return False


async def test_an_upload_through_the_api_runs_on_the_ingest_queue(api, platform, temporal_env) -> None:
    settings = platform.settings
    accepted = await api.post(
        "/v1/documents", json={"title": "Queues", "text": "Ingestion has its own queue."}
    )
    assert accepted.status_code == 202, accepted.text
    handle = temporal_env.client.get_workflow_handle(
        document_workflow_id(settings.tenant, accepted.json()["id"])
    )
    description = await handle.describe()
    assert settings.temporal.ingest_queue == f"{settings.temporal.task_queue}-ingest"
    assert description.task_queue == settings.temporal.ingest_queue


async def test_an_agent_worker_answers_tasks_while_uploads_wait_for_an_ingest_worker(
    platform, demo_corpus, temporal_env
) -> None:
    client, settings = temporal_env.client, platform.settings
    queue = f"roles-{uuid.uuid4().hex[:8]}"
    ingest_queue = f"{queue}-ingest"
    async with make_worker(client, settings, platform.components, task_queue=queue, role="agent") as agent:
        assert agent.task_queues == [queue]
        task_id = await start_task(
            client, TaskRequest("Which team owns Kestrel?", review="never", tenant=settings.tenant), queue
        )
        document_id = f"roles-{uuid.uuid4().hex[:8]}"
        await documents.upload(
            client,
            BlobStore(settings.blob_dir),
            settings.tenant,
            ingest_queue,
            document_id,
            "Roles",
            "Only an ingest worker indexes this.",
            {},
        )
        result = await client.get_workflow_handle(task_id, result_type=TaskResult).result()
        assert result.answer
        upload = client.get_workflow_handle(document_workflow_id(settings.tenant, document_id))
        # The agent worker finished a whole task meanwhile, yet nobody touched the upload.
        assert not await picked_up(upload)
        assert (await documents.document_status(client, settings.tenant, document_id)).status == "pending"
    async with make_worker(client, settings, platform.components, task_queue=queue, role="ingest") as ingest:
        assert ingest.task_queues == [ingest_queue]

        async def indexed() -> bool:
            status = await documents.document_status(client, settings.tenant, document_id)
            assert status.status != "failed", status
            return status.status == "indexed"

        await eventually(indexed, 120, f"document {document_id} to be indexed by the ingest worker")


def test_an_unknown_role_is_refused(platform, temporal_env) -> None:
    with pytest.raises(ValueError, match="role 'both'"):
        make_worker(temporal_env.client, platform.settings, platform.components, role="both")


@pytest.mark.unit
def test_keel_worker_refuses_an_unknown_role() -> None:
    from typer.testing import CliRunner

    from keel.app.cli import app

    result = CliRunner().invoke(app, ["worker", "--role", "both"])
    assert result.exit_code == 2
    assert "expected one of all, agent, ingest" in result.output

"""Starting ingestion from outside the worker (CLI, launcher): blobs first, then the workflow."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import WorkflowHandle

from keel.blobs import BlobStore
from keel.domain import DocumentRef, IngestBatchInput, IngestBatchOutput
from keel.settings import Settings
from keel.temporal import connect
from workflows.ingest import IngestBatchWorkflow


async def start_batch(
    settings: Settings, documents: Sequence[tuple[str, str, str]], batch_id: str
) -> WorkflowHandle[IngestBatchWorkflow, IngestBatchOutput]:
    """Stores each (id, title, text) as a blob and starts one batch workflow over them."""
    blobs = BlobStore(settings.blob_dir)
    refs = [
        DocumentRef(
            tenant=settings.tenant,
            document_id=document_id,
            title=title,
            blob_key=blobs.put_json({"title": title, "text": text}),
            source="cli",
        )
        for document_id, title, text in documents
    ]
    client = await connect(settings)
    return await client.start_workflow(
        IngestBatchWorkflow.run,
        IngestBatchInput(tenant=settings.tenant, documents=refs),
        id=batch_id,
        task_queue=settings.temporal.task_queue,
    )

"""Documents on Temporal: upload one (or a batch), read how its indexing went, delete it.

Texts go to the blob store first and travel as blob keys. Each document has one workflow id
(`document_workflow_id`): its newest upload or deletion supersedes one still running, and that
workflow's outcome is the document's status. All of them run on the ingest task queue
(`TemporalSettings.ingest_queue`), never on the agent's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from keel.control.errors import NotFoundError
from keel.core.domain import DeleteDocument, DocumentRef, IndexedDocument, IngestBatchInput, IngestBatchOutput
from keel.core.errors import failure_reason
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from workflows.ingest import (
    DeleteDocumentWorkflow,
    IngestBatchWorkflow,
    IngestDocumentWorkflow,
    document_workflow_id,
)


@dataclass
class DocumentStatus:
    document_id: str
    status: Literal["pending", "indexed", "failed"]
    ingestion_id: str  # the run of its latest upload
    reason: str | None = None
    indexed: IndexedDocument | None = None


def content_document_id(title: str, text: str) -> str:
    """The id of a document uploaded without one: the same content gets the same id."""
    return "doc-" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:16]


async def upload(
    client: Client,
    blobs: BlobStore,
    tenant: str,
    ingest_queue: str,
    document_id: str,
    title: str,
    text: str,
    metadata: dict[str, Any],
) -> str:
    """Index one document (a newer upload supersedes one still indexing); its ingestion run id."""
    blob_key = blobs.put_json(tenant, {"title": title, "text": text, "metadata": metadata})
    handle = await client.start_workflow(
        IngestDocumentWorkflow.run,
        DocumentRef(tenant=tenant, document_id=document_id, title=title, blob_key=blob_key),
        id=document_workflow_id(tenant, document_id),
        task_queue=ingest_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    return handle.result_run_id or ""


async def document_status(client: Client, tenant: str, document_id: str) -> DocumentStatus:
    """How the document's latest upload went; NotFoundError when none, or deleted since."""
    not_found = NotFoundError(f"no document with id {document_id!r}")
    handle = client.get_workflow_handle(
        document_workflow_id(tenant, document_id), result_type=IndexedDocument
    )
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found from err
        raise
    if description.workflow_type == DeleteDocumentWorkflow.__name__:
        raise not_found  # deleted (or being deleted): the document's latest workflow removed it
    status = DocumentStatus(document_id, "pending", description.run_id)
    if description.status == WorkflowExecutionStatus.RUNNING:
        return status
    try:
        status.indexed = await handle.result()
    except WorkflowFailureError as err:
        status.status, status.reason = "failed", failure_reason(err)
        return status
    status.status = "indexed"
    return status


async def delete(client: Client, tenant: str, ingest_queue: str, document_id: str) -> None:
    """Remove the document from both stores now, with the entities only it mentioned; waits.

    NotFoundError when there was nothing to remove.
    """
    existed = await client.execute_workflow(
        DeleteDocumentWorkflow.run,
        DeleteDocument(tenant, document_id),
        id=document_workflow_id(tenant, document_id),
        task_queue=ingest_queue,
        # The document's own workflow id: a deletion supersedes an ingestion of it still running.
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    if not existed:
        raise NotFoundError(f"no document with id {document_id!r}")


async def start_batch(
    client: Client, settings: Settings, documents: Sequence[tuple[str, str, str]], batch_id: str
) -> WorkflowHandle[IngestBatchWorkflow, IngestBatchOutput]:
    """Stores each (id, title, text) as a blob and starts one batch workflow over them (the
    settings' tenant, ingest queue and blob dir)."""
    blobs = BlobStore(settings.blob_dir)
    refs = [
        DocumentRef(
            tenant=settings.tenant,
            document_id=document_id,
            title=title,
            blob_key=blobs.put_json(settings.tenant, {"title": title, "text": text}),
            source="cli",
        )
        for document_id, title, text in documents
    ]
    return await client.start_workflow(
        IngestBatchWorkflow.run,
        IngestBatchInput(tenant=settings.tenant, documents=refs),
        id=batch_id,
        task_queue=settings.temporal.ingest_queue,
    )

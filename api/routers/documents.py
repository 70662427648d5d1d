"""Documents: upload one for indexing, read its indexing status, delete it."""

from __future__ import annotations

import hashlib
import re

from fastapi import APIRouter, HTTPException, status
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deps import KeelSettings, State, TemporalClient
from api.schemas import DOCUMENT_ID_PATTERN, DocumentAccepted, DocumentDeleted, DocumentIn, DocumentOut
from api.tasks_service import root_cause
from keel.domain import DeleteDocument, DocumentRef, IndexedDocument
from workflows.ingest import DeleteDocumentWorkflow, IngestDocumentWorkflow, document_workflow_id

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=DocumentAccepted)
async def upload_document(
    body: DocumentIn, client: TemporalClient, settings: KeelSettings, state: State
) -> DocumentAccepted:
    document_id = body.id or "doc-" + hashlib.sha256(f"{body.title}\n{body.text}".encode()).hexdigest()[:16]
    blob_key = state.blobs.put_json({"title": body.title, "text": body.text, "metadata": body.metadata})
    handle = await client.start_workflow(
        IngestDocumentWorkflow.run,
        DocumentRef(tenant=settings.tenant, document_id=document_id, title=body.title, blob_key=blob_key),
        id=document_workflow_id(settings.tenant, document_id),
        task_queue=settings.temporal.task_queue,
        # A newer upload of the same document supersedes one still being indexed.
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    return DocumentAccepted(id=document_id, ingestion_id=handle.result_run_id or "")


@router.get("/{document_id}", response_model=DocumentOut)
async def get_document(document_id: str, client: TemporalClient, settings: KeelSettings) -> DocumentOut:
    not_found = HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {document_id!r}")
    if not re.match(DOCUMENT_ID_PATTERN, document_id):
        raise not_found
    handle = client.get_workflow_handle(
        document_workflow_id(settings.tenant, document_id), result_type=IndexedDocument
    )
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found from err
        raise
    if description.workflow_type == DeleteDocumentWorkflow.__name__:
        raise not_found  # deleted (or being deleted): the document's latest workflow removed it
    out = DocumentOut(id=document_id, status="pending", ingestion_id=description.run_id)
    if description.status == WorkflowExecutionStatus.RUNNING:
        return out
    try:
        indexed = await handle.result()
    except WorkflowFailureError as err:
        out.status, out.reason = "failed", root_cause(err)
        return out
    out.status, out.chunks, out.version = "indexed", indexed.chunks, indexed.version
    return out


@router.delete("/{document_id}", response_model=DocumentDeleted)
async def delete_document(
    document_id: str, client: TemporalClient, settings: KeelSettings
) -> DocumentDeleted:
    """Remove the document from both stores now, with the entities only it mentioned.

    A document that came from a registered source comes back at the next sync while its file
    is still there: delete the file instead.
    """
    if not re.match(DOCUMENT_ID_PATTERN, document_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {document_id!r}")
    existed = await client.execute_workflow(
        DeleteDocumentWorkflow.run,
        DeleteDocument(settings.tenant, document_id),
        id=document_workflow_id(settings.tenant, document_id),
        task_queue=settings.temporal.task_queue,
        # The document's own workflow id: a deletion supersedes an ingestion of it still running.
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    if not existed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {document_id!r}")
    return DocumentDeleted(id=document_id, deleted=True)

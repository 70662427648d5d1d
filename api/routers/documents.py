"""Documents: upload one for indexing, read its indexing status, delete it (the caller's tenant's)."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, status

from api.auth import Ingester, UploaderWithinRate
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.request_checks import check_document
from api.schemas import DOCUMENT_ID_PATTERN, DocumentAccepted, DocumentDeleted, DocumentIn, DocumentOut
from api.validation import PathId
from keel.control import documents

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=responses(*AUTHENTICATED, 502))


def _not_found(document_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no document with id {document_id!r}")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=DocumentAccepted)
async def upload_document(body: DocumentIn, caller: UploaderWithinRate, state: State) -> DocumentAccepted:
    """Index the document; a newer upload of the same id supersedes one still being indexed."""
    check_document(body.text, state.settings.limits)
    document_id = body.id or documents.content_document_id(body.title, body.text)
    ingestion_id = await documents.upload(
        state.temporal,
        state.blobs,
        caller.tenant,
        state.settings.temporal.ingest_queue,
        document_id,
        body.title,
        body.text,
        body.metadata,
    )
    return DocumentAccepted(id=document_id, ingestion_id=ingestion_id)


@router.get("/{document_id}", response_model=DocumentOut, responses=responses(404))
async def get_document(document_id: PathId, caller: Ingester, state: State) -> DocumentOut:
    if not re.match(DOCUMENT_ID_PATTERN, document_id):
        raise _not_found(document_id)
    found = await documents.document_status(state.temporal, caller.tenant, document_id)
    indexed = found.indexed
    return DocumentOut(
        id=document_id,
        status=found.status,
        reason=found.reason,
        chunks=indexed.chunks if indexed else None,
        version=indexed.version if indexed else None,
        ingestion_id=found.ingestion_id,
    )


@router.delete("/{document_id}", response_model=DocumentDeleted, responses=responses(404))
async def delete_document(document_id: PathId, caller: Ingester, state: State) -> DocumentDeleted:
    """Remove the document from both stores now, with the entities only it mentioned.

    A document that came from a registered source comes back at the next sync while its file
    is still there: delete the file instead.
    """
    if not re.match(DOCUMENT_ID_PATTERN, document_id):
        raise _not_found(document_id)
    await documents.delete(state.temporal, caller.tenant, state.settings.temporal.ingest_queue, document_id)
    return DocumentDeleted(id=document_id, deleted=True)

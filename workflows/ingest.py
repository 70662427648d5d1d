"""Ingestion workflows: one per document, and a batch that fans documents out as children."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, FailureError
from temporalio.workflow import ParentClosePolicy

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.ingestion import IngestionActivities
    from keel.core.domain import (
        DeleteDocument,
        DocumentRef,
        IndexedDocument,
        IngestBatchInput,
        IngestBatchOutput,
    )
    from keel.core.errors import failure_reason


def document_workflow_id(tenant: str, document_id: str) -> str:
    """One id per document: its latest ingestion is what `GET /v1/documents/{id}` reports.

    "." cannot occur in a tenant id: tenant "a"'s document "b-c" is not tenant "a-b"'s "c".
    """
    return f"ingest-doc-{tenant}.{document_id}"


def _legacy_document_workflow_id(tenant: str, document_id: str) -> str:
    # The id batches used before tenants were separated by "."; replayed histories name it.
    return f"ingest-doc-{tenant}-{document_id}"


TENANT_SEPARATED_IDS = "tenant-separated-ids"


@workflow.defn
class IngestDocumentWorkflow:
    @workflow.run
    async def run(self, ref: DocumentRef) -> IndexedDocument:
        return await workflow.execute_activity_method(
            IngestionActivities.index_document,
            ref,
            start_to_close_timeout=policies.INDEX_DOCUMENT_TIMEOUT,
            heartbeat_timeout=policies.INDEX_DOCUMENT_HEARTBEAT,
            retry_policy=policies.INDEX_DOCUMENT_RETRY,
        )


@workflow.defn
class DeleteDocumentWorkflow:
    """Removes a document from both stores. It runs under the document's workflow id, so it
    supersedes an ingestion of that document still running, and its status is the document's."""

    @workflow.run
    async def run(self, request: DeleteDocument) -> bool:
        return await workflow.execute_activity_method(
            IngestionActivities.delete_document,
            request,
            start_to_close_timeout=policies.INDEX_DOCUMENT_TIMEOUT,
            retry_policy=policies.INDEX_DOCUMENT_RETRY,
        )


@workflow.defn
class IngestBatchWorkflow:
    """Indexes many documents, a few at a time; one failed document never stops the rest."""

    @workflow.run
    async def run(self, batch: IngestBatchInput) -> IngestBatchOutput:
        slots = asyncio.Semaphore(policies.INGEST_CONCURRENCY)
        indexed: list[IndexedDocument] = []
        failed: dict[str, str] = {}

        async def one(ref: DocumentRef) -> None:
            async with slots:
                try:
                    indexed.append(
                        await workflow.execute_child_workflow(
                            IngestDocumentWorkflow.run,
                            ref,
                            id=(
                                document_workflow_id(ref.tenant, ref.document_id)
                                if workflow.patched(TENANT_SEPARATED_IDS)
                                else _legacy_document_workflow_id(ref.tenant, ref.document_id)
                            ),
                            parent_close_policy=ParentClosePolicy.ABANDON,
                        )
                    )
                except (ChildWorkflowError, FailureError) as err:
                    failed[ref.document_id] = failure_reason(err)

        await asyncio.gather(*(one(ref) for ref in batch.documents))
        indexed.sort(key=lambda d: d.document_id)
        return IngestBatchOutput(indexed=indexed, failed=dict(sorted(failed.items())))

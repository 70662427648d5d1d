"""Reading tasks from Temporal: status from execution status + search attribute, step from memo."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from api.schemas import CitationOut, ReviewOut, TaskOut, TaskResultOut
from keel.citations import staleness
from keel.domain import Citation, TaskResult
from retrieval.graph_store import GraphStore

TASK_PREFIX = "task-"
KEEL_STATUS = SearchAttributeKey.for_keyword("KeelStatus")
_FAILED = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What `GET /v1/tasks?status=` asks Temporal's visibility for.
STATUS_QUERIES = {
    "running": "ExecutionStatus = 'Running' AND KeelStatus IN ('running', 'deciding')",
    "awaiting_review": "ExecutionStatus = 'Running' AND KeelStatus = 'awaiting_review'",
    "completed": "ExecutionStatus = 'Completed' AND KeelStatus = 'completed'",
    "rejected": "ExecutionStatus = 'Completed' AND KeelStatus = 'rejected'",
    "failed": "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')",
    "cancelled": "ExecutionStatus = 'Canceled'",
}


def is_task_id(task_id: str) -> bool:
    return task_id.startswith(TASK_PREFIX) and len(task_id) <= 64


def task_status(execution: WorkflowExecution) -> str:
    if execution.status == WorkflowExecutionStatus.CANCELED:
        return "cancelled"
    if execution.status in _FAILED:
        return "failed"
    keel_status = execution.typed_search_attributes.get(KEEL_STATUS) or "running"
    return "running" if keel_status == "deciding" else keel_status


async def describe(client: Client, task_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(task_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def task_view(client: Client, execution: WorkflowExecution) -> TaskOut:
    """A task's status and step, without its result (what lists show)."""
    memo: Mapping[str, Any] = await execution.memo()
    status = task_status(execution)
    return TaskOut(id=execution.id, question=memo.get("question"), status=status, step=memo.get("step"))  # type: ignore[arg-type]


async def task_detail(
    client: Client, execution: WorkflowExecution, graph: GraphStore, tenant: str
) -> TaskOut:
    """A task with its result, whose citations are checked against the documents as they are now."""
    view = await task_view(client, execution)
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=TaskResult)
    if view.status in ("completed", "rejected"):
        view.result = await result_view(await handle.result(), graph, tenant)
    elif view.status == "failed":
        try:
            await handle.result()
        except WorkflowFailureError as err:
            view.reason = root_cause(err)
    return view


async def result_view(result: TaskResult, graph: GraphStore, tenant: str) -> TaskResultOut:
    """The result with each citation's staleness: one graph read for all cited documents.

    Checked on every read and never stored: a document may change at any time after the task.
    """
    cited = [c.document_id for c in result.citations]
    current = await asyncio.to_thread(graph.documents, tenant, cited) if cited else {}
    citations = [_citation_view(c, current.get(c.document_id)) for c in result.citations]
    return TaskResultOut(
        answer=result.answer,
        citations=citations,
        stale=any(c.stale for c in citations),
        review=ReviewOut.model_validate(vars(result.review)) if result.review else None,
        reviews=[ReviewOut.model_validate(vars(r)) for r in result.reviews],
        grounding=result.grounding,
        rounds=result.rounds,
        model=result.model,
    )


def _citation_view(citation: Citation, current: Mapping[str, Any] | None) -> CitationOut:
    reason = staleness(citation.version, current)
    return CitationOut(
        document_id=citation.document_id,
        chunk_id=citation.chunk_id,
        quote=citation.quote,
        version=citation.version,
        file_hash=citation.file_hash,
        modified_at=_iso_time(citation.modified_ns),
        stale=bool(reason),
        stale_reason=reason,
        current_version=str(current.get("version") or "") if current is not None else None,
    )


def _iso_time(ns: int) -> str | None:
    # From whole microseconds: float seconds would round a nanosecond time.
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat() if ns else None


def root_cause(err: BaseException) -> str:
    while getattr(err, "cause", None) is not None:
        err = err.cause  # type: ignore[attr-defined]
    return str(err)

"""Reading tasks from Temporal: status from execution status + search attribute, step from memo."""

from __future__ import annotations

from collections.abc import Mapping
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

from api.schemas import TaskOut, TaskResultOut
from keel.domain import TaskResult

TASK_PREFIX = "task-"
KEEL_STATUS = SearchAttributeKey.for_keyword("KeelStatus")
_FAILED = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}

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


async def task_view(client: Client, execution: WorkflowExecution, with_result: bool) -> TaskOut:
    memo: Mapping[str, Any] = await execution.memo()
    status = task_status(execution)
    view = TaskOut(id=execution.id, question=memo.get("question"), status=status, step=memo.get("step"))  # type: ignore[arg-type]
    if not with_result:
        return view
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=TaskResult)
    if status in ("completed", "rejected"):
        result = await handle.result()
        view.result = TaskResultOut.model_validate(
            {
                "answer": result.answer,
                "citations": [vars(c) for c in result.citations],
                "review": vars(result.review) if result.review else None,
                "grounding": result.grounding,
                "rounds": result.rounds,
                "model": result.model,
            }
        )
    elif status == "failed":
        try:
            await handle.result()
        except WorkflowFailureError as err:
            view.reason = root_cause(err)
    return view


def root_cause(err: BaseException) -> str:
    while getattr(err, "cause", None) is not None:
        err = err.cause  # type: ignore[attr-defined]
    return str(err)

"""Tasks on Temporal: start one, find it, read its status and outcome, cancel it.

A task is an AgentWorkflow whose id is `task-<tenant>.<hex>`: the tenant is part of the id, so
another tenant's caller names a workflow that does not exist for them (and the KeelTenant search
attribute is checked too). Its status comes from the execution status and the KeelStatus search
attribute, its question and step from the memo: no query reaches the worker to list or describe
a task.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from keel.control.errors import ConflictError, NotFoundError
from keel.core.domain import TaskRequest, TaskResult, TaskStatus
from keel.core.errors import failure_reason
from keel.core.identity import check_tenant
from keel.core.search_attributes import KEEL_STATUS, KEEL_TENANT
from workflows.agent import AgentWorkflow

TASK_PREFIX = "task-"
_FAILED = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}
_STATUS = KEEL_STATUS.name

# What a list of tasks in one status asks Temporal's visibility for.
STATUS_QUERIES: dict[TaskStatus, str] = {
    "running": f"ExecutionStatus = 'Running' AND {_STATUS} IN ('running', 'deciding')",
    "awaiting_review": f"ExecutionStatus = 'Running' AND {_STATUS} = 'awaiting_review'",
    "completed": f"ExecutionStatus = 'Completed' AND {_STATUS} = 'completed'",
    "rejected": f"ExecutionStatus = 'Completed' AND {_STATUS} = 'rejected'",
    "failed": "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')",
    "cancelled": "ExecutionStatus = 'Canceled'",
}


@dataclass
class TaskInfo:
    """A task as lists show it: no result (reading one costs a history fetch)."""

    id: str
    question: str | None
    status: TaskStatus
    step: str | None


@dataclass
class TaskOutcome:
    """A task with how it ended: its result when completed or rejected, the reason when failed."""

    info: TaskInfo
    result: TaskResult | None = None
    reason: str | None = None


def task_prefix(tenant: str) -> str:
    # "." cannot occur in a tenant id: tenant "a" never owns the ids of tenant "a-b".
    return f"{TASK_PREFIX}{tenant}."


def is_task_of(tenant: str, task_id: str) -> bool:
    prefix = task_prefix(tenant)
    return task_id.startswith(prefix) and len(task_id) <= len(prefix) + 32


async def start_task(client: Client, request: TaskRequest, task_queue: str) -> str:
    """Start the task's workflow; its id (`task-<tenant>.…`, new each time)."""
    task_id = f"{task_prefix(request.tenant)}{uuid.uuid4().hex}"
    await client.start_workflow(
        AgentWorkflow.run,
        request,
        id=task_id,
        task_queue=task_queue,
        memo={"question": request.question, "status": "running", "step": "queued"},
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(KEEL_STATUS, "running"), SearchAttributePair(KEEL_TENANT, request.tenant)]
        ),
    )
    return task_id


async def find_task(client: Client, tenant: str, task_id: str) -> WorkflowExecutionDescription:
    """The tenant's task; NotFoundError when the tenant has no task with that id."""
    if is_task_of(tenant, task_id):
        try:
            described = await client.get_workflow_handle(task_id).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            if described.typed_search_attributes.get(KEEL_TENANT) == tenant:
                return described
    raise NotFoundError(f"no task with id {task_id!r}")


async def count_running(client: Client, tenant: str) -> int:
    """The tenant's tasks running now (not those waiting for a reviewer: they hold no slot)."""
    query = f"{_of_tenant(tenant)} AND {STATUS_QUERIES['running']}"
    return (await client.count_workflows(query)).count


async def count_tasks(
    client: Client, tenant: str, status: TaskStatus, rpc_timeout: timedelta | None = None
) -> int:
    """The tenant's tasks in one status now (Temporal's visibility)."""
    query = f"{_of_tenant(tenant)} AND {STATUS_QUERIES[status]}"
    return (await client.count_workflows(query, rpc_timeout=rpc_timeout)).count


def _of_tenant(tenant: str) -> str:
    return f"WorkflowType = '{AgentWorkflow.__name__}' AND {KEEL_TENANT.name} = '{check_tenant(tenant)}'"


def task_status(execution: WorkflowExecution) -> TaskStatus:
    if execution.status == WorkflowExecutionStatus.CANCELED:
        return "cancelled"
    if execution.status in _FAILED:
        return "failed"
    keel_status = execution.typed_search_attributes.get(KEEL_STATUS) or "running"
    # "deciding": a reviewer's decision was taken and the task runs on.
    return cast(TaskStatus, "running" if keel_status == "deciding" else keel_status)


async def task_info(execution: WorkflowExecution) -> TaskInfo:
    memo: Mapping[str, Any] = await execution.memo()
    return TaskInfo(execution.id, memo.get("question"), task_status(execution), memo.get("step"))


async def list_tasks(
    client: Client, tenant: str, status: TaskStatus | None, limit: int
) -> AsyncIterator[TaskInfo]:
    """The tenant's tasks, newest first (Temporal's visibility order), in one status if given."""
    query = _of_tenant(tenant)
    if status:
        query += f" AND {STATUS_QUERIES[status]}"
    async for execution in client.list_workflows(query, limit=limit):
        yield await task_info(execution)


async def task_outcome(client: Client, execution: WorkflowExecution) -> TaskOutcome:
    """The task with its result (completed or rejected) or the reason it failed."""
    outcome = TaskOutcome(await task_info(execution))
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=TaskResult)
    if outcome.info.status in ("completed", "rejected"):
        outcome.result = await handle.result()
    elif outcome.info.status == "failed":
        try:
            await handle.result()
        except WorkflowFailureError as err:
            outcome.reason = failure_reason(err)
    return outcome


async def cancel_task(client: Client, tenant: str, task_id: str) -> TaskInfo:
    """Ask a running task to cancel; ConflictError when it has ended already."""
    info = await task_info(await find_task(client, tenant, task_id))
    if info.status not in ("running", "awaiting_review"):
        raise ConflictError(f"task {task_id} is already {info.status}")
    try:
        await client.get_workflow_handle(task_id).cancel()
    except RPCError as err:
        raise ConflictError(f"task {task_id} could not be cancelled: {err.message}") from err
    return info

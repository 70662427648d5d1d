"""Tasks: submit a question, follow it, cancel it, read its trace."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Query, status
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.deps import Graph, KeelSettings, State, TemporalClient
from api.schemas import ObservationOut, TaskAccepted, TaskIn, TaskList, TaskOut, TaskStatusLiteral, TraceOut
from api.tasks_service import STATUS_QUERIES, TASK_PREFIX, describe, is_task_id, task_detail, task_view
from keel.domain import ReviewOverrides, TaskRequest
from keel.tracing import trace_id_for
from workflows.agent import KEEL_STATUS, KEEL_TENANT, AgentWorkflow

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _not_found(task_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TaskAccepted)
async def submit_task(body: TaskIn, client: TemporalClient, settings: KeelSettings) -> TaskAccepted:
    task_id = f"{TASK_PREFIX}{uuid.uuid4().hex}"
    await client.start_workflow(
        AgentWorkflow.run,
        TaskRequest(
            question=body.question,
            review=body.review,
            tenant=settings.tenant,
            requester=body.requester,
            overrides=ReviewOverrides(**body.review_policy.model_dump()),
        ),
        id=task_id,
        task_queue=settings.temporal.task_queue,
        memo={"question": body.question, "status": "running", "step": "queued"},
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(KEEL_STATUS, "running"), SearchAttributePair(KEEL_TENANT, settings.tenant)]
        ),
    )
    return TaskAccepted(id=task_id)


@router.get("", response_model=TaskList)
async def list_tasks(
    client: TemporalClient,
    settings: KeelSettings,
    task_status: TaskStatusLiteral | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=500),
) -> TaskList:
    query = f"WorkflowType = 'AgentWorkflow' AND KeelTenant = '{settings.tenant}'"
    if task_status:
        query += f" AND {STATUS_QUERIES[task_status]}"
    tasks = []
    async for execution in client.list_workflows(query, limit=limit):
        tasks.append(await task_view(client, execution))
    return TaskList(tasks=tasks)


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: str, client: TemporalClient, graph: Graph, settings: KeelSettings) -> TaskOut:
    description = await describe(client, task_id) if is_task_id(task_id) else None
    if description is None:
        raise _not_found(task_id)
    return await task_detail(client, description, graph, settings.tenant)


@router.post("/{task_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=TaskOut)
async def cancel_task(task_id: str, client: TemporalClient) -> TaskOut:
    description = await describe(client, task_id) if is_task_id(task_id) else None
    if description is None:
        raise _not_found(task_id)
    view = await task_view(client, description)
    if view.status not in ("running", "awaiting_review"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is already {view.status}")
    try:
        await client.get_workflow_handle(task_id).cancel()
    except RPCError as err:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"task {task_id} could not be cancelled: {err.message}"
        ) from err
    return view


@router.get("/{task_id}/trace", response_model=TraceOut)
async def get_trace(task_id: str, client: TemporalClient, state: State) -> TraceOut:
    if not is_task_id(task_id) or await describe(client, task_id) is None:
        raise _not_found(task_id)
    observations = state.traces.load(task_id)
    return TraceOut(
        task_id=task_id,
        trace_id=trace_id_for(task_id),
        observations=[ObservationOut.model_validate(vars(o)) for o in observations],
    )

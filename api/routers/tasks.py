"""Tasks: submit a question, follow it, cancel it, read its trace."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from api.deps import Tasks
from api.schemas import TaskAccepted, TaskIn, TaskList, TaskOut, TaskStatusLiteral, TraceOut

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TaskAccepted)
async def submit_task(body: TaskIn, tasks: Tasks) -> TaskAccepted:
    return TaskAccepted(id=await tasks.submit(body))


@router.get("", response_model=TaskList)
async def list_tasks(
    tasks: Tasks,
    task_status: TaskStatusLiteral | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=500),
) -> TaskList:
    return TaskList(tasks=await tasks.list_tasks(task_status, limit))


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: str, tasks: Tasks) -> TaskOut:
    return await tasks.get(task_id)


@router.post("/{task_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=TaskOut)
async def cancel_task(task_id: str, tasks: Tasks) -> TaskOut:
    return await tasks.cancel(task_id)


@router.get("/{task_id}/trace", response_model=TraceOut)
async def get_trace(task_id: str, tasks: Tasks) -> TraceOut:
    return await tasks.trace(task_id)

"""Tasks: submit a question, follow it, cancel it, read its trace. Of the caller's tenant only."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from api.auth import Submitter, SubmitterWithinRate, TaskReader
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.request_checks import check_question, same_principal
from api.schemas import TaskAccepted, TaskIn, TaskList, TaskOut, TaskStatusLiteral, TraceOut
from api.validation import PathId

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=responses(*AUTHENTICATED, 502))


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=TaskAccepted)
async def submit_task(body: TaskIn, caller: SubmitterWithinRate, state: State) -> TaskAccepted:
    """Ask a question; the caller (their key's principal) is its requester."""
    same_principal(body.requester, caller, "requester")
    check_question(body.question, state.settings.limits)
    return TaskAccepted(id=await state.tasks(caller).submit(body))


@router.get("", response_model=TaskList)
async def list_tasks(
    caller: TaskReader,
    state: State,
    task_status: TaskStatusLiteral | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=500),
) -> TaskList:
    return TaskList(tasks=await state.tasks(caller).list_tasks(task_status, limit))


@router.get("/{task_id}", response_model=TaskOut, responses=responses(404))
async def get_task(task_id: PathId, caller: TaskReader, state: State) -> TaskOut:
    return await state.tasks(caller).get(task_id)


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskOut,
    responses=responses(404, 409),
)
async def cancel_task(task_id: PathId, caller: Submitter, state: State) -> TaskOut:
    return await state.tasks(caller).cancel(task_id)


@router.get("/{task_id}/trace", response_model=TraceOut, responses=responses(404))
async def get_trace(task_id: PathId, caller: TaskReader, state: State) -> TraceOut:
    return await state.tasks(caller).trace(task_id)

"""The approval queue: tasks awaiting a reviewer, and their decisions."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import KeelSettings, TemporalClient
from api.schemas import ReviewDone, ReviewIn, ReviewItem, ReviewQueue
from api.tasks_service import STATUS_QUERIES, describe, is_task_id
from keel.domain import ReviewDecision
from workflows.agent import AgentWorkflow

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


@router.get("", response_model=ReviewQueue)
async def review_queue(client: TemporalClient, settings: KeelSettings) -> ReviewQueue:
    query = (
        f"WorkflowType = 'AgentWorkflow' AND KeelTenant = '{settings.tenant}' "
        f"AND {STATUS_QUERIES['awaiting_review']}"
    )
    items = []
    async for execution in client.list_workflows(query, limit=500):
        memo = await execution.memo()
        items.append(
            ReviewItem(
                task_id=execution.id,
                question=memo.get("question"),
                draft=memo.get("draft"),
                reason=memo.get("review_reason"),
            )
        )
    return ReviewQueue(items=items)


@router.post("/{task_id}", response_model=ReviewDone)
async def decide(task_id: str, body: ReviewIn, client: TemporalClient) -> ReviewDone:
    if not is_task_id(task_id) or await describe(client, task_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}")
    decision = ReviewDecision(
        decision=body.decision,
        reviewer=body.reviewer.strip(),
        reason=body.reason or "",
        answer=body.answer or "",
    )
    try:
        ack = await client.get_workflow_handle(task_id).execute_update(AgentWorkflow.submit_review, decision)
    except WorkflowUpdateFailedError as err:
        reason = str(err.cause) if err.cause else "the decision was refused"
        raise HTTPException(status.HTTP_409_CONFLICT, reason) from err
    except RPCError as err:
        # An update to a finished workflow fails as an RPC error, not an update failure.
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is not awaiting review") from err
        raise
    return ReviewDone(task_id=ack.task_id, decision=ack.decision)

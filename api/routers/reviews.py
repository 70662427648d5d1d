"""The approval queue: tasks awaiting a reviewer, claims, and decisions.

The list comes from the queue's index, which the workflows keep (keel/review_queue.py); one
item is read from its workflow. A claim or a decision is a workflow update, which is where
conflicts are settled (its validator's refusal is the 409 a second reviewer gets).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Graph, KeelSettings, State, TemporalClient
from api.schemas import (
    NAME_PATTERN,
    ClaimIn,
    ClaimOut,
    ReviewDetail,
    ReviewDone,
    ReviewFilter,
    ReviewIn,
    ReviewItem,
    ReviewQueue,
    ReviewStateOut,
)
from api.tasks_service import describe, is_task_id, result_view
from keel.domain import ReviewClaim, ReviewDecision, ReviewDraft, ReviewState, TaskResult
from keel.review_queue import QueueFilter, ReviewQueueIndex, select, with_live_claim
from keel.settings import Settings
from keel.tracing import trace_id_for
from workflows.agent import AgentWorkflow

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

Name = Annotated[str | None, Query(pattern=NAME_PATTERN)]


@router.get("", response_model=ReviewQueue)
async def review_queue(
    state: State,
    settings: KeelSettings,
    show: ReviewFilter = "open",
    reviewer: Name = None,
    group: Name = None,
    reason: Name = None,
    min_age_s: Annotated[float | None, Query(ge=0)] = None,
    max_age_s: Annotated[float | None, Query(ge=0)] = None,
) -> ReviewQueue:
    """Tasks awaiting review, oldest first. `show=open` (the default) hides items other
    reviewers hold a live claim on; `reviewer` keeps that reviewer's own claims in view.

    Read from the queue's index (keel/review_queue.py), which the workflows keep.
    """
    wanted = QueueFilter(show, reviewer or "", group or "", reason or "", min_age_s, max_age_s)
    entries = await asyncio.to_thread(ReviewQueueIndex(state.redis).entries, settings.tenant)
    items = [
        ReviewItem(
            task_id=entry["task_id"],
            question=entry["question"],
            draft=entry["draft"],
            reason=entry["reason"],
            age_s=entry["age_s"],
            review=ReviewStateOut.model_validate(entry["review"]),
        )
        for entry in select(entries, wanted, datetime.now(UTC))
    ]
    return ReviewQueue(items=items)


@router.get("/{task_id}", response_model=ReviewDetail)
async def review_item(
    task_id: str, client: TemporalClient, settings: KeelSettings, graph: Graph
) -> ReviewDetail:
    """One item in full, read from the workflow itself (not visibility): always current."""
    described = await _known_task(client, task_id)
    if described.status != WorkflowExecutionStatus.RUNNING:
        # A closed workflow still answers queries (by replaying its history): a task terminated
        # while it waited would look reviewable.
        raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is not awaiting review")
    review: ReviewState = await _query_review(client, task_id, AgentWorkflow.review_state)
    draft: ReviewDraft = await _query_review(client, task_id, AgentWorkflow.review_draft)
    memo = await described.memo()
    now = datetime.now(UTC)
    return ReviewDetail(
        task_id=task_id,
        question=memo.get("question"),
        draft=draft.answer,
        citations=await _citations(draft, graph, settings.tenant),
        review=ReviewStateOut.model_validate(with_live_claim(vars(review), now)),
        trace_url=trace_url(settings, task_id),
        temporal_url=temporal_url(settings, task_id),
        context_key=draft.context_key,
    )


async def _citations(draft: ReviewDraft, graph: Graph, tenant: str) -> list[Any]:
    # Staleness as the task's result shows it: a cited document may have changed meanwhile.
    shown = TaskResult("completed", draft.answer, list(draft.citations), 0.0, 0, "")
    return (await result_view(shown, graph, tenant)).citations


def trace_url(settings: Settings, task_id: str) -> str:
    tracing = settings.tracing
    if tracing.langfuse_enabled:
        return f"{tracing.langfuse_host.rstrip('/')}/trace/{trace_id_for(task_id)}"
    return f"/v1/tasks/{task_id}/trace"


def temporal_url(settings: Settings, task_id: str) -> str:
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal.namespace}/workflows/{task_id}"
    )


@router.post("/{task_id}/claim", response_model=ClaimOut)
async def claim(task_id: str, body: ClaimIn, client: TemporalClient) -> ClaimOut:
    """Hide the item from other reviewers for the policy's lease (claiming again renews it)."""
    await _known_task(client, task_id)
    ack = await _update(client, task_id, AgentWorkflow.claim_review, ReviewClaim(body.reviewer))
    return ClaimOut(**vars(ack))


@router.post("/{task_id}/release", response_model=ClaimOut)
async def release(task_id: str, body: ClaimIn, client: TemporalClient) -> ClaimOut:
    await _known_task(client, task_id)
    ack = await _update(client, task_id, AgentWorkflow.release_review, ReviewClaim(body.reviewer))
    return ClaimOut(**vars(ack))


@router.post("/{task_id}", response_model=ReviewDone)
async def decide(task_id: str, body: ReviewIn, client: TemporalClient) -> ReviewDone:
    await _known_task(client, task_id)
    kept = None
    if body.citations is not None:
        draft: ReviewDraft = await _query_review(client, task_id, AgentWorkflow.review_draft)
        wanted = set(body.citations)
        unknown = wanted - {c.chunk_id for c in draft.citations}
        if unknown:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"not cited by the draft: {', '.join(sorted(unknown))}"
            )
        kept = [c for c in draft.citations if c.chunk_id in wanted]
    decision = ReviewDecision(
        decision=body.decision,
        reviewer=body.reviewer,
        reason=body.reason or "",
        answer=body.answer or "",
        citations=kept,
        instruction=body.instruction or "",
        round=body.round,
    )
    ack = await _update(client, task_id, AgentWorkflow.submit_review, decision)
    return ReviewDone(task_id=ack.task_id, decision=ack.decision)


async def _query_review(client: Client, task_id: str, query: Any) -> Any:
    """A review query's answer; 409 when the task is not awaiting review (None, or closed)."""
    try:
        answer = await client.get_workflow_handle(task_id).query(query)
    except RPCError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is not awaiting review") from err
    if answer is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is not awaiting review")
    return answer


async def _known_task(client: Client, task_id: str) -> WorkflowExecutionDescription:
    found = await describe(client, task_id) if is_task_id(task_id) else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}")
    return found


async def _update(client: Client, task_id: str, update: Any, arg: Any) -> Any:
    """Run a review update; its validator's refusal (stale, conflicting, not allowed) is a 409."""
    try:
        return await client.get_workflow_handle(task_id).execute_update(update, arg)
    except WorkflowUpdateFailedError as err:
        # The validator's own words ("claimed by sam until …"), not the exception's type name.
        reason = getattr(err.cause, "message", None) or str(err.cause or "the decision was refused")
        raise HTTPException(status.HTTP_409_CONFLICT, reason) from err
    except RPCError as err:
        # An update to a finished workflow fails as an RPC error, not an update failure.
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is not awaiting review") from err
        raise

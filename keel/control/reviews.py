"""A task's review, from outside the workflow: read what waits for a reviewer, send claims and
decisions as workflow updates.

Conflicts are settled in the workflow: its update validators refuse a stale round, another
reviewer's live claim, a four-eyes breach or a task no longer awaiting review, and their words
come back here as a ConflictError (the API's 409).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from keel.control.errors import ConflictError, InvalidRequestError
from keel.control.tasks import find_task
from keel.core.domain import ClaimAck, ReviewAck, ReviewClaim, ReviewDecision, ReviewDraft, ReviewState
from workflows.agent import AgentWorkflow


def _not_awaiting(task_id: str) -> ConflictError:
    return ConflictError(f"task {task_id} is not awaiting review")


@dataclass
class UnderReview:
    """A task waiting for a reviewer: its question, the review's state and the draft under it."""

    task_id: str
    question: str | None
    review: ReviewState
    draft: ReviewDraft


async def under_review(client: Client, tenant: str, task_id: str) -> UnderReview:
    """What the task waits for, read from the workflow itself (not visibility): always current."""
    described = await find_task(client, tenant, task_id)
    if described.status != WorkflowExecutionStatus.RUNNING:
        # A closed workflow still answers queries (by replaying its history): a task terminated
        # while it waited would look reviewable.
        raise _not_awaiting(task_id)
    review: ReviewState = await _query(client, task_id, AgentWorkflow.review_state)
    draft: ReviewDraft = await _query(client, task_id, AgentWorkflow.review_draft)
    memo = await described.memo()
    return UnderReview(task_id, memo.get("question"), review, draft)


async def claim(client: Client, tenant: str, task_id: str, reviewer: str) -> ClaimAck:
    """Hide the item from other reviewers for the policy's lease (claiming again renews it)."""
    await find_task(client, tenant, task_id)
    return await _update(client, task_id, AgentWorkflow.claim_review, ReviewClaim(reviewer))


async def release(client: Client, tenant: str, task_id: str, reviewer: str) -> ClaimAck:
    await find_task(client, tenant, task_id)
    return await _update(client, task_id, AgentWorkflow.release_review, ReviewClaim(reviewer))


async def decide(
    client: Client,
    tenant: str,
    task_id: str,
    decision: ReviewDecision,
    keep: Sequence[str] | None = None,
) -> ReviewAck:
    """Send the decision. `keep` (an edit): chunk ids of the draft's citations to keep, each one a
    citation of the draft (else InvalidRequestError); None keeps them all."""
    await find_task(client, tenant, task_id)
    if keep is not None:
        draft: ReviewDraft = await _query(client, task_id, AgentWorkflow.review_draft)
        unknown = set(keep) - {c.chunk_id for c in draft.citations}
        if unknown:
            raise InvalidRequestError(f"not cited by the draft: {', '.join(sorted(unknown))}")
        decision = replace(decision, citations=[c for c in draft.citations if c.chunk_id in set(keep)])
    return await _update(client, task_id, AgentWorkflow.submit_review, decision)


async def _query(client: Client, task_id: str, query: Any) -> Any:
    """A review query's answer; ConflictError when the task is not awaiting review."""
    try:
        answer = await client.get_workflow_handle(task_id).query(query)
    except RPCError as err:
        raise _not_awaiting(task_id) from err
    if answer is None:
        raise _not_awaiting(task_id)
    return answer


async def _update(client: Client, task_id: str, update: Any, arg: Any) -> Any:
    """Run a review update; its validator's refusal (stale, conflicting, not allowed) is a conflict."""
    try:
        return await client.get_workflow_handle(task_id).execute_update(update, arg)
    except WorkflowUpdateFailedError as err:
        # The validator's own words ("claimed by sam until …"), not the exception's type name.
        reason = getattr(err.cause, "message", None) or str(err.cause or "the decision was refused")
        raise ConflictError(reason) from err
    except RPCError as err:
        # An update to a finished workflow fails as an RPC error, not an update failure.
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise _not_awaiting(task_id) from err
        raise

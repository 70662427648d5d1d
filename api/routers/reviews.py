"""The approval queue: tasks awaiting a reviewer, claims, and decisions (api/services/reviews.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Reviewer, ReviewerWithinRate
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.request_checks import same_principal
from api.schemas import (
    NAME_PATTERN,
    ClaimIn,
    ClaimOut,
    ReviewDetail,
    ReviewDone,
    ReviewFilter,
    ReviewIn,
    ReviewQueue,
)
from api.validation import PathId
from keel.core.review_queue import QueueFilter

router = APIRouter(prefix="/v1/reviews", tags=["reviews"], responses=responses(*AUTHENTICATED, 502))
_STATEFUL = responses(404, 409)

Name = Annotated[str | None, Query(pattern=NAME_PATTERN)]


@router.get("", response_model=ReviewQueue)
async def review_queue(
    caller: Reviewer,
    state: State,
    show: ReviewFilter = "open",
    group: Name = None,
    reason: Name = None,
    min_age_s: Annotated[float | None, Query(ge=0)] = None,
    max_age_s: Annotated[float | None, Query(ge=0)] = None,
) -> ReviewQueue:
    """Tasks of the caller's tenant awaiting review, oldest first. `show=open` (the default)
    hides items other reviewers hold a live claim on; the caller's own claims stay in view."""
    wanted = QueueFilter(show, caller.name, group or "", reason or "", min_age_s, max_age_s)
    return await state.reviews(caller).queue(wanted)


@router.get("/{task_id}", response_model=ReviewDetail, responses=responses(404))
async def review_item(task_id: PathId, caller: Reviewer, state: State) -> ReviewDetail:
    """One item in full, read from the workflow itself: always current."""
    return await state.reviews(caller).item(task_id)


@router.post("/{task_id}/claim", response_model=ClaimOut, responses=_STATEFUL)
async def claim(
    task_id: PathId, caller: ReviewerWithinRate, state: State, body: ClaimIn | None = None
) -> ClaimOut:
    """Hide the item from other reviewers for the policy's lease (claiming again renews it)."""
    same_principal(body.reviewer if body else None, caller, "reviewer")
    return await state.reviews(caller).claim(task_id)


@router.post("/{task_id}/release", response_model=ClaimOut, responses=_STATEFUL)
async def release(
    task_id: PathId, caller: ReviewerWithinRate, state: State, body: ClaimIn | None = None
) -> ClaimOut:
    same_principal(body.reviewer if body else None, caller, "reviewer")
    return await state.reviews(caller).release(task_id)


@router.post("/{task_id}", response_model=ReviewDone, responses=_STATEFUL)
async def decide(task_id: PathId, body: ReviewIn, caller: ReviewerWithinRate, state: State) -> ReviewDone:
    """Decide as the caller (the key's principal): four-eyes and the audit trail name them."""
    same_principal(body.reviewer, caller, "reviewer")
    return await state.reviews(caller).decide(task_id, body)

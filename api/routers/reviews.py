"""The approval queue: tasks awaiting a reviewer, claims, and decisions (api/services/reviews.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Reviews
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
from keel.core.review_queue import QueueFilter

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])

Name = Annotated[str | None, Query(pattern=NAME_PATTERN)]


@router.get("", response_model=ReviewQueue)
async def review_queue(
    reviews: Reviews,
    show: ReviewFilter = "open",
    reviewer: Name = None,
    group: Name = None,
    reason: Name = None,
    min_age_s: Annotated[float | None, Query(ge=0)] = None,
    max_age_s: Annotated[float | None, Query(ge=0)] = None,
) -> ReviewQueue:
    """Tasks awaiting review, oldest first. `show=open` (the default) hides items other
    reviewers hold a live claim on; `reviewer` keeps that reviewer's own claims in view."""
    wanted = QueueFilter(show, reviewer or "", group or "", reason or "", min_age_s, max_age_s)
    return await reviews.queue(wanted)


@router.get("/{task_id}", response_model=ReviewDetail)
async def review_item(task_id: str, reviews: Reviews) -> ReviewDetail:
    """One item in full, read from the workflow itself: always current."""
    return await reviews.item(task_id)


@router.post("/{task_id}/claim", response_model=ClaimOut)
async def claim(task_id: str, body: ClaimIn, reviews: Reviews) -> ClaimOut:
    """Hide the item from other reviewers for the policy's lease (claiming again renews it)."""
    return await reviews.claim(task_id, body.reviewer)


@router.post("/{task_id}/release", response_model=ClaimOut)
async def release(task_id: str, body: ClaimIn, reviews: Reviews) -> ClaimOut:
    return await reviews.release(task_id, body.reviewer)


@router.post("/{task_id}", response_model=ReviewDone)
async def decide(task_id: str, body: ReviewIn, reviews: Reviews) -> ReviewDone:
    return await reviews.decide(task_id, body)

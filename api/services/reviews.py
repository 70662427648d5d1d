"""The approval queue as the API and the reviewer page both use it: the list, one item, claims
and decisions. Raises ControlError kinds; the JSON routes and the page each show them their way.

The list comes from the queue's index, which the workflows keep (keel/stores/review_index.py);
one item is read from its workflow. A claim or a decision is a workflow update, which is where
conflicts are settled (its validator's refusal is the 409 a second reviewer gets).

Built for one caller (through their task service): the queue, items, claims and decisions are
of the caller's tenant, and the caller is the reviewer of every claim and decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime

from temporalio.client import Client

from api.schemas import ClaimOut, ReviewDetail, ReviewDone, ReviewIn, ReviewItem, ReviewQueue, ReviewStateOut
from api.services.tasks import TaskService
from keel.control import reviews
from keel.core.domain import ReviewDecision
from keel.core.review_queue import QueueFilter, select, with_live_claim
from keel.core.settings import Settings
from keel.core.tracing import trace_id_for
from keel.stores.review_index import ReviewQueueIndex


class ReviewService:
    def __init__(
        self, client: Client, index: ReviewQueueIndex, tasks: TaskService, settings: Settings
    ) -> None:
        self._client = client
        self._index = index
        self._tasks = tasks
        self._settings = settings

    async def queue(self, wanted: QueueFilter) -> ReviewQueue:
        """Tasks awaiting review, oldest first, as the filter keeps them (claims as of now)."""
        entries = await asyncio.to_thread(self._index.entries, self._tasks.tenant)
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

    async def item(self, task_id: str) -> ReviewDetail:
        """One item in full, read from the workflow itself (not visibility): always current."""
        waiting = await reviews.under_review(self._client, self._tasks.tenant, task_id)
        review = with_live_claim(asdict(waiting.review), datetime.now(UTC))
        return ReviewDetail(
            task_id=task_id,
            question=waiting.question,
            draft=waiting.draft.answer,
            # Staleness as the task's result shows it: a cited document may have changed meanwhile.
            citations=await self._tasks.citation_views(waiting.draft.citations),
            review=ReviewStateOut.model_validate(review),
            trace_url=self.trace_url(task_id),
            temporal_url=self.temporal_url(task_id),
            context_key=waiting.draft.context_key,
        )

    @property
    def reviewer(self) -> str:
        return self._tasks.caller.name

    async def claim(self, task_id: str) -> ClaimOut:
        ack = await reviews.claim(self._client, self._tasks.tenant, task_id, self.reviewer)
        return ClaimOut(**vars(ack))

    async def release(self, task_id: str) -> ClaimOut:
        ack = await reviews.release(self._client, self._tasks.tenant, task_id, self.reviewer)
        return ClaimOut(**vars(ack))

    async def decide(self, task_id: str, body: ReviewIn) -> ReviewDone:
        decision = ReviewDecision(
            decision=body.decision,
            reviewer=self.reviewer,
            reason=body.reason or "",
            answer=body.answer or "",
            instruction=body.instruction or "",
            round=body.round,
        )
        ack = await reviews.decide(self._client, self._tasks.tenant, task_id, decision, keep=body.citations)
        return ReviewDone(task_id=ack.task_id, decision=ack.decision)

    def trace_url(self, task_id: str) -> str:
        tracing = self._settings.tracing
        if tracing.langfuse_enabled:
            return f"{tracing.langfuse_host.rstrip('/')}/trace/{trace_id_for(task_id)}"
        return f"/v1/tasks/{task_id}/trace"

    def temporal_url(self, task_id: str) -> str:
        ui, namespace = self._settings.temporal_ui_url.rstrip("/"), self._settings.temporal.namespace
        return f"{ui}/namespaces/{namespace}/workflows/{task_id}"

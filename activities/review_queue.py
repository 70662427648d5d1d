"""Keeping the review queue's index in step with the workflows (the workflow calls this)."""

from __future__ import annotations

from temporalio import activity

from keel.core.domain import ReviewQueueEntry
from keel.stores.review_index import ReviewQueueIndex


class ReviewQueueActivities:
    def __init__(self, index: ReviewQueueIndex) -> None:
        self._index = index

    @activity.defn(name="reviews.publish")
    def publish(self, entry: ReviewQueueEntry) -> None:
        """Write (or, with no review, remove) the task's entry; idempotent, last write wins."""
        self._index.publish(entry)

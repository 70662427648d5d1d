"""The review queue as a reviewer sees it: who holds a claim, and which items a filter keeps.

Pure functions over the queue's entries (keel/stores/review_index.py keeps them in Redis): the
workflow's validators and the queue's views decide claims alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Show = Literal["open", "claimed", "all"]


@dataclass(frozen=True)
class QueueFilter:
    show: Show = "open"  # open: hide items someone else holds a live claim on
    reviewer: str = ""  # whose view: their own claims stay in "open"
    group: str = ""
    reason: str = ""  # a reason's kind, e.g. "weak grounding"
    min_age_s: float | None = None
    max_age_s: float | None = None


def claim_holder(claimed_by: str, lease_until: str, now: datetime) -> str:
    """Who holds a live claim ("" when nobody does, or the lease ran out): the workflow's
    validators and the queue's views decide it alike."""
    if not claimed_by or not lease_until or datetime.fromisoformat(lease_until) <= now:
        return ""
    return claimed_by


def with_live_claim(review: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The review as of now: a claim whose lease ran out holds nothing and shows nothing."""
    if claim_holder(review["claimed_by"], review["lease_until"], now):
        return review
    return {**review, "claimed_by": "", "lease_until": ""}


def reason_kind(reason: str) -> str:
    """'weak grounding (0.31 < 0.50)' -> 'weak grounding': what the queue filters on."""
    return reason.split(" (", 1)[0]


def select(entries: list[dict[str, Any]], wanted: QueueFilter, now: datetime) -> list[dict[str, Any]]:
    """The entries the filter keeps, oldest request first, with their claims as of now and ages."""
    kept = []
    for entry in entries:
        review = with_live_claim(entry["review"], now)
        holder = review["claimed_by"]
        age_s = (now - datetime.fromisoformat(review["requested_at"])).total_seconds()
        if wanted.show == "open" and holder and holder != wanted.reviewer:
            continue
        if wanted.show == "claimed" and not holder:
            continue
        if wanted.group and review["group"] != wanted.group:
            continue
        if wanted.reason and wanted.reason not in {reason_kind(r) for r in review["reasons"]}:
            continue
        if wanted.min_age_s is not None and age_s < wanted.min_age_s:
            continue
        if wanted.max_age_s is not None and age_s > wanted.max_age_s:
            continue
        kept.append({**entry, "review": review, "age_s": round(age_s, 3)})
    kept.sort(key=lambda entry: -entry["age_s"])
    return kept

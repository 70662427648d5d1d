"""The review queue as reviewers see it: live claims and filters, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keel.core.review_queue import QueueFilter, claim_holder, reason_kind, select, with_live_claim

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def _entry(task_id: str, age_min: float, claimed_by: str = "", lease_min: float = 0, **review: Any) -> dict:
    return {
        "task_id": task_id,
        "review": {
            "requested_at": _at(-age_min),
            "claimed_by": claimed_by,
            "lease_until": _at(lease_min) if claimed_by else "",
            "group": "reviewers",
            "reasons": ["weak grounding (0.31 < 0.50)"],
            **review,
        },
    }


def test_a_claim_holds_only_until_its_lease_ends() -> None:
    assert claim_holder("sam", _at(5), NOW) == "sam"
    assert claim_holder("sam", _at(0), NOW) == ""  # ends exactly now: free
    assert claim_holder("sam", "", NOW) == "" and claim_holder("", _at(5), NOW) == ""
    expired = with_live_claim({"claimed_by": "sam", "lease_until": _at(-1)}, NOW)
    assert expired == {"claimed_by": "", "lease_until": ""}


def test_open_hides_others_live_claims_but_keeps_ones_own_oldest_first() -> None:
    entries = [
        _entry("new", 1),
        _entry("sams", 30, claimed_by="sam", lease_min=10),
        _entry("ritas", 20, claimed_by="rita", lease_min=10),
        _entry("lapsed", 60, claimed_by="rita", lease_min=-1),
    ]
    shown = [e["task_id"] for e in select(entries, QueueFilter(reviewer="sam"), NOW)]
    assert shown == ["lapsed", "sams", "new"]
    claimed = select(entries, QueueFilter(show="claimed"), NOW)
    assert [e["task_id"] for e in claimed] == ["sams", "ritas"]
    assert [e["task_id"] for e in select(entries, QueueFilter(show="all"), NOW)] == [
        "lapsed",
        "sams",
        "ritas",
        "new",
    ]


def test_filters_by_group_reason_and_age() -> None:
    entries = [
        _entry("legal", 10, group="legal", reasons=["sensitive content (1 match)"]),
        _entry("weak", 90),
    ]
    assert [e["task_id"] for e in select(entries, QueueFilter(group="legal"), NOW)] == ["legal"]
    assert [e["task_id"] for e in select(entries, QueueFilter(reason="weak grounding"), NOW)] == ["weak"]
    assert [e["task_id"] for e in select(entries, QueueFilter(min_age_s=3600), NOW)] == ["weak"]
    assert [e["task_id"] for e in select(entries, QueueFilter(max_age_s=3600), NOW)] == ["legal"]
    assert select(entries, QueueFilter(show="all"), NOW)[0]["age_s"] == 5400.0
    assert reason_kind("weak grounding (0.31 < 0.50)") == "weak grounding"

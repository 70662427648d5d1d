"""The agent's decisions after grading, without a server: next hop, another round, review."""

from __future__ import annotations

from typing import Any

import pytest

from keel.core.decisions import (
    CHANGES_REQUESTED,
    NEXT_HOP_ENTITIES,
    needs_another_round,
    needs_review,
    next_hop_entities,
    refined_query,
    why_review,
)

pytestmark = pytest.mark.unit


def _key(name: str) -> str:
    return name.casefold()


def test_next_hop_entities_are_the_passages_names_the_question_lacks_first_seen_first() -> None:
    found = ["Project Halcyon", "Kestrel", "Team Aurora", "PROJECT HALCYON", "Kestrel", "Maya Okafor"]
    expected = ["Kestrel", "Team Aurora", "Maya Okafor"]
    assert next_hop_entities(["Project Halcyon"], found, _key) == expected


def test_next_hop_entities_are_capped() -> None:
    found = [f"Name{i}" for i in range(20)]
    assert next_hop_entities([], found, _key) == found[:NEXT_HOP_ENTITIES]
    assert next_hop_entities([], found, _key, limit=2) == ["Name0", "Name1"]
    assert next_hop_entities(["Kestrel"], ["kestrel"], _key) == []


def _round(**overrides: Any) -> bool:
    values: dict[str, Any] = {
        "grounding": 0.9,
        "threshold": 0.5,
        "multi_hop": False,
        "round": 1,
        "max_rounds": 2,
        "next_entities": ["Kestrel"],
        "reviewed": False,
    }
    return needs_another_round(**{**values, **overrides})


@pytest.mark.parametrize(
    ("overrides", "again"),
    [
        ({}, False),  # well grounded, one hop: done
        ({"grounding": 0.3}, True),  # weak: look further
        ({"multi_hop": True}, True),  # a chain: follow it once...
        ({"multi_hop": True, "round": 2, "max_rounds": 3}, False),  # ...only once
        ({"grounding": 0.3, "round": 2}, False),  # no rounds left
        ({"grounding": 0.3, "next_entities": []}, False),  # nowhere to go
        ({"grounding": 0.3, "multi_hop": True, "reviewed": True}, False),  # back to the reviewer
        ({"grounding": 0.5}, False),  # the threshold itself is grounded enough
    ],
)
def test_needs_another_round(overrides: dict[str, Any], again: bool) -> None:
    assert _round(**overrides) is again


def test_refined_query_adds_the_next_hop_to_the_question() -> None:
    assert refined_query("Who owns it?", ["Kestrel", "Team Aurora"]) == "Who owns it? Kestrel Team Aurora"
    assert refined_query("Who owns it?", []) == "Who owns it?"


def test_a_draft_a_reviewer_asked_for_goes_back_to_them_whatever_the_policy_says() -> None:
    assert why_review([], reviewed=True) == [CHANGES_REQUESTED]
    assert why_review(["review requested"], reviewed=True) == [CHANGES_REQUESTED, "review requested"]
    assert why_review(["weak grounding (0.31 < 0.50)"], reviewed=False) == ["weak grounding (0.31 < 0.50)"]
    assert why_review([], reviewed=False) == []


def test_a_draft_about_to_be_redone_goes_to_no_reviewer_yet() -> None:
    assert needs_review(["review requested"], another_round=False)
    assert not needs_review(["review requested"], another_round=True)
    assert not needs_review([], another_round=False)


def test_a_reason_from_the_sources_stays_through_a_reviewers_round() -> None:
    found = "instructions in sources (inj#0000)"
    assert why_review([found], reviewed=True) == [CHANGES_REQUESTED, found]
    assert needs_review(why_review([found], reviewed=False), another_round=False)

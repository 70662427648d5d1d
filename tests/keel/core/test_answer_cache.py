"""What the answer cache may keep and serve: policy digests, cacheable results, question guards."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from keel.core.answer_cache import (
    approved_by,
    cacheable,
    cited_versions,
    review_policy_digest,
    same_specifics,
    same_wording,
)
from keel.core.chunks import Citation
from keel.core.domain import ReviewOverrides, ReviewRecord, TaskResult
from keel.core.settings import ReviewPolicySettings

pytestmark = pytest.mark.unit

PAIRS = Path(__file__).parents[3] / "bench" / "data" / "paraphrases.jsonl"
CITED = [
    Citation("kestrel", "kestrel#0000", "Kestrel streams events.", "v2"),
    Citation("aurora", "aurora#0001", "q", "v7"),
]


def result(**changes: object) -> TaskResult:
    answered = TaskResult("completed", "Kestrel streams events.", CITED, grounding=0.9, rounds=1, model="m")
    return replace(answered, **changes)  # type: ignore[arg-type]


def review(decision: str, reviewer: str = "rita") -> ReviewRecord:
    return ReviewRecord(decision, reviewer, "2026-12-04T12:00:00+00:00", "", "a", "a", False, "")  # type: ignore[arg-type]


# --- review_policy_digest ---------------------------------------------------------------------


def test_the_digest_is_short_stable_and_ignores_what_does_not_decide_review() -> None:
    policy = ReviewPolicySettings()
    digest = review_policy_digest("auto", policy, ReviewOverrides(), 0.5)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert review_policy_digest("auto", ReviewPolicySettings(), ReviewOverrides(), 0.5) == digest
    # How long a review may wait, or a lease lasts, does not decide whether an answer needs one.
    assert (
        review_policy_digest(
            "auto", policy.model_copy(update={"deadline_s": 60.0, "lease_s": 5.0}), ReviewOverrides(), 0.5
        )
        == digest
    )


@pytest.mark.parametrize(
    ("mode", "policy", "overrides", "default"),
    [
        ("always", {}, {}, 0.5),
        ("never", {}, {}, 0.5),
        ("auto", {"mode": "always"}, {}, 0.5),
        ("auto", {"grounding_threshold": 0.7}, {}, 0.5),
        ("auto", {"max_cost": 0.01}, {}, 0.5),
        ("auto", {"sensitive_patterns": []}, {}, 0.5),
        ("auto", {"four_eyes": False}, {}, 0.5),
        ("auto", {"group": "legal"}, {}, 0.5),
        ("auto", {}, {"grounding_threshold": 0.8}, 0.5),
        ("auto", {}, {"max_cost": 0.02}, 0.5),
        ("auto", {}, {"sensitive_patterns": [r"\d+"]}, 0.5),
        ("auto", {}, {}, 0.6),
    ],
)
def test_everything_that_decides_review_changes_the_digest(
    mode: str, policy: dict, overrides: dict, default: float
) -> None:
    base = review_policy_digest("auto", ReviewPolicySettings(), ReviewOverrides(), 0.5)
    changed = review_policy_digest(
        mode, ReviewPolicySettings(**policy), ReviewOverrides(**overrides), default
    )
    assert changed != base


def test_an_override_that_repeats_the_tenants_value_is_the_same_policy() -> None:
    policy = ReviewPolicySettings(grounding_threshold=0.6, max_cost=0.05)
    plain = review_policy_digest("auto", policy, ReviewOverrides(), 0.5)
    same = ReviewOverrides(
        grounding_threshold=0.6, max_cost=0.05, sensitive_patterns=policy.sensitive_patterns
    )
    assert review_policy_digest("auto", policy, same, 0.5) == plain
    # The default threshold applies only where neither the policy nor the request sets one.
    assert review_policy_digest("auto", policy, ReviewOverrides(), 0.9) == plain


# --- cacheable, approved_by ---------------------------------------------------------------------


def test_a_completed_cited_answer_without_review_is_cacheable() -> None:
    assert cacheable(result()) == ""
    assert approved_by(result()) == ""
    assert cited_versions(result()) == {"kestrel": "v2", "aurora": "v7"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": "rejected"}, "status rejected"),
        ({"answer": None}, "no answer"),
        ({"answer": ""}, "no answer"),
        ({"citations": []}, "no citations"),
        ({"citations": [Citation("kestrel", "kestrel#0000", "q")]}, "without a document version"),
        ({"citations": [CITED[0], replace(CITED[0], chunk_id="kestrel#0001", version="v3")]}, "two versions"),
    ],
)
def test_what_is_never_cached(changes: dict, reason: str) -> None:
    assert reason in cacheable(result(**changes))


@pytest.mark.parametrize("decision", ["approve", "edit"])
def test_a_reviewed_answer_is_cacheable_once_approved(decision: str) -> None:
    final = review(decision, "rita")
    reviewed = result(review=final, reviews=[review("request_changes", "sam"), final])
    assert cacheable(reviewed) == ""
    assert approved_by(reviewed) == "rita"


@pytest.mark.parametrize("decision", ["reject", "request_changes"])
def test_a_reviewed_answer_not_approved_is_not_cacheable(decision: str) -> None:
    final = review(decision)
    assert cacheable(result(review=final, reviews=[final]))
    assert approved_by(result(review=final, reviews=[final])) == ""


def test_a_rejection_in_any_round_keeps_it_out() -> None:
    final = review("approve")
    assert "rejected" in cacheable(result(review=final, reviews=[review("reject"), final]))


# --- same_specifics, same_wording --------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Who leads Team Aurora?", "who leads team aurora", True),
        ("Who leads Team Aurora?", "Who leads Team Borealis?", False),
        ("What was revenue in Q3 2025?", "Q3 2025 revenue?", True),
        ("What was revenue in Q3 2025?", "What was revenue in Q3 2024?", False),
        ("Are POs above $10,000 reviewed?", "are POs above 10000 reviewed", True),
        ("Who gets three days off?", "Who gets 3 days off?", True),
        ("Which services aren't behind the VPN?", "Which services are not behind the VPN?", True),
        ("Which services are not behind the VPN?", "Which services are behind the VPN?", False),
        ("What shipped in version 4.2?", "what shipped in v4.2", True),
        ('Which documents mention "red team"?', 'Which documents mention "blue team"?', False),
        ("Is it deployed in us-east-1?", "Is it deployed in eu-west-1?", False),
        ("I lost my badge, how do I get a new one?", "How do I get a replacement badge?", True),
    ],
)
def test_same_specifics(a: str, b: str, same: bool) -> None:
    assert same_specifics(a, b) is same
    assert same_specifics(b, a) is same


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (
            "What's the expense limit for client dinners?",
            "What is the expense limit for client dinners?",
            True,
        ),
        ("How do I reset my VPN password?", "how do i resett my vpn passwrod", True),
        ("Who owns the Kestrel service?", "who owns the kestrel service??", True),
        ("Which systems depend on Cinder?", "Which systems does Cinder depend on?", False),
        ("What time does the Boston office open?", "What time does the Boston office close?", False),
        ("How do I enable SSO?", "How do I unable SSO?", False),
        ("Who leads Team Aurora?", "Who leads Team Borealis?", False),
    ],
)
def test_same_wording(a: str, b: str, same: bool) -> None:
    assert same_wording(a, b) is same
    assert same_wording(b, a) is same


def test_the_committed_paraphrase_set_and_the_wording_guard_on_it() -> None:
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    assert len(pairs) >= 120
    assert abs(sum(p["same"] for p in pairs) - len(pairs) / 2) <= len(pairs) / 10
    # Whatever the threshold, the wording guard lets no hard negative of the set through.
    assert not [p for p in pairs if not p["same"] and same_wording(p["a"], p["b"])]

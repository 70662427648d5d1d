"""Whether an answer needs a person before it goes out, and how that review runs.

The tenant's policy (settings.review) with the request's overrides on top. `auto` sends an
answer to review for each check it fails: weak grounding, estimated cost over budget,
sensitive content (personal data by default) in the answer.
"""

from __future__ import annotations

import re

from keel.core.domain import ReviewMode, ReviewOverrides, ReviewPlan
from keel.core.settings import ReviewPolicySettings


def review_reasons(
    mode: ReviewMode,
    policy: ReviewPolicySettings,
    overrides: ReviewOverrides,
    *,
    grounding: float,
    default_threshold: float,
    cost: float,
    answer: str,
) -> list[str]:
    """Why this answer needs a reviewer; empty when it can go out as it is."""
    if mode == "never":
        return []
    if mode == "always":
        return ["review requested"]
    reasons = []
    threshold = _first(overrides.grounding_threshold, policy.grounding_threshold, default_threshold)
    if grounding < threshold:
        reasons.append(f"weak grounding ({grounding:.2f} < {threshold:.2f})")
    budget = _first(overrides.max_cost, policy.max_cost)  # none set: no budget (infinite)
    if cost > budget:
        reasons.append(f"cost over budget ({cost:.4f} > {budget:.4f})")
    patterns = policy.sensitive_patterns
    if overrides.sensitive_patterns is not None:
        patterns = overrides.sensitive_patterns
    if matched := sensitive_matches(answer, patterns):
        reasons.append(f"sensitive content ({len(matched)} match{'es' if len(matched) > 1 else ''})")
    return reasons


def sensitive_matches(answer: str, patterns: list[str]) -> list[str]:
    """The patterns that match somewhere in the answer (patterns were checked when configured)."""
    return [pattern for pattern in patterns if re.search(pattern, answer)]


def review_plan(policy: ReviewPolicySettings) -> ReviewPlan:
    return ReviewPlan(
        group=policy.group,
        deadline_s=policy.deadline_s,
        on_deadline=policy.on_deadline,
        escalate_to=policy.escalate_to,
        escalation_deadline_s=policy.escalation_deadline_s,
        four_eyes=policy.four_eyes,
        lease_s=policy.lease_s,
        max_change_rounds=policy.max_change_rounds,
    )


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return value
    return float("inf")

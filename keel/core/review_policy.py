"""Whether an answer needs a person before it goes out, and how that review runs.

The tenant's policy (settings.review) with the request's overrides on top. `auto` sends an
answer to review for each check it fails: weak grounding, estimated cost over budget,
sensitive content (personal data by default) in the answer, passages given to the generator
that read like instructions to a model (keel/core/injection.py). Only these inputs decide:
nothing a document or the model writes ("approved", "no review needed") takes a reason away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from keel.core.domain import ReviewMode, ReviewOverrides, ReviewPlan
from keel.core.settings import ReviewPolicySettings

INSTRUCTIONS_IN_SOURCES = "instructions in sources"
# Chunk ids a reason names at most: the trace of the grade step lists them all.
_NAMED_CHUNKS = 3


def review_reasons(
    mode: ReviewMode,
    policy: ReviewPolicySettings,
    overrides: ReviewOverrides,
    *,
    grounding: float,
    default_threshold: float,
    cost: float,
    answer: str,
    instructions_in: Sequence[str] = (),
) -> list[str]:
    """Why this answer needs a reviewer; empty when it can go out as it is.

    `instructions_in`: the chunk ids of the passages given to the generator that read like
    instructions. Under `always` they are named beside the request (the reviewer should know);
    under `never` the operator chose no review, and the grade step's trace shows them.
    """
    if mode == "never":
        return []
    suspect = [instructions_reason(instructions_in)] if instructions_in else []
    if mode == "always":
        return ["review requested", *suspect]
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
    return reasons + suspect


def instructions_reason(chunk_ids: Sequence[str]) -> str:
    """ "instructions in sources (a#0000, b#0002)": the passages to read with care first."""
    named = ", ".join(chunk_ids[:_NAMED_CHUNKS])
    more = f" and {len(chunk_ids) - _NAMED_CHUNKS} more" if len(chunk_ids) > _NAMED_CHUNKS else ""
    return f"{INSTRUCTIONS_IN_SOURCES} ({named}{more})"


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

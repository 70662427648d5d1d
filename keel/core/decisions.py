"""The agent's decisions after grading a draft, as pure functions: where the next hop goes,
whether to retrieve again, and whether a person must see the draft now, and why.

The grade activity gathers the inputs (grounding, entities, the tenant's policy) and acts on
what these return; they touch no store, clock or model, so they are tested without servers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

# Entities a next hop follows at most: a refined query with more reads as noise.
NEXT_HOP_ENTITIES = 5
CHANGES_REQUESTED = "changes requested"


def next_hop_entities(
    question_entities: Iterable[str],
    passage_entities: Iterable[str],
    key: Callable[[str], str],
    limit: int = NEXT_HOP_ENTITIES,
) -> list[str]:
    """Entities the passages name that the question does not (compared by `key`), first seen
    first: where the answer to a bridge question may sit."""
    asked = {key(name) for name in question_entities}
    return list(dict.fromkeys(name for name in passage_entities if key(name) not in asked))[:limit]


def needs_another_round(
    *,
    grounding: float,
    threshold: float,
    multi_hop: bool,
    round: int,
    max_rounds: int,
    next_entities: Sequence[str],
    reviewed: bool,
) -> bool:
    """Retrieve again when the draft is weakly grounded, or (once) when the question is multi-hop;
    only while rounds are left and there is an entity to follow. Never for a draft a reviewer
    asked for: it goes back to them."""
    if reviewed or round >= max_rounds or not next_entities:
        return False
    return grounding < threshold or (multi_hop and round == 1)


def refined_query(question: str, entities: Sequence[str]) -> str:
    """The next round's query: the question with the next hop's entities."""
    return " ".join([question, *entities])


def why_review(policy_reasons: Sequence[str], *, reviewed: bool) -> list[str]:
    """Why a person should see the draft (the review policy's reasons, keel/core/review_policy.py);
    a draft a reviewer asked for goes back to them whatever the policy says."""
    return [CHANGES_REQUESTED, *policy_reasons] if reviewed else list(policy_reasons)


def needs_review(reasons: Sequence[str], *, another_round: bool) -> bool:
    """Whether the draft waits for a person now. One the agent is about to redo goes to nobody
    yet: the next draft is graded in its turn."""
    return bool(reasons) and not another_round

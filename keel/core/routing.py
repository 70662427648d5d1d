"""The difficulty router: which model answers a task, from signals the agent already has.

A pure decision (functional core): the generate step gathers the signals and records the choice
and its reason on the task's trace and in its usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.core.settings import ModelSettings


@dataclass(frozen=True)
class RouteSignals:
    multi_hop: bool  # the question's structure asks for more than one hop
    round: int  # retrieval round: 2 and up means an earlier draft was weakly grounded
    passages: int  # passages found for the question
    top_cosine: float | None  # the best passage's dense cosine to the question (None: not known)
    reviewer_instruction: bool  # a reviewer asked for changes


@dataclass(frozen=True)
class Route:
    profile: str  # the model profile that answers
    reason: str  # why, in words a trace reader follows


def choose_route(models: ModelSettings, signals: RouteSignals) -> Route:
    """The configured profile when routing is off; else the strong one when any rule fires."""
    router = models.router
    if not router.enabled:
        return Route(models.generate, "routing off: the generate step's model")
    why = []
    if signals.reviewer_instruction:
        why.append("a reviewer asked for changes")
    if router.strong_when_multi_hop and signals.multi_hop:
        why.append("multi-hop question")
    if signals.round >= router.strong_after_round:
        why.append(f"retrieval round {signals.round}: the earlier draft was weakly grounded")
    if not signals.passages:
        why.append("no passage found")
    elif signals.top_cosine is not None and signals.top_cosine < router.min_top_cosine:
        why.append(f"low retrieval confidence ({signals.top_cosine:.2f} < {router.min_top_cosine:.2f})")
    if why:
        return Route(router.strong, "strong: " + "; ".join(why))
    return Route(router.cheap, "cheap: single-hop, first round, confident retrieval")

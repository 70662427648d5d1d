"""What a task's steps used and cost: tokens, texts encoded, latency, money; and the price table.

Money is kept as float currency units in results and traces, and as integer nanos (1e-9 of a
unit) wherever it is summed in a store: sums of integers are exact and order-free, so usage rolled
up by many workers adds up to the same figure whatever order they report in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from keel.core.settings import PriceSettings

NANOS = 1_000_000_000
# What a step used: a model call, an encoder (queries, sentences), a reranker, a person.
UsageKind = Literal["model", "embed", "rerank", "review", "none"]


def to_nanos(amount: float) -> int:
    return round(amount * NANOS)


def from_nanos(nanos: int) -> float:
    return nanos / NANOS


@dataclass(frozen=True)
class Price:
    """A model's price per million tokens from `effective_from` on (like Langfuse's model
    definitions: `match` is a regular expression over the model name the provider reports)."""

    match: str
    input_per_1m: float
    output_per_1m: float
    effective_from: date = date(1970, 1, 1)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000


def prices_of(entries: Sequence[PriceSettings]) -> tuple[Price, ...]:
    """The settings' price table as `price_for` takes it."""
    return tuple(Price(p.match, p.input_per_1m, p.output_per_1m, p.effective_from) for p in entries)


def price_for(prices: Sequence[Price], model: str, on: date) -> Price | None:
    """The price in force for `model` on `on`: of the entries whose pattern matches the whole
    name and that took effect by then, the latest; None when none does (the model is unpriced)."""
    in_force = [p for p in prices if p.effective_from <= on and re.fullmatch(p.match, model)]
    return max(in_force, key=lambda p: p.effective_from, default=None)


@dataclass
class StepUsage:
    """One step's use of paid or metered resources (one model call, or a step's encoder work)."""

    step: str  # plan | retrieve | rerank | generate | grade | review | cache
    kind: UsageKind = "none"
    model: str = ""  # the model that did the work ("" for none)
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    texts: int = 0  # texts encoded, or (query, passage) pairs scored
    latency_ms: float = 0.0
    cpu_ms: float = 0.0  # the step's own thread; encoder threads it waits on are not counted
    cost: float = 0.0
    priced: bool = True  # False: no price matched `model` (cost 0 is then unknown, not free)
    tokens_counted: bool = False  # True: the provider gave no usage; Keel counted the tokens
    route: str = ""  # generate: which model the router chose and why
    waited_ms: float = 0.0  # review: from the request for review to the decision


@dataclass
class TaskUsage:
    """The task's usage: every step in order, and the totals."""

    pipeline_version: str = ""
    steps: list[StepUsage] = field(default_factory=list)
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0

    @classmethod
    def of(cls, steps: Iterable[StepUsage], pipeline_version: str = "") -> TaskUsage:
        steps = list(steps)
        return cls(
            pipeline_version=pipeline_version,
            steps=steps,
            cost=from_nanos(sum(to_nanos(s.cost) for s in steps)),
            input_tokens=sum(s.input_tokens for s in steps),
            output_tokens=sum(s.output_tokens for s in steps),
            latency_ms=round(sum(s.latency_ms for s in steps), 3),
        )


# The dimensions usage rolls up by, and the sums it keeps for each.
Dimension = Literal["tenant", "key", "day", "model", "step", "pipeline"]
DIMENSIONS: tuple[Dimension, ...] = ("tenant", "key", "day", "model", "step", "pipeline")
METRICS = (
    "tasks", "calls", "input_tokens", "output_tokens", "texts", "latency_ms", "cpu_ms", "waited_ms", "cost"
)  # fmt: skip


@dataclass
class UsageRow:
    """Usage summed over one combination of dimensions (those not grouped by are "")."""

    tenant: str = ""
    key: str = ""
    day: str = ""
    model: str = ""
    step: str = ""
    pipeline: str = ""
    tasks: int = 0  # tasks finished (counted on their "task" line)
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    texts: int = 0
    latency_ms: float = 0.0
    cpu_ms: float = 0.0
    waited_ms: float = 0.0
    cost: float = 0.0


def group_rows(rows: Iterable[UsageRow], by: Sequence[Dimension]) -> list[UsageRow]:
    """`rows` summed by the dimensions `by`, the others blanked; largest cost first."""
    unknown = set(by) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"cannot group usage by {sorted(unknown)}: expected {', '.join(DIMENSIONS)}")
    grouped: dict[tuple[str, ...], UsageRow] = {}
    for row in rows:
        key = tuple(getattr(row, d) for d in by)
        total = grouped.setdefault(key, UsageRow(**dict(zip(by, key, strict=True))))
        total.tasks += row.tasks
        total.calls += row.calls
        total.input_tokens += row.input_tokens
        total.output_tokens += row.output_tokens
        total.texts += row.texts
        total.latency_ms = round(total.latency_ms + row.latency_ms, 3)
        total.cpu_ms = round(total.cpu_ms + row.cpu_ms, 3)
        total.waited_ms = round(total.waited_ms + row.waited_ms, 3)
        total.cost = from_nanos(to_nanos(total.cost) + to_nanos(row.cost))
    return sorted(grouped.values(), key=lambda r: (-r.cost, *(getattr(r, d) for d in by)))

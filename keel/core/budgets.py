"""Which budgets a model call counts against, and what a refusal says. Pure: no store here.

Each budget is a line: a counter (its Redis key names tenant, scope and period) with a limit. A
call reserves its estimated cost against all of its lines at once (keel/stores/budgets.py), so
concurrent calls can never all pass a check that only one of them fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keel.core.settings import BudgetSet
from keel.core.usage import from_nanos, to_nanos

# Counters outlive their period a little: a late settle of a call started before midnight lands
# in the period its reservation was made in.
_DAY_S = 86_400


@dataclass(frozen=True)
class BudgetLine:
    name: str  # what a person reads: "tenant acme per day (2026-12-04)"
    key: str  # the counter's key in the store
    limit_nanos: int
    hard: bool
    ttl_s: int  # the counter is kept this long (its period, and a margin)

    @property
    def limit(self) -> float:
        return from_nanos(self.limit_nanos)


@dataclass(frozen=True)
class BudgetScope:
    tenant: str
    key_id: str
    task_id: str


def budget_lines(budgets: BudgetSet, scope: BudgetScope, now: datetime) -> list[BudgetLine]:
    """The lines of `budgets` that apply to a call in `scope` at `now`."""
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    # The tenant in braces is a Redis Cluster hash tag: one call's lines share a slot, which a
    # script touching all of them needs there.
    base = f"keel:budget:{{{scope.tenant}}}"
    candidates = [
        ("task", f"task {scope.task_id}", f"{base}:task:{scope.task_id}", 7 * _DAY_S),
        ("key_day", f"key {scope.key_id} per day ({day})", f"{base}:key:{scope.key_id}:{day}", 2 * _DAY_S),
        (
            "key_month",
            f"key {scope.key_id} per month ({month})",
            f"{base}:key:{scope.key_id}:{month}",
            32 * _DAY_S,
        ),
        ("tenant_day", f"tenant {scope.tenant} per day ({day})", f"{base}:day:{day}", 2 * _DAY_S),
        ("tenant_month", f"tenant {scope.tenant} per month ({month})", f"{base}:month:{month}", 32 * _DAY_S),
    ]
    lines = []
    for field, name, key, ttl_s in candidates:
        budget = getattr(budgets, field)
        if budget is None or (field.startswith("key") and not scope.key_id):
            continue  # a task with no key (the operator's CLI) has no key budget
        lines.append(BudgetLine(name, key, to_nanos(budget.limit), budget.hard, ttl_s))
    return lines


@dataclass(frozen=True)
class LineState:
    """A budget line as the store holds it now."""

    line: BudgetLine
    spent_nanos: int
    reserved_nanos: int

    @property
    def remaining(self) -> float:
        return from_nanos(max(0, self.line.limit_nanos - self.spent_nanos - self.reserved_nanos))


@dataclass(frozen=True)
class Reservation:
    """The outcome of reserving a call's estimate: granted or refused, and any soft line passed."""

    id: str
    amount_nanos: int
    granted: bool
    refused_by: LineState | None = None  # the first hard line it would have passed
    soft_exceeded: tuple[LineState, ...] = ()

    @property
    def refusal(self) -> str:
        """Why the call was refused, with the figures: what a task's failure or review shows."""
        if self.refused_by is None:
            return ""
        return over_budget_text(self.refused_by, self.amount_nanos, hard=True)

    @property
    def soft_warnings(self) -> list[str]:
        return [over_budget_text(state, self.amount_nanos, hard=False) for state in self.soft_exceeded]


def over_budget_text(state: LineState, amount_nanos: int, hard: bool) -> str:
    kind = "budget" if hard else "soft budget"
    return (
        f"{kind} {state.line.name} of {state.line.limit:.6g}: spent {from_nanos(state.spent_nanos):.6g}, "
        f"reserved {from_nanos(state.reserved_nanos):.6g}, this call up to {from_nanos(amount_nanos):.6g}"
    )

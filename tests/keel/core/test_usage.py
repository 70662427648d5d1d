"""Prices in force, usage totals and roll-ups, budget lines, and the difficulty router: pure."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from keel.core.budgets import BudgetScope, budget_lines
from keel.core.routing import RouteSignals, choose_route
from keel.core.settings import Budget, BudgetSet, ModelSettings, Settings
from keel.core.usage import Price, StepUsage, TaskUsage, UsageRow, group_rows, price_for

pytestmark = pytest.mark.unit

PRICES = [
    Price("gpt-x.*", 1.0, 2.0, date(2026, 1, 1)),
    Price("gpt-x.*", 0.5, 1.0, date(2026, 6, 1)),  # a price cut takes effect in June
    Price("local", 0.0, 0.0),
]


def test_the_latest_price_in_force_on_the_day_applies() -> None:
    assert price_for(PRICES, "gpt-x-2026-05", date(2026, 5, 31)).input_per_1m == 1.0
    assert price_for(PRICES, "gpt-x-2026-05", date(2026, 6, 1)).input_per_1m == 0.5
    assert price_for(PRICES, "gpt-x", date(2025, 12, 31)) is None  # not yet priced
    assert price_for(PRICES, "other-gpt-x", date(2026, 7, 1)) is None  # the whole name must match
    assert price_for(PRICES, "gpt-x", date(2026, 7, 1)).cost(1_000_000, 500_000) == pytest.approx(1.0)


def test_task_usage_sums_its_steps_exactly() -> None:
    steps = [StepUsage("generate", "model", "m", 1, 10, 5, cost=0.1), StepUsage("generate", cost=0.2)]
    total = TaskUsage.of(steps, "pv-1")
    assert total.cost == 0.3  # exact, not 0.30000000000000004: summed in nanos
    assert (total.input_tokens, total.output_tokens, total.pipeline_version) == (10, 5, "pv-1")


def test_rows_group_by_any_dimensions() -> None:
    rows = [
        UsageRow(tenant="a", key="k1", day="2026-12-01", model="m1", step="generate", cost=0.1, calls=1),
        UsageRow(tenant="a", key="k2", day="2026-12-01", model="m2", step="generate", cost=0.3, calls=1),
        UsageRow(tenant="a", key="k1", day="2026-12-02", model="m1", step="generate", cost=0.2, calls=2),
    ]
    by_model = group_rows(rows, ["model"])
    assert [(r.model, r.cost, r.calls, r.key) for r in by_model] == [("m1", 0.3, 3, ""), ("m2", 0.3, 1, "")]
    first = group_rows(rows, ["day", "key"])[0]
    assert (first.day, first.key) == ("2026-12-01", "k2")
    with pytest.raises(ValueError, match="cannot group usage by"):
        group_rows(rows, ["colour"])  # type: ignore[list-item]


def test_budget_lines_name_their_period_and_skip_key_lines_without_a_key() -> None:
    budgets = BudgetSet(
        task=Budget(limit=0.5), key_day=Budget(limit=1), tenant_month=Budget(limit=9, hard=False)
    )
    now = datetime(2026, 12, 4, 23, 59, tzinfo=UTC)
    lines = budget_lines(budgets, BudgetScope("acme", "k1", "task-acme.1"), now)
    assert [line.name for line in lines] == [
        "task task-acme.1",
        "key k1 per day (2026-12-04)",
        "tenant acme per month (2026-12)",
    ]
    assert all(line.key.startswith("keel:budget:{acme}:") for line in lines)  # one cluster slot
    assert [line.hard for line in lines] == [True, True, False]
    operator = budget_lines(budgets, BudgetScope("acme", "", "task-acme.2"), now)
    assert [line.name for line in operator] == ["task task-acme.2", "tenant acme per month (2026-12)"]


def routed(**router: object) -> ModelSettings:
    return ModelSettings(
        profiles={
            "small": {"base_url": "http://s", "model": "s"},
            "large": {"base_url": "http://l", "model": "l"},
        },
        router={"enabled": True, "cheap": "small", "strong": "large", **router},
    )


def signals(**changes: object) -> RouteSignals:
    base = {"multi_hop": False, "round": 1, "passages": 8, "top_cosine": 0.7, "reviewer_instruction": False}
    return RouteSignals(**{**base, **changes})  # type: ignore[arg-type]


def test_the_router_sends_hard_tasks_to_the_strong_model_and_says_why() -> None:
    models = routed()
    assert choose_route(models, signals()).profile == "small"
    for changes, why in [
        ({"multi_hop": True}, "multi-hop question"),
        ({"round": 2}, "retrieval round 2"),
        ({"top_cosine": 0.2}, "low retrieval confidence (0.20 < 0.45)"),
        ({"passages": 0, "top_cosine": None}, "no passage found"),
        ({"reviewer_instruction": True}, "a reviewer asked for changes"),
    ]:
        route = choose_route(models, signals(**changes))
        assert route.profile == "large" and why in route.reason
    assert choose_route(routed(strong_when_multi_hop=False), signals(multi_hop=True)).profile == "small"
    assert choose_route(models, signals(top_cosine=None)).profile == "small"  # a pipeline without dense
    off = ModelSettings()
    assert choose_route(off, signals(multi_hop=True)).profile == "default"


def test_settings_refuse_a_budgeted_model_without_a_price_and_an_unknown_profile() -> None:
    with pytest.raises(ValueError, match="has no price"):
        Settings(
            cost={"budgets": {"tenant_day": {"limit": 1}}}, models={"base_url": "http://x", "model": "q"}
        )
    with pytest.raises(ValueError, match="no model profile 'nope'"):
        ModelSettings(generate="nope")
    priced = Settings(
        cost={"budgets": {"tenant_day": {"limit": 1}}, "prices": [{"match": "q", "input_per_1m": 1}]},
        models={"base_url": "http://x", "model": "q"},
    )
    assert priced.cost.budgets_for("anyone").tenant_day.limit == 1

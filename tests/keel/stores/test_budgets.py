"""Budget counters on a real FalkorDB server: reservations are atomic, expire, and settle once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from keel.core.budgets import BudgetScope, budget_lines
from keel.core.settings import Budget, BudgetSet
from keel.core.usage import to_nanos
from keel.stores.budgets import BudgetLedger
from keel.stores.redis import make_redis

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def lines_for(tenant: str, budgets: BudgetSet, task: str = "task-1") -> list:
    return budget_lines(budgets, BudgetScope(tenant, "key1", task), NOW)


def test_concurrent_reservations_never_pass_a_hard_limit(falkordb_url: str) -> None:
    ledger = BudgetLedger(make_redis(falkordb_url))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    lines = lines_for(tenant, BudgetSet(tenant_day=Budget(limit=1.0)))
    # 50 calls of 0.1 each, from 16 threads at once: exactly 10 fit.
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda i: ledger.reserve(f"r{i}", lines, to_nanos(0.1), 60), range(50)))
    granted = [o for o in outcomes if o.granted]
    assert len(granted) == 10
    refused = [o for o in outcomes if not o.granted]
    assert all("per day" in o.refusal and "of 1" in o.refusal for o in refused)
    # Each settles for less than it reserved: the rest is released and fits more calls.
    for o in granted:
        assert ledger.settle(o.id, lines, to_nanos(0.05))
        assert not ledger.settle(o.id, lines, to_nanos(0.05))  # a retried settle adds nothing
    (state,) = ledger.state(lines)
    assert (state.spent_nanos, state.reserved_nanos) == (to_nanos(0.5), 0)
    assert ledger.reserve("more", lines, to_nanos(0.4), 60).granted
    assert not ledger.reserve("too-much", lines, to_nanos(0.2), 60).granted


def test_a_reservation_never_settled_expires(falkordb_url: str) -> None:
    ledger = BudgetLedger(make_redis(falkordb_url))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    lines = lines_for(tenant, BudgetSet(task=Budget(limit=1.0), tenant_month=Budget(limit=5.0)))
    assert ledger.reserve("killed", lines, to_nanos(0.9), ttl_s=0.3).granted
    assert not ledger.reserve("next", lines, to_nanos(0.2), ttl_s=60).granted  # the task line is full
    time.sleep(0.4)
    assert [s.reserved_nanos for s in ledger.state(lines)] == [0, 0]
    assert ledger.reserve("next", lines, to_nanos(0.2), ttl_s=60).granted


def test_soft_budgets_warn_and_grant(falkordb_url: str) -> None:
    ledger = BudgetLedger(make_redis(falkordb_url))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    lines = lines_for(tenant, BudgetSet(key_day=Budget(limit=0.1, hard=False)))
    first = ledger.reserve("a", lines, to_nanos(0.08), 60)
    assert first.granted and not first.soft_exceeded
    second = ledger.reserve("b", lines, to_nanos(0.08), 60)
    assert second.granted
    assert second.soft_warnings and second.soft_warnings[0].startswith("soft budget key key1 per day")


def test_usage_is_recorded_once_per_id_and_grouped(falkordb_url: str) -> None:
    from datetime import date

    from keel.core.usage import StepUsage, group_rows
    from keel.stores.usage import UsageLedger

    ledger = UsageLedger(make_redis(falkordb_url))
    tenant = f"t{uuid.uuid4().hex[:8]}"
    day = date(2026, 12, 4)
    call = StepUsage("generate", "model", "gpt-x", calls=1, input_tokens=100, output_tokens=20, cost=0.0013,
                     latency_ms=250.5)  # fmt: skip
    assert ledger.record("wf/1/1", tenant, "k1", day, "pv1", call)
    assert not ledger.record("wf/1/1", tenant, "k1", day, "pv1", call)  # retried record
    assert ledger.record("wf/1/2", tenant, "k2", day, "pv1", call)  # a retried call: paid again
    rows = ledger.rows([tenant], day, day)
    (by_model,) = group_rows(rows, ["model"])
    assert (by_model.model, by_model.calls, by_model.input_tokens) == ("gpt-x", 2, 200)
    assert by_model.cost == pytest.approx(0.0026) and by_model.latency_ms == pytest.approx(501.0)
    assert [r.key for r in group_rows(rows, ["key"])] == ["k1", "k2"]
    assert ledger.totals(tenant)[("gpt-x", "generate", "cost")] == pytest.approx(0.0026)
    assert tenant in ledger.tenants()

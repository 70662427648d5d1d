"""`keel usage` and `keel cost-model` on ledger rows written for a tenant of the test's own: the
table and its total, the CSV, the projection and where it breaks, and the refusals (exit 1 or 2
with one line, never a stack trace)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.cli import app
from keel.core.cost_model import Assumptions, budget_breaks_at, figures_from_rows
from keel.core.usage import Price, StepUsage
from keel.stores.redis import make_redis
from keel.stores.usage import UsageLedger

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()


@pytest.fixture
def env(tmp_path: Path, falkordb_url: str) -> dict[str, str]:
    return {"KEEL_FALKORDB__URL": falkordb_url, "KEEL_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def ledger(falkordb_url: str) -> Iterator[UsageLedger]:
    client = make_redis(falkordb_url)
    yield UsageLedger(client)
    client.close()


@pytest.fixture
def tenant(ledger: UsageLedger) -> str:
    """A tenant with ten tasks yesterday: each a retrieve and a generate; one review of 4 minutes."""
    tenant = f"u-{uuid.uuid4().hex[:8]}"
    day = TODAY - timedelta(days=1)
    for i in range(10):
        key = "k1" if i < 6 else "k2"
        steps = [
            StepUsage("retrieve", "embed", "all-MiniLM-L6-v2", texts=1, latency_ms=50, cpu_ms=40),
            StepUsage("generate", "model", "gpt-x", calls=1, input_tokens=1000, output_tokens=200,
                      latency_ms=1500, cpu_ms=5, cost=0.0018),
        ]  # fmt: skip
        for step in steps:
            ledger.record(uuid.uuid4().hex, tenant, key, day, "p1", step)
        ledger.record(uuid.uuid4().hex, tenant, key, day, "p1", StepUsage("task"), tasks=1)
    review = StepUsage("review", "review", "human", calls=1, latency_ms=240_000, cost=4.0)
    ledger.record(uuid.uuid4().hex, tenant, "k2", day, "p1", review)
    return tenant


def keel(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_usage_prints_a_table_with_the_total(env: dict[str, str], tenant: str) -> None:
    code, out, err = keel("usage", "--tenant", tenant, "--group-by", "step,key", env=env)
    assert code == 0, err
    lines = out.splitlines()
    today = datetime.now(UTC).date()  # now, not at import: a run may cross midnight
    assert lines[0].startswith(f"usage of tenant {tenant} from {today - timedelta(days=29)} to {today}")
    assert lines[1].split()[:4] == ["STEP", "KEY", "TASKS", "CALLS"]
    review = next(line for line in lines if line.startswith("review"))
    assert review.split()[1] == "k2" and review.endswith("4.0000")
    assert lines[-1].split()[0] == "TOTAL" and lines[-1].endswith("4.0180")
    assert lines[-2].startswith("----")
    assert lines[-1].split()[1] == "10"  # tasks


def test_usage_csv_to_stdout_and_to_a_file(env: dict[str, str], tenant: str, tmp_path: Path) -> None:
    code, out, err = keel("usage", "--tenant", tenant, "--group-by", "model", "--csv", "-", env=env)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["model"]: r["cost"] for r in rows} == {
        "human": "4",
        "gpt-x": "0.018",
        "all-MiniLM-L6-v2": "0",
        "": "0",
    }
    path = tmp_path / "usage.csv"
    code, out, err = keel("usage", "--tenant", tenant, "--group-by", "day", "--csv", str(path), env=env)
    assert code == 0 and f"wrote 1 rows to {path}" in err
    assert path.read_text().splitlines()[0].startswith("day,tasks,calls")
    assert "TOTAL" in out


def test_usage_refusals(env: dict[str, str]) -> None:
    for args, named in [
        (["--group-by", "colour"], "--group-by 'colour'"),
        (["--from", "2026-02-30"], "--from"),
        (["--from", "2026-12-02", "--to", "2026-12-01"], "after"),
        (["--tenant", "Bad Tenant!"], "tenant"),
    ]:
        code, out, err = keel("usage", *args, env=env)
        assert code == 2, (args, out, err)
        assert named in err and "Traceback" not in err


def test_cost_model_from_the_ledger(
    env: dict[str, str], tenant: str, ledger: UsageLedger, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps([{"match": "gpt-x", "input_per_1m": 1.0, "output_per_1m": 4.0}]))
    args = [
        "--users",
        "500",
        "--tasks-per-user-per-day",
        "4",
        "--tenant",
        tenant,
        "--model-prices",
        str(prices),
    ]
    code, out, err = keel(
        "cost-model",
        *args,
        "--budget-per-month",
        "20000",
        "--p95-limit-s",
        "3",
        "--chunks",
        "100000",
        env=env,
    )
    assert code == 0, err
    assert "measured per task over 10 tasks" in out
    assert "review: 0.100 per task, 4.0 min each" in out
    assert "60,000 tasks" in out
    # 1000 in × 1 + 200 out × 4 per 1M: 0.0018 a task
    assert "inference  gpt-x" in out and "108.00 USD" in out
    # 6,000 reviews × 4 min at 60 an hour
    assert "24,000.00 USD" in out
    figures = figures_from_rows(ledger.rows([tenant], TODAY - timedelta(days=6), TODAY))
    assert figures is not None
    expected = budget_breaks_at(
        figures,
        4,
        20_000,
        Assumptions(prices=(Price("gpt-x", 1.0, 4.0),), review_per_hour=60.0, chunks=100_000),
    )
    assert expected is not None
    assert f"passed at {expected:,} users — already at this load" in out
    assert "p95 3 s on this fleet (1 worker(s), 2 cores): passed at" in out
    assert "M/M/c" in out and "Erlang C" in out
    # Without --chunks: counted in the tenant's graph (it has none).
    code, out, err = keel("cost-model", *args, env=env)
    assert code == 0, err
    assert "storage (0 chunks, 0.00 GB)" in out and "where it breaks" in out


def test_cost_model_without_usage_says_what_to_do(env: dict[str, str], tmp_path: Path) -> None:
    empty = f"u-{uuid.uuid4().hex[:8]}"
    code, out, err = keel(
        "cost-model", "--users", "10", "--tasks-per-user-per-day", "1", "--tenant", empty, env=env
    )
    assert code == 1
    assert "no finished tasks" in err and "--from-bench" in err
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {"tasks": 3, "steps": [{"step": "generate", "model": "extractive-minilm", "latency_ms": 200}]}
        )
    )
    code, out, err = keel(
        "cost-model", "--users", "10", "--tasks-per-user-per-day", "1", "--from-bench", str(bench), env=env
    )
    assert code == 0, err
    assert f"benchmark {bench}" in out and "0.200 CPU-s a task" in out
    assert "note: storage" in out
    bench.write_text(json.dumps({"steps": [{"step": "generate", "tokens": 3}]}))
    code, out, err = keel(
        "cost-model", "--users", "10", "--tasks-per-user-per-day", "1", "--from-bench", str(bench), env=env
    )
    assert code == 2 and "unknown fields" in err

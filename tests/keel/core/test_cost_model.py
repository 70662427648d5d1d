"""The cost model: per-task figures from ledger rows, the month's projection, Erlang C and the
M/M/c response time against known values, and where a budget or a latency limit breaks."""

from __future__ import annotations

import math
from datetime import date

import pytest

from keel.core.cost_model import (
    BYTES_PER_CHUNK,
    Assumptions,
    Figures,
    StepFigure,
    budget_breaks_at,
    cpu_s_per_task,
    erlang_c,
    figures_from_bench,
    figures_from_rows,
    first_users,
    latency_breaks_at,
    mmc_response_quantile,
    project,
)
from keel.core.usage import Price, UsageRow

pytestmark = pytest.mark.unit

GPT = Price("gpt-x", input_per_1m=1.0, output_per_1m=4.0)


def _rows() -> list[UsageRow]:
    """Ten tasks over two days: one retrieve and one generate each; two reviews of 3 minutes."""
    day = dict(tenant="a", key="k1", pipeline="p1")
    return [
        UsageRow(**day, day="2026-12-01", step="task", tasks=6),
        UsageRow(**day, day="2026-12-02", step="task", tasks=4),
        UsageRow(**day, day="2026-12-01", step="retrieve", model="all-MiniLM-L6-v2", calls=10, texts=20,
                 latency_ms=500, cpu_ms=0),
        UsageRow(**day, day="2026-12-01", step="generate", model="gpt-x", calls=10, input_tokens=10_000,
                 output_tokens=2_000, latency_ms=9_000, cpu_ms=100),
        UsageRow(**day, day="2026-12-02", step="rerank", model="ltr", texts=400, latency_ms=200, cpu_ms=150),
        UsageRow(**day, day="2026-12-02", step="review", model="human", calls=2, latency_ms=360_000,
                 cost=6.0),
    ]  # fmt: skip


def test_figures_are_per_task_averages_of_the_rows() -> None:
    figures = figures_from_rows(_rows(), "test")
    assert figures is not None
    assert figures.tasks == 10
    by_step = {s.step: s for s in figures.steps}
    assert set(by_step) == {"retrieve", "generate", "rerank"}
    assert by_step["generate"].input_tokens == 1_000 and by_step["generate"].output_tokens == 200
    assert by_step["retrieve"].texts == 2
    assert figures.review_share == pytest.approx(0.2)
    assert figures.review_minutes == pytest.approx(3.0)


def test_no_task_means_no_figures() -> None:
    assert figures_from_rows([UsageRow(step="generate", calls=3)]) is None


def test_cpu_time_falls_back_to_the_latency_of_steps_on_the_workers_cores() -> None:
    figures = figures_from_rows(_rows())
    assert figures is not None
    # retrieve: no cpu_ms, CPU-bound → its 50 ms latency; generate: 10 ms measured; rerank: 15 ms.
    assert cpu_s_per_task(figures, Assumptions()) == pytest.approx(0.075)
    local = Figures(1, (StepFigure("generate", "extractive-minilm", latency_ms=300),))
    assert cpu_s_per_task(local, Assumptions()) == pytest.approx(0.3)
    assert cpu_s_per_task(local, Assumptions(local_models="none")) == 0.0


def test_the_projection_of_a_month() -> None:
    figures = figures_from_rows(_rows())
    assert figures is not None
    a = Assumptions(
        prices=(GPT,),
        embedding_per_1m_tokens=0.5,
        review_per_hour=60.0,
        chunks=1_000_000,
        on=date(2026, 12, 4),
    )
    p = project(figures, users=100, tasks_per_user_per_day=10, a=a)
    assert p.tasks_per_month == 30_000
    # (1000 × 1 + 200 × 4) / 1e6 per task
    assert p.inference["gpt-x"] == pytest.approx(30_000 * 0.0018)
    # 2 texts × 40 tokens × 0.5 / 1e6 per task; the reranker's pairs are not embedded
    assert p.embedding == pytest.approx(30_000 * 2 * 40 * 0.5 / 1e6)
    assert p.storage_gb == pytest.approx(BYTES_PER_CHUNK / 1000)
    assert p.review == pytest.approx(30_000 * 0.2 * 3 / 60 * 60)
    assert p.total == pytest.approx(p.inference["gpt-x"] + p.embedding + p.storage + p.review)
    assert p.peak_tasks_per_s == pytest.approx(1000 / 86_400 * 3)
    assert p.cores == pytest.approx(p.peak_tasks_per_s * 0.075 / 0.7)
    assert p.workers == 1
    # latency 0.97 s a task, of which 0.075 s on a core
    assert p.fixed_s_per_task == pytest.approx(0.895)
    assert p.p95_s > p.fixed_s_per_task


def test_an_unpriced_model_is_named_and_counted_zero() -> None:
    figures = Figures(1, (StepFigure("generate", "mystery", input_tokens=100, output_tokens=10),))
    p = project(figures, 10, 1, Assumptions(prices=(GPT,)))
    assert p.unpriced == ["mystery"] and p.inference == {"mystery": 0.0}


def test_erlang_c_against_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = ρ
    # Two servers, 1 Erlang: C = a²/(a² + 2(1 ... )) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 8.0) == pytest.approx(0.409, abs=1e-3)  # the classic call-centre table
    assert erlang_c(4, 4.0) == 1.0 and erlang_c(4, 0.0) == 0.0
    assert erlang_c(500, 450.0) < 1.0  # many servers: no overflow


def test_the_mm1_response_time_is_exponential() -> None:
    # M/M/1: the time in the system is Exp(μ - λ); its p95 is ln(20) / (μ - λ).
    assert mmc_response_quantile(1, arrival=0.5, service_s=1.0) == pytest.approx(math.log(20) / 0.5, rel=1e-6)
    assert mmc_response_quantile(1, arrival=1.0, service_s=1.0) == math.inf
    assert mmc_response_quantile(3, arrival=5.0, service_s=0.0) == 0.0
    light = mmc_response_quantile(8, arrival=0.01, service_s=1.0)
    assert light == pytest.approx(math.log(20), rel=1e-3)  # no wait: the service's own p95


def test_first_users_finds_the_threshold() -> None:
    assert first_users(lambda u: u >= 12_345) == 12_345
    assert first_users(lambda u: True) == 1
    assert first_users(lambda u: False, high=1_000) is None


def test_the_budget_breaks_where_the_cost_passes_it() -> None:
    figures = Figures(1, (StepFigure("generate", "gpt-x", input_tokens=1_000_000),))
    a = Assumptions(prices=(GPT,))
    # 1 unit a task; 1 task a user a day: 30 a user a month.
    assert budget_breaks_at(figures, 1, budget=300, a=a) == 11
    assert project(figures, 10, 1, a).total == pytest.approx(300)
    free = Figures(1, (StepFigure("generate", "gpt-x"),))
    assert budget_breaks_at(free, 1, budget=300, a=a) is None


def test_the_latency_breaks_as_the_cores_fill() -> None:
    figures = Figures(1, (StepFigure("generate", "gpt-x", latency_ms=1_000, cpu_ms=500),))
    a = Assumptions(peak_factor=1.0)
    # One core at 0.5 s a task saturates at 2 tasks/s; a user sends 0.01 tasks/s here. M/M/1:
    # 0.5 + ln 20 / (2 - λ) > 5 once λ > 1.334 tasks/s, i.e. from 134 users on.
    assert latency_breaks_at(figures, 864, servers=1, limit_s=5.0, a=a) == 134
    # 0.5 s fixed + Exp(0.5 s) service alone: p95 = 0.5 + 0.5 ln 20 ≈ 2.0 s > 1.5 s at any load.
    assert latency_breaks_at(figures, 86_400, servers=1, limit_s=1.5, a=a) == 1
    # More cores carry more: four saturate at 8 tasks/s (800 users).
    more = latency_breaks_at(figures, 864, servers=4, limit_s=5.0, a=a)
    assert more is not None and 134 < more < 800


def test_bench_figures_are_checked() -> None:
    figures = figures_from_bench(
        {
            "tasks": 5,
            "steps": [{"step": "generate", "model": "m", "input_tokens": 10}],
            "review": {"share": 0.5},
        }
    )
    assert figures.steps[0].input_tokens == 10 and figures.review_share == 0.5
    for bad, named in [
        ({"steps": []}, "steps"),
        ({"steps": [{"step": "x", "tokens": 1}]}, "unknown"),
        ({"steps": [{"step": "x", "calls": -1}]}, "calls"),
        ({"steps": [{"step": "x", "latency_ms": math.nan}]}, "latency_ms"),
        ({"tasks": 0, "steps": [{"step": "x"}]}, "tasks"),
        ({"steps": [{"step": "x"}], "review": {"share": "lots"}}, "share"),
    ]:
        with pytest.raises(ValueError, match=named):
            figures_from_bench(bad)


def test_assumptions_are_checked() -> None:
    with pytest.raises(ValueError, match="utilisation"):
        Assumptions(target_utilisation=1.2)
    with pytest.raises(ValueError, match="cores per worker"):
        Assumptions(cores_per_worker=0)

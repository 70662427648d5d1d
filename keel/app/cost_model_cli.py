"""`keel cost-model`: a month's cost and the workers needed for a load, from the per-step figures
of recent tasks (the usage ledger) or of a benchmark run, and the load at which cost or latency
crosses its limit. The arithmetic is keel/core/cost_model.py; this gathers and prints."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import TypeAdapter, ValidationError

from keel.app.cli_common import load_settings
from keel.app.usage_cli import ledger_rows, refuse, usage_ledger
from keel.core.cost_model import (
    BENCH_FORMAT,
    BYTES_PER_CHUNK,
    DAYS_PER_MONTH,
    Assumptions,
    Figures,
    Projection,
    budget_breaks_at,
    figures_from_bench,
    figures_from_rows,
    latency_breaks_at,
    project,
)
from keel.core.settings import PriceSettings, Settings
from keel.core.usage import prices_of

COMMAND = "keel cost-model"
_PRICES = TypeAdapter(list[PriceSettings])


def cost_model(
    users: int = typer.Option(..., "--users", min=1, help="Users of the platform."),
    tasks_per_user_per_day: float = typer.Option(
        ..., "--tasks-per-user-per-day", min=0.0, help="Tasks each user submits a day."
    ),
    model_prices: Path | None = typer.Option(
        None,
        "--model-prices",
        help="A JSON or YAML list of price entries (match, input_per_1m, output_per_1m, "
        "effective_from), as KEEL_COST__PRICES: replaces the configured table.",
    ),
    days: int = typer.Option(7, "--days", min=1, max=400, help="Days of recorded usage to measure."),
    tenant: str = typer.Option("", "--tenant", help="Measure this tenant's tasks; default: every tenant's."),
    budget: float | None = typer.Option(None, "--budget-per-month", min=0.0, help="Monthly cost limit."),
    p95_limit_s: float | None = typer.Option(None, "--p95-limit-s", min=0.0, help="p95 task latency limit."),
    from_bench: Path | None = typer.Option(
        None,
        "--from-bench",
        help="Per-task step figures of a benchmark run (JSON; see below) instead of the ledger.",
    ),
    chunks: int | None = typer.Option(
        None, "--chunks", min=0, help="Chunks stored; default: counted in the tenants' graphs."
    ),
    peak_factor: float = typer.Option(
        3.0, "--peak-factor", min=1.0, help="Peak hour rate over the day's mean."
    ),
    cores_per_worker: int = typer.Option(2, "--cores-per-worker", min=1),
    utilisation: float = typer.Option(0.7, "--target-utilisation", min=0.05, max=0.95),
    tokens_per_text: float = typer.Option(
        40.0, "--tokens-per-text", min=0.0, help="Tokens of an embedded text."
    ),
    storage_price: float = typer.Option(0.10, "--storage-per-gb-month", min=0.0),
    worker_price: float = typer.Option(0.0, "--worker-per-month", min=0.0, help="A worker's monthly cost."),
    review_per_hour: float | None = typer.Option(
        None, "--review-per-hour", min=0.0, help="A reviewer's hour; default: KEEL_COST__REVIEW_PER_HOUR."
    ),
    local_models: str = typer.Option(
        "extractive-.*", "--local-models", help="Regex of models that run on the workers' cores."
    ),
) -> None:
    """Project a month (30 days) of inference, embedding, storage and review cost, and the cores
    and workers the peak hour needs, at --users × --tasks-per-user-per-day; with
    --budget-per-month and --p95-limit-s, the number of users at which each is crossed.

    Figures: per-task averages of each step over the ledger's last --days (tokens per model,
    texts embedded, latency, CPU time; reviews per task and their minutes). Without recorded
    tasks, pass --from-bench FILE, a JSON object like (comments for reading only):

    \b
    {BENCH}
    """
    settings = load_settings()
    today = datetime.now(UTC).date()
    try:
        prices = prices_of(_read_prices(model_prices) if model_prices else settings.cost.prices)
        assumptions = Assumptions(
            prices=prices,
            embedding_per_1m_tokens=settings.cost.embedding_per_1m_tokens,
            review_per_hour=settings.cost.review_per_hour if review_per_hour is None else review_per_hour,
            tokens_per_text=tokens_per_text,
            storage_per_gb_month=storage_price,
            worker_per_month=worker_price,
            peak_factor=peak_factor,
            target_utilisation=utilisation,
            cores_per_worker=cores_per_worker,
            local_models=local_models,
            on=today,
        )
    except (ValueError, OSError) as err:
        raise refuse(COMMAND, str(err)) from None
    notes: list[str] = []
    if from_bench is not None:
        figures, tenants = _bench_figures(from_bench), [tenant] if tenant else []
    else:
        start = today - timedelta(days=days - 1)
        with usage_ledger(settings, COMMAND) as ledger:
            tenants, rows = ledger_rows(ledger, tenant, start, today, COMMAND)
        measured = figures_from_rows(rows, f"the ledger, {start} to {today}, {len(tenants)} tenant(s)")
        if measured is None:
            typer.echo(
                f"{COMMAND}: no finished tasks recorded from {start} to {today}"
                + (f" for tenant {tenant}" if tenant else "")
                + ": run some tasks (or widen --days), or pass --from-bench FILE (see --help)",
                err=True,
            )
            raise typer.Exit(1)
        figures = measured
    if chunks is None:
        chunks = _count_chunks(settings, tenants, notes)
    assumptions = replace(assumptions, chunks=chunks)
    projection = project(figures, users, tasks_per_user_per_day, assumptions)
    typer.echo(report(figures, projection, assumptions, settings.cost.currency, tasks_per_user_per_day))
    typer.echo(
        breaks(
            figures,
            projection,
            assumptions,
            settings.cost.currency,
            tasks_per_user_per_day,
            budget,
            p95_limit_s,
        )
    )
    for note in notes:
        typer.echo(f"note: {note}")


cost_model.__doc__ = (cost_model.__doc__ or "").replace("{BENCH}", BENCH_FORMAT.replace("\n", "\n    "))


def _read_prices(path: Path) -> list[PriceSettings]:
    text = path.read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return _PRICES.validate_python(data)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"--model-prices {path}: not JSON or YAML: {err}") from None
    except ValidationError as err:
        raise ValueError(f"--model-prices {path}: {err}") from None


def _bench_figures(path: Path) -> Figures:
    try:
        return figures_from_bench(json.loads(path.read_text(encoding="utf-8")), f"benchmark {path}")
    except (OSError, json.JSONDecodeError, ValueError) as err:
        raise refuse(COMMAND, f"--from-bench {path}: {err}") from None


def _count_chunks(settings: Settings, tenants: list[str], notes: list[str]) -> int:
    """Chunks in the tenants' graphs (one count query each); 0 with a note when unknown."""
    from retrieval.graph_store import GraphStore
    from retrieval.types import StoreError

    if not tenants:
        notes.append("storage: no tenant to count chunks of; pass --chunks N")
        return 0
    graph = GraphStore(settings.falkordb_url, prefix=settings.falkordb.graph_prefix)
    try:
        return sum(graph.counts(t)["chunks"] for t in tenants)
    except (StoreError, ValueError) as err:
        notes.append(f"storage: could not count chunks ({err}); pass --chunks N")
        return 0
    finally:
        graph.close()


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def report(figures: Figures, p: Projection, a: Assumptions, currency: str, per_day: float) -> str:
    """The measured figures, the month's cost by kind, and the fleet at the peak."""
    lines = [f"measured per task over {figures.tasks:,} tasks ({figures.source}):"]
    width = max([len(f"{s.step} {s.model}") for s in figures.steps] + [10])
    lines.append(
        f"  {'step model'.ljust(width)}  {'calls':>6}  {'in tok':>8}  {'out tok':>8}  {'texts':>6}"
        f"  {'latency ms':>10}  {'cpu ms':>8}"
    )
    for s in figures.steps:
        lines.append(
            f"  {f'{s.step} {s.model}'.ljust(width)}  {s.calls:6.2f}  {s.input_tokens:8.1f}  "
            f"{s.output_tokens:8.1f}  {s.texts:6.2f}  {s.latency_ms:10.1f}  {s.cpu_ms:8.1f}"
        )
    lines.append(f"  review: {figures.review_share:.3f} per task, {figures.review_minutes:.1f} min each")
    lines += [
        "",
        f"a month ({DAYS_PER_MONTH} days) at {p.users:,} users × {per_day:g} tasks a day = "
        f"{p.tasks_per_month:,.0f} tasks:",
    ]
    for model, cost in sorted(p.inference.items(), key=lambda item: -item[1]):
        unpriced = "  (no price matched: counted 0)" if model in p.unpriced else ""
        lines.append(f"  inference  {model:<28} {_money(cost, currency):>18}{unpriced}")
    lines.append(f"  {'embedding':<39} {_money(p.embedding, currency):>18}")
    storage = f"storage ({a.chunks:,} chunks, {p.storage_gb:,.2f} GB)"
    lines.append(f"  {storage:<39} {_money(p.storage, currency):>18}")
    reviews = p.tasks_per_month * figures.review_share
    review = f"review ({reviews:,.0f} × {figures.review_minutes:.1f} min)"
    lines.append(f"  {review:<39} {_money(p.review, currency):>18}")
    if a.worker_per_month:
        lines.append(f"  {f'workers ({p.workers})':<39} {_money(p.workers_cost, currency):>18}")
    lines.append(f"  {'total':<39} {_money(p.total, currency):>18}")
    servers = p.workers * a.cores_per_worker
    lines += [
        "",
        f"peak hour ({a.peak_factor:g}× the day's mean): {p.peak_tasks_per_s:.3f} tasks/s × "
        f"{p.cpu_s_per_task:.3f} CPU-s a task at {a.target_utilisation:.0%} utilisation = "
        f"{p.cores:.2f} cores → {p.workers} worker(s) of {a.cores_per_worker} cores",
        f"p95 latency at the peak: {_seconds(p.p95_s)} ({p.fixed_s_per_task:.2f} s off the cores "
        f"+ M/M/{servers} on {servers} cores)",
    ]
    return "\n".join(lines)


def breaks(
    figures: Figures,
    p: Projection,
    a: Assumptions,
    currency: str,
    per_day: float,
    budget: float | None,
    p95_limit_s: float | None,
) -> str:
    """Where the budget breaks: the users at which cost, and latency on this fleet, pass their
    limits; then the assumptions."""
    lines = ["", "where it breaks:"]
    if budget is None:
        lines.append("  budget: no --budget-per-month given")
    else:
        at = budget_breaks_at(figures, per_day, budget, a)
        lines.append(
            f"  budget {_money(budget, currency)} a month: "
            + ("never (cost does not grow with users)" if at is None else f"passed at {at:,} users")
            + (" — already at this load" if at is not None and at <= p.users else "")
        )
    if p95_limit_s is None:
        lines.append("  latency: no --p95-limit-s given")
    else:
        servers = p.workers * a.cores_per_worker
        at = latency_breaks_at(figures, per_day, servers, p95_limit_s, a)
        where = "never" if at is None else f"passed at {at:,} users"
        if at == 1:
            where = f"at any load (the unloaded p95 is over {p95_limit_s:g} s)"
        lines.append(
            f"  p95 {p95_limit_s:g} s on this fleet ({p.workers} worker(s), {servers} cores): {where}"
            + (" — already at this load" if at is not None and at <= p.users else "")
            + ("; add workers to move it" if at is not None and at > 1 else "")
        )
    lines += [
        "",
        "assumptions:",
        f"  a month is {DAYS_PER_MONTH} days; prices as of {a.on} ({len(a.prices)} entries); "
        f"embedding {a.embedding_per_1m_tokens:g} per 1M tokens at {a.tokens_per_text:g} tokens a text "
        f"(the reranker's pairs are not embedded)",
        f"  storage: {a.bytes_per_chunk:,} bytes a chunk (vector, ~700 chars of text, payload; "
        f"default {BYTES_PER_CHUNK:,}) at {a.storage_per_gb_month:g} per GB-month",
        f"  review: the measured share and minutes at {a.review_per_hour:g} an hour",
        "  CPU: each step's measured CPU time; where none, the latency of steps on the workers' "
        f"cores (retrieve, rerank, cache, models matching {a.local_models!r})",
        "  latency: the steps' latency off the cores, fixed at its mean, plus an M/M/c queue on the "
        "cores (Poisson arrivals at the peak rate, exponential service of the mean CPU time, "
        "c = workers × cores, Erlang C wait); reviews are not latency",
    ]
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return "unbounded (the cores are saturated)" if math.isinf(value) else f"{value:.2f} s"

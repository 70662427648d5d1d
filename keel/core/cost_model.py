"""What a load would cost and need: a month's inference, embedding, storage and review cost, the
cores and workers at the peak hour, and the load at which cost or latency crosses a limit.

Pure functions over measured per-task figures (the usage ledger's rows of recent tasks, or a
benchmark's JSON): `keel cost-model` gathers them and prints the projection.

Latency is modelled as a fixed part (model calls and I/O: the step latency not spent on a core)
plus an M/M/c queue on the worker cores: Poisson arrivals at the peak rate, exponential CPU
service of the measured mean, c = the provisioned cores, first come first served. Its response
time has a closed form (Erlang C wait, then the service), so its p95 is exact for that model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from keel.core.usage import Price, UsageRow, price_for

DAYS_PER_MONTH = 30
# One stored chunk: a 384-dim float32 vector, its text (~700 characters of UTF-8) and its payload
# (ids, title, positions, the BM25 sparse vector) with the index overhead around them.
VECTOR_BYTES = 384 * 4
TEXT_BYTES = 700
PAYLOAD_BYTES = 600
BYTES_PER_CHUNK = VECTOR_BYTES + TEXT_BYTES + PAYLOAD_BYTES
# Steps that run on the worker's cores whatever their model: encoders, Qdrant Edge, the reranker.
CPU_BOUND_STEPS = frozenset({"retrieve", "rerank", "cache"})
# Lines of the ledger that are not an agent step: the task line, and a person's review.
NOT_STEPS = frozenset({"task", "review"})
# Searched up to this many users at most: past it, a limit "never" breaks.
MAX_USERS = 10**9


@dataclass(frozen=True)
class StepFigure:
    """One step's (and model's) use per task, averaged over the measured tasks."""

    step: str
    model: str = ""
    calls: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    texts: float = 0.0
    latency_ms: float = 0.0
    cpu_ms: float = 0.0


@dataclass(frozen=True)
class Figures:
    """Per-task figures: the steps, and how often and how long a person reviews."""

    tasks: int
    steps: tuple[StepFigure, ...]
    review_share: float = 0.0  # reviews per task
    review_minutes: float = 0.0  # a review's mean handling time
    source: str = ""


@dataclass(frozen=True)
class Assumptions:
    """Prices and sizing rules; every one is printed with the projection."""

    prices: tuple[Price, ...] = ()
    embedding_per_1m_tokens: float = 0.0
    review_per_hour: float = 0.0
    tokens_per_text: float = 40.0  # an embedded query or sentence
    chunks: int = 0
    bytes_per_chunk: int = BYTES_PER_CHUNK
    storage_per_gb_month: float = 0.10
    worker_per_month: float = 0.0
    peak_factor: float = 3.0  # the peak hour's rate over the day's mean rate
    target_utilisation: float = 0.7
    cores_per_worker: int = 2
    local_models: str = "extractive-.*"  # model steps that run on the worker's cores
    on: date = date(1970, 1, 1)  # prices in force on this day

    def __post_init__(self) -> None:
        if not 0 < self.target_utilisation < 1:
            raise ValueError(f"target utilisation {self.target_utilisation} is not between 0 and 1")
        if self.cores_per_worker < 1:
            raise ValueError(f"cores per worker {self.cores_per_worker} is below 1")
        if self.peak_factor < 1:
            raise ValueError(f"peak factor {self.peak_factor} is below 1")
        re.compile(self.local_models)


@dataclass
class Projection:
    """A month (30 days) at `users` × `tasks_per_user_per_day`."""

    users: int
    tasks_per_month: float
    inference: dict[str, float] = field(default_factory=dict)  # model -> cost
    unpriced: list[str] = field(default_factory=list)  # models no price matched (counted 0)
    embedding: float = 0.0
    storage: float = 0.0
    storage_gb: float = 0.0
    review: float = 0.0
    workers_cost: float = 0.0
    peak_tasks_per_s: float = 0.0
    cpu_s_per_task: float = 0.0
    fixed_s_per_task: float = 0.0  # latency off the cores (model calls, I/O)
    cores: float = 0.0  # needed at the peak, at the target utilisation
    workers: int = 1
    p95_s: float = 0.0  # at the peak, on the workers' cores

    @property
    def total(self) -> float:
        return sum(self.inference.values()) + self.embedding + self.storage + self.review + self.workers_cost


# --- figures -----------------------------------------------------------------------------------


def figures_from_rows(rows: Iterable[UsageRow], source: str = "") -> Figures | None:
    """Per-task averages of the ledger's rows (any tenants, days, keys), or None without a task.

    Tasks are counted on their "task" lines; reviews are the review lines' calls, their minutes
    the review lines' latency (the reviewer's handling time)."""
    rows = list(rows)
    tasks = sum(r.tasks for r in rows)
    if tasks <= 0:
        return None
    sums: dict[tuple[str, str], list[float]] = {}
    reviews = review_ms = 0.0
    for r in rows:
        if r.step == "review":
            reviews += r.calls
            review_ms += r.latency_ms
        elif r.step not in NOT_STEPS:
            total = sums.setdefault((r.step, r.model), [0.0] * 6)
            for i, value in enumerate(
                (r.calls, r.input_tokens, r.output_tokens, r.texts, r.latency_ms, r.cpu_ms)
            ):
                total[i] += value
    steps = tuple(
        StepFigure(step, model, *(value / tasks for value in total))
        for (step, model), total in sorted(sums.items())
    )
    minutes = review_ms / reviews / 60_000 if reviews else 0.0
    return Figures(tasks, steps, reviews / tasks, minutes, source)


BENCH_FORMAT = """\
{"tasks": 200,                        # how many tasks the figures average over
 "steps": [                           # per task: one entry per step and model
   {"step": "retrieve", "model": "all-MiniLM-L6-v2", "texts": 1, "latency_ms": 40, "cpu_ms": 35},
   {"step": "generate", "model": "gpt-4o-mini", "calls": 1, "input_tokens": 1800,
    "output_tokens": 220, "latency_ms": 1400, "cpu_ms": 4}],
 "review": {"share": 0.1, "minutes": 4}}   # reviews per task, minutes each (optional)"""


def _count(value: object) -> bool:
    """A JSON number that can be a count or a duration: finite, not negative, not a boolean."""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def figures_from_bench(data: Mapping[str, Any], source: str = "") -> Figures:
    """Figures from a benchmark's JSON (BENCH_FORMAT); ValueError naming what is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError("expected a JSON object with 'tasks' and 'steps'")
    tasks = data.get("tasks", 1)
    if not isinstance(tasks, int) or tasks < 1:
        raise ValueError(f"'tasks' must be a positive integer, not {tasks!r}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ValueError("'steps' must be a non-empty list of per-task step figures")
    names = set(StepFigure.__dataclass_fields__)
    steps = []
    for i, entry in enumerate(raw_steps):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("step"), str):
            raise ValueError(f"steps[{i}] must be an object with a 'step' name")
        unknown = set(entry) - names
        if unknown:
            raise ValueError(f"steps[{i}] has unknown fields {sorted(unknown)}; expected {sorted(names)}")
        numbers = {k: v for k, v in entry.items() if k not in ("step", "model")}
        for k, v in numbers.items():
            if not _count(v):
                raise ValueError(f"steps[{i}].{k} must be a number ≥ 0, not {v!r}")
        steps.append(StepFigure(entry["step"], str(entry.get("model", "")), **numbers))
    review = data.get("review", {})
    if not isinstance(review, Mapping):
        raise ValueError("'review' must be an object with 'share' and 'minutes'")
    share, minutes = review.get("share", 0.0), review.get("minutes", 0.0)
    for name, value in (("share", share), ("minutes", minutes)):
        if not _count(value):
            raise ValueError(f"review.{name} must be a number ≥ 0, not {value!r}")
    return Figures(tasks, tuple(steps), float(share), float(minutes), source)


# --- the projection ----------------------------------------------------------------------------


def cpu_s_per_task(figures: Figures, a: Assumptions) -> float:
    """Core-seconds per task: the measured CPU time of each step, or where none was measured,
    the latency of a step that runs on the worker (encoders, reranker, a local model)."""
    total_ms = 0.0
    for s in figures.steps:
        if s.cpu_ms > 0:
            total_ms += s.cpu_ms
        elif s.step in CPU_BOUND_STEPS or (s.model and re.fullmatch(a.local_models, s.model)):
            total_ms += s.latency_ms
    return total_ms / 1000


def latency_s_per_task(figures: Figures) -> float:
    """A task's mean latency through its steps (a person's review is not latency)."""
    return sum(s.latency_ms for s in figures.steps) / 1000


def peak_rate(users: float, tasks_per_user_per_day: float, a: Assumptions) -> float:
    """Tasks a second in the peak hour."""
    return users * tasks_per_user_per_day / 86_400 * a.peak_factor


def project(figures: Figures, users: int, tasks_per_user_per_day: float, a: Assumptions) -> Projection:
    """The month's cost and the fleet at this load."""
    tasks = users * tasks_per_user_per_day * DAYS_PER_MONTH
    p = Projection(users=users, tasks_per_month=tasks)
    texts = 0.0
    for s in figures.steps:
        if s.input_tokens or s.output_tokens:
            price = price_for(a.prices, s.model, a.on)
            if price is None and s.model not in p.unpriced:
                p.unpriced.append(s.model)
            per_task = (
                (s.input_tokens * price.input_per_1m + s.output_tokens * price.output_per_1m) / 1_000_000
                if price
                else 0.0
            )
            cost = per_task * tasks
            p.inference[s.model] = p.inference.get(s.model, 0.0) + cost
        if s.step != "rerank":  # the reranker's texts are pairs scored, not texts embedded
            texts += s.texts
    p.embedding = texts * a.tokens_per_text * a.embedding_per_1m_tokens / 1_000_000 * tasks
    p.storage_gb = a.chunks * a.bytes_per_chunk / 1e9
    p.storage = p.storage_gb * a.storage_per_gb_month
    p.review = tasks * figures.review_share * figures.review_minutes / 60 * a.review_per_hour
    p.peak_tasks_per_s = peak_rate(users, tasks_per_user_per_day, a)
    p.cpu_s_per_task = cpu_s_per_task(figures, a)
    p.fixed_s_per_task = max(0.0, latency_s_per_task(figures) - p.cpu_s_per_task)
    p.cores = p.peak_tasks_per_s * p.cpu_s_per_task / a.target_utilisation
    p.workers = max(1, math.ceil(p.cores / a.cores_per_worker - 1e-9))
    p.workers_cost = p.workers * a.worker_per_month
    p.p95_s = p95_latency_s(figures, p.peak_tasks_per_s, p.workers * a.cores_per_worker, a)
    return p


# --- queueing: M/M/c ---------------------------------------------------------------------------


def erlang_c(servers: int, offered: float) -> float:
    """The probability that an arrival waits in an M/M/c queue with `offered` = λ/μ Erlangs;
    1.0 when the queue is unstable (offered ≥ servers)."""
    if servers < 1:
        raise ValueError(f"servers {servers} is below 1")
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by its recurrence: stable for any number of servers
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking / (1 - offered / servers * (1 - blocking))


def mmc_response_quantile(servers: int, arrival: float, service_s: float, q: float = 0.95) -> float:
    """The q-quantile of the time in an M/M/c system (wait, then service) in seconds; inf when
    the queue is unstable."""
    if service_s <= 0:
        return 0.0
    mu = 1 / service_s
    if arrival >= servers * mu:
        return math.inf
    waits = erlang_c(servers, arrival * service_s)
    theta = servers * mu - arrival  # the rate of the wait's exponential tail

    def beyond(t: float) -> float:
        if abs(theta - mu) < 1e-12 * mu:
            both = math.exp(-mu * t) * (1 + mu * t)
        else:  # a wait Exp(θ), then a service Exp(μ): a hypoexponential tail
            both = (mu * math.exp(-theta * t) - theta * math.exp(-mu * t)) / (mu - theta)
        return (1 - waits) * math.exp(-mu * t) + waits * both

    low, high = 0.0, service_s
    while beyond(high) > 1 - q:
        low, high = high, high * 2
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if beyond(mid) > 1 - q else (low, mid)
    return high


def p95_latency_s(figures: Figures, arrival: float, servers: int, a: Assumptions) -> float:
    """A task's p95 latency at `arrival` tasks/s on `servers` cores: its fixed part plus the
    M/M/c response on the cores."""
    cpu = cpu_s_per_task(figures, a)
    fixed = max(0.0, latency_s_per_task(figures) - cpu)
    return fixed + mmc_response_quantile(servers, arrival, cpu)


# --- where it breaks ---------------------------------------------------------------------------


def first_users(breaks: Callable[[int], bool], high: int = MAX_USERS) -> int | None:
    """The fewest users (≥ 1) at which `breaks` (monotone: once broken, broken for more) holds;
    None when it does not up to `high`."""
    if breaks(1):
        return 1
    low, probe = 1, 2
    while not breaks(probe):
        if probe >= high:
            return None
        low, probe = probe, min(probe * 2, high)
    while probe - low > 1:  # breaks(probe) and not breaks(low)
        mid = (low + probe) // 2
        low, probe = (low, mid) if breaks(mid) else (mid, probe)
    return probe


def budget_breaks_at(
    figures: Figures, tasks_per_user_per_day: float, budget: float, a: Assumptions
) -> int | None:
    """The fewest users whose month costs more than `budget`."""
    return first_users(lambda users: project(figures, users, tasks_per_user_per_day, a).total > budget)


def latency_breaks_at(
    figures: Figures, tasks_per_user_per_day: float, servers: int, limit_s: float, a: Assumptions
) -> int | None:
    """The fewest users whose peak-hour p95 passes `limit_s` on a fleet of `servers` cores."""
    return first_users(
        lambda users: (
            p95_latency_s(figures, peak_rate(users, tasks_per_user_per_day, a), servers, a) > limit_s
        )
    )

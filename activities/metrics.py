"""The worker's Prometheus metrics: how long each step takes, cache lookups, slots in use.

Each worker process serves its own (keel/app/worker_metrics.py starts the endpoint and times the
steps); the API's /metrics exports what the stores hold (api/metrics.py). The objects live at
module level, registered once in prometheus_client's default registry, as that library expects:
a metric is a process-wide accumulator, and building one twice in a process raises a duplicate
error. Creating them starts nothing (no server, no thread).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from prometheus_client import Counter, Gauge, Histogram

CacheOutcome = Literal["hit", "miss", "bypass"]
CACHE_OUTCOMES: Final = frozenset(get_args(CacheOutcome))
SlotKind = Literal["activity", "local_activity"]

# Local steps take ~10 ms, model calls and ingestion batches up to a minute.
STEP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

STEP_DURATION: Final = Histogram(
    "keel_step_duration_seconds",
    "Time one activity execution took on this worker, by activity type and outcome (ok|error|cancelled)",
    ["step", "outcome"],
    buckets=STEP_BUCKETS,
)
CACHE_LOOKUPS: Final = Counter(
    "keel_cache_lookups_total",
    "The agent's cache lookups, by tenant and outcome (hit|miss|bypass)",
    ["tenant", "outcome"],
)
SLOTS_IN_USE: Final = Gauge(
    "keel_worker_slots_in_use",
    "Activity slots running a step now, by task queue and kind (activity|local_activity)",
    ["task_queue", "kind"],
)
SLOTS: Final = Gauge(
    "keel_worker_slots",
    "Activity slots this worker is configured with, by task queue and kind",
    ["task_queue", "kind"],
)

# What tests/compose/test_dashboard.py checks the dashboard's queries against.
WORKER_METRICS: Final = (STEP_DURATION, CACHE_LOOKUPS, SLOTS_IN_USE, SLOTS)


def count_cache_lookup(tenant: str, outcome: str) -> None:
    """Count one lookup of the agent's cache. An outcome outside hit|miss|bypass is a bug in the
    caller: it raises rather than exporting a series no dashboard reads."""
    if outcome not in CACHE_OUTCOMES:
        raise ValueError(f"cache outcome {outcome!r}: expected one of {', '.join(sorted(CACHE_OUTCOMES))}")
    CACHE_LOOKUPS.labels(tenant=tenant, outcome=outcome).inc()


def declare_slots(task_queue: str, kind: SlotKind, slots: int) -> None:
    """A worker's configured slots of `kind` on `task_queue`; its in-use series starts at 0."""
    SLOTS.labels(task_queue=task_queue, kind=kind).set(slots)
    SLOTS_IN_USE.labels(task_queue=task_queue, kind=kind).inc(0)

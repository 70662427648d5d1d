"""The worker's Prometheus side: a timer around every activity, and the endpoint that serves it.

What is measured is defined in activities/metrics.py; this module only wires it to the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import prometheus_client
import temporalio.exceptions
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.metrics import SLOTS_IN_USE, STEP_DURATION, SlotKind, declare_slots
from keel.core.settings import Settings

log = logging.getLogger(__name__)

_CANCELLED = (asyncio.CancelledError, temporalio.exceptions.CancelledError)


class StepMetrics(Interceptor):
    """Times each activity execution into keel_step_duration_seconds and counts it in
    keel_worker_slots_in_use while it runs. `slots`: the worker's configured slots per kind on
    `task_queue`, exported as keel_worker_slots."""

    def __init__(self, task_queue: str, slots: Mapping[SlotKind, int]) -> None:
        for kind, count in slots.items():
            declare_slots(task_queue, kind, count)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedStep(next)


class _TimedStep(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        kind: SlotKind = "local_activity" if info.is_local else "activity"
        in_use = SLOTS_IN_USE.labels(task_queue=info.task_queue, kind=kind)
        outcome = "ok"
        in_use.inc()
        started = time.perf_counter()
        try:
            return await self.next.execute_activity(input)
        except BaseException as err:
            outcome = "cancelled" if isinstance(err, _CANCELLED) else "error"
            raise
        finally:
            STEP_DURATION.labels(step=info.activity_type, outcome=outcome).observe(
                time.perf_counter() - started
            )
            in_use.dec()


def start_worker_metrics(settings: Settings) -> None:
    """Serve this process's metrics on settings.metrics (port 0: not at all). A port already taken
    (a second worker process on the same machine) is logged, not fatal: metrics never stop work."""
    cfg = settings.metrics
    if not cfg.worker_port:
        return
    try:
        prometheus_client.start_http_server(cfg.worker_port, addr=cfg.worker_host)
    except OSError as err:
        log.warning("worker metrics not served on %s:%s: %s", cfg.worker_host, cfg.worker_port, err)
        return
    log.info("worker metrics on http://%s:%s/metrics", cfg.worker_host, cfg.worker_port)

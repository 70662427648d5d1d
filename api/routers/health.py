"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.deps import AppState, State
from keel.core.pipelines import pipeline_named
from keel.core.settings import Settings
from retrieval.factories import reranker_name

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


TASK_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


def watched_task_queues(settings: Settings) -> list[str]:
    """The task queues a worker must poll for Keel to be ready: agent tasks, and ingestion."""
    return [settings.temporal.task_queue, settings.temporal.ingest_queue]


@dataclass(frozen=True)
class PollerSeen:
    identity: str  # the worker process ("pid@host"), the same on every queue it polls
    last_access: datetime


def unpolled(listings: dict[tuple[str, str], list[PollerSeen]], now: datetime, window_s: float) -> list[str]:
    """What no live worker polls, one message per (task queue, task type) of `listings`.

    A worker is live if it polled any of the listed queues within `window_s`: Temporal keeps a
    dead worker's pollers listed for minutes, so being listed proves nothing; and a worker whose
    activity slots are all busy stops polling activities for as long as they run (seen here), yet
    keeps polling workflow tasks, so one fresh poll vouches for the whole process.
    """
    live = {
        poller.identity
        for pollers in listings.values()
        for poller in pollers
        if (now - poller.last_access).total_seconds() <= window_s
    }
    return [
        f"no worker has polled task queue {queue} ({kind} tasks) in {window_s:g} s"
        for (queue, kind), pollers in listings.items()
        if not any(poller.identity in live for poller in pollers)
    ]


async def _pollers(state: AppState, queue: str, kind: str) -> list[PollerSeen]:
    response = await state.temporal.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=state.settings.temporal.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TASK_TYPES[kind],
        ),
        timeout=timedelta(seconds=3),
    )
    return [PollerSeen(p.identity, p.last_access_time.ToDatetime(UTC)) for p in response.pollers]


async def worker_check(state: AppState) -> str:
    """ "ok", or what no live worker polls. Raises when Temporal does not answer."""
    wanted = [(queue, kind) for queue in watched_task_queues(state.settings) for kind in TASK_TYPES]
    found = await asyncio.gather(*(_pollers(state, queue, kind) for queue, kind in wanted))
    # Temporal stamps last_access_time with its own clock: this assumes the two clocks agree to
    # well within the window (NTP does).
    missing = unpolled(
        dict(zip(wanted, found, strict=True)), datetime.now(UTC), state.settings.api.worker_liveness_s
    )
    return "; ".join(missing) or "ok"


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """Ready when Temporal answers, the graph store answers, and a live worker polls every task
    queue (recently: see `unpolled`)."""
    checks: dict[str, str] = {}
    try:
        worker = await worker_check(state)
        checks["temporal"], checks["worker"] = "ok", worker
    except Exception as err:
        checks["temporal"] = f"unreachable: {err}"
    try:
        await asyncio.to_thread(state.redis.ping)
        checks["falkordb"] = "ok"
    except Exception as err:
        checks["falkordb"] = f"unreachable: {err}"
    cfg = state.settings.retrieval
    try:
        configured = reranker_name(state.settings)
        checks["reranker"] = "ok"
    except ValueError as err:  # unreadable weights: the worker refuses to start with them too
        configured, checks["reranker"] = "none", str(err)
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 4
    reranks = pipeline_named(cfg.pipeline).rerank
    retrieval = {
        "pipeline": cfg.pipeline,
        # What the agent's rerank step runs: the configured reranker only if the pipeline reranks.
        "reranker": configured if reranks else "none",
        "configured_reranker": configured,
        "feedback_adapter": cfg.feedback_adapter_path or "none",
    }
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "retrieval": retrieval},
        status_code=200 if ready else 503,
    )

"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.deps import State
from keel.core.pipelines import pipeline_named
from retrieval.factories import reranker_name

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """Ready when Temporal answers, the graph store answers, and a worker polls the task queue."""
    checks: dict[str, str] = {}
    try:
        response = await state.temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=state.settings.temporal.namespace,
                task_queue=TaskQueue(name=state.settings.temporal.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=3),
        )
        checks["temporal"] = "ok"
        checks["worker"] = "ok" if response.pollers else "no worker polling the task queue"
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

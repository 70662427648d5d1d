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
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )

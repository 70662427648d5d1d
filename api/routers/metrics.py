"""Prometheus metrics of the whole platform, for the operator's Prometheus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import State
from api.metrics import count_tasks, exposition, task_tenants

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    """Keel's state in Prometheus' text format (api/metrics.py lists the families).

    Open, like /healthz: no API key, because Prometheus scrapes without one. It names every
    tenant that has usage, budgets, reviews or sources, and their figures: the API's port must be
    firewalled so that only the internal network (the Prometheus server) reaches /metrics, or a
    proxy in front must refuse it from outside.
    """
    tenants = await asyncio.to_thread(task_tenants, state.redis, state.settings)
    tasks = await count_tasks(state.temporal, tenants)
    body = await asyncio.to_thread(exposition, state.redis, state.settings, tasks, datetime.now(UTC))
    return Response(body, media_type=CONTENT_TYPE_LATEST)

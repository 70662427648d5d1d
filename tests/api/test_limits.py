"""Limits on what one caller sends and how often, on the real app and stores.

Each test builds its own app with tight limits over the session's servers; two such apps stand
for two API processes behind a load balancer: their rate counts are one (in Redis).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from keel.app.api_server import build_api
from keel.control.tasks import start_task
from keel.core.domain import TaskRequest
from keel.core.identity import Role
from keel.core.settings import LimitSettings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = pytest.mark.integration


@asynccontextmanager
async def app_with(platform, temporal_env, **limits: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = platform.settings.model_copy(update={"limits": LimitSettings(**limits)})
    app = build_api(settings, temporal=temporal_env.client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel.test") as client,
    ):
        yield client


def admin_key(platform, tenant: str | None = None) -> dict[str, str]:
    client = make_redis(platform.settings.falkordb_url)
    try:
        _, secret = KeyStore(client).create(
            tenant or f"l{uuid.uuid4().hex[:8]}", "boss", frozenset({Role.ADMIN})
        )
    finally:
        client.close()
    return {"Authorization": f"Bearer {secret}"}


async def test_a_body_over_the_limit_is_413_declared_or_streamed(platform, temporal_env) -> None:
    key = admin_key(platform)
    async with app_with(platform, temporal_env, max_body_bytes=1000) as api:
        body = {"title": "Big", "text": "x" * 2000}
        declared = await api.post("/v1/documents", json=body, headers=key)
        assert declared.status_code == 413 and "1000 bytes" in declared.json()["detail"]

        async def chunks():  # no Content-Length: the body is cut off as it streams past the limit
            for _ in range(4):
                yield b'{"title": "Big", "text": "' + b"y" * 400

        streamed = await api.post(
            "/v1/documents", content=chunks(), headers={**key, "content-type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        small = await api.post("/v1/documents", json={"title": "Small", "text": "ok"}, headers=key)
        assert small.status_code == 202


async def test_question_and_document_limits_come_from_settings(platform, temporal_env) -> None:
    key = admin_key(platform)
    async with app_with(platform, temporal_env, max_question_chars=20, max_document_chars=30) as api:
        long_question = await api.post("/v1/tasks", json={"question": "why " * 10}, headers=key)
        assert long_question.status_code == 422 and "limit is 20" in long_question.json()["detail"]
        long_document = await api.post("/v1/documents", json={"title": "t", "text": "z" * 31}, headers=key)
        assert long_document.status_code == 413 and "limit is 30" in long_document.json()["detail"]


async def test_rates_per_key_are_shared_by_every_api_process(platform, temporal_env) -> None:
    key, other = admin_key(platform), admin_key(platform)
    async with (
        app_with(platform, temporal_env, uploads_per_minute=2) as first,
        app_with(platform, temporal_env, uploads_per_minute=2) as second,
    ):
        body = {"title": "Rate", "text": "The rate relay is green."}
        assert (await first.post("/v1/documents", json=body, headers=key)).status_code == 202
        assert (await second.post("/v1/documents", json=body, headers=key)).status_code == 202
        refused = await first.post("/v1/documents", json=body, headers=key)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "2 upload requests a minute" in refused.json()["detail"]
        assert (await second.post("/v1/documents", json=body, headers=other)).status_code == 202


async def test_a_tenant_at_its_running_task_cap_is_asked_to_wait(platform, temporal_env) -> None:
    tenant = f"cap{uuid.uuid4().hex[:6]}"
    key = admin_key(platform, tenant)
    # A task on a queue no worker polls stays running: the tenant is at a cap of one.
    held = await start_task(
        temporal_env.client,
        TaskRequest("Held?", tenant=tenant, requester="boss"),
        f"idle-{uuid.uuid4().hex[:6]}",
    )
    try:
        async with app_with(platform, temporal_env, running_tasks_per_tenant=1) as api:
            refused = await api.post("/v1/tasks", json={"question": "Which team owns Kestrel?"}, headers=key)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
            assert f"tenant {tenant} has 1 tasks running" in refused.json()["detail"]
            other_tenant = await api.post(
                "/v1/tasks", json={"question": "Who?", "review": "always"}, headers=admin_key(platform)
            )
            assert other_tenant.status_code == 202
            await api.post(f"/v1/tasks/{other_tenant.json()['id']}/cancel", headers=admin_key(platform))
    finally:
        await temporal_env.client.get_workflow_handle(held).terminate("test over")

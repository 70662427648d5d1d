"""Schemathesis over the OpenAPI schema, with a valid admin key: no operation answers 5xx.

The API runs as a real uvicorn server (its own thread and event loop, its own Temporal and
FalkorDB clients) against the session's servers and worker; the key is an admin's of a tenant of
its own, so the fuzzer's deletes and decisions touch nothing another test reads. Bounded:
a few examples per operation, so it stays a test, not a campaign (`st run` is the campaign).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from keel.app.api_server import build_api
from keel.app.embedded import free_port
from keel.core.identity import Role
from keel.core.settings import Settings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = [pytest.mark.integration]

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def served(platform) -> Iterator[str]:
    """The API's base URL, served by uvicorn in a thread until the module's tests end."""
    settings: Settings = platform.settings
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_api(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def fuzz(base_url: str, key: str) -> dict[str, dict[int, int]]:
    """Every operation's examples sent; per operation, how many answers of each status."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    seen: dict[str, dict[int, int]] = {}
    server_errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        seen[label] = send_examples(operation, base_url, key, server_errors)
    assert not server_errors, "\n".join(server_errors)
    return seen


def send_examples(operation, base_url: str, key: str, server_errors: list[str]) -> dict[int, int]:
    """Hypothesis's examples of one operation sent with the key; 5xx answers go to `server_errors`."""
    counts: dict[int, int] = {}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            server_errors.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

    send()
    return counts


async def test_no_operation_answers_a_server_error(platform, served: str) -> None:
    tenant = f"fuzz{uuid.uuid4().hex[:6]}"
    redis_client = make_redis(platform.settings.falkordb_url)
    try:
        _, key = KeyStore(redis_client).create(tenant, "fuzzer", frozenset({Role.ADMIN}))
    finally:
        redis_client.close()
    # In a thread: the session's worker shares this event loop and keeps running tasks meanwhile.
    seen = await asyncio.to_thread(fuzz, served, key)
    sent = sum(sum(counts.values()) for counts in seen.values())
    print(f"schemathesis: {len(seen)} operations, {sent} requests, 0 answered 5xx; by operation: {seen}")
    assert len(seen) >= 20 and sent >= len(seen) * 2

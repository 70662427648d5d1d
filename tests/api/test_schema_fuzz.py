"""Schemathesis over the OpenAPI schema, with a valid admin key: no operation answers 5xx.

The API runs as a real uvicorn server (its own thread and event loop, its own Temporal and
FalkorDB clients) against the session's servers and worker; the key is an admin's of a tenant of
its own, so the fuzzer's deletes and decisions touch nothing another test reads. Bounded:
a few examples per operation, so it stays a test, not a campaign (`st run` is the campaign).

Schemathesis's own strings never hold a lone surrogate (it generates what UTF-8 can encode), so
half the examples get one field replaced by a hostile value: a NUL, a lone surrogate (bodies only:
a URL cannot carry one), control characters, or an oversize string. Still no 5xx.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.app.api_server import build_api
from keel.app.embedded import free_port
from keel.core.identity import Role
from keel.core.settings import Settings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = [pytest.mark.integration]

EXAMPLES_PER_OPERATION = 12

_SHORT = st.text(max_size=8)
# What a URL can carry (query and path): NULs, control characters, long values.
URL_HOSTILE = st.one_of(
    st.builds(lambda a, b: f"{a}\x00{b}", _SHORT, _SHORT),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=8),
    st.integers(257, 2000).map(lambda n: "x" * n),
)
# And what only a JSON body can: lone surrogates ("\ud800" escaped), values far past any limit.
BODY_HOSTILE = st.one_of(
    URL_HOSTILE,
    st.builds(lambda a, s, b: a + s + b, _SHORT, st.characters(categories=["Cs"]), _SHORT),
    # Past the question and reason limits, and past the document limit (a shorter text is
    # accepted and indexed: the worker is shared, so no megabyte documents from here).
    st.sampled_from([4_001, 20_000, 2_000_001]).map(lambda n: "y" * n),
)


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


@dataclass
class Campaign:
    """Per operation, how many answers of each status; the 5xx answers; how many were poisoned."""

    seen: dict[str, dict[int, int]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    poisoned: int = 0


def fuzz(base_url: str, key: str) -> Campaign:
    """Every operation's examples sent."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    campaign = Campaign()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        campaign.seen[label] = send_examples(operation, base_url, key, campaign)
    return campaign


def send_examples(operation, base_url: str, key: str, campaign: Campaign) -> dict[int, int]:
    """Hypothesis's examples of one operation sent with the key; 5xx answers go to the campaign."""
    counts: dict[int, int] = {}

    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case, data: st.DataObject) -> None:
        if data.draw(st.booleans(), label="poisoned") and poison(case, data):
            campaign.poisoned += 1
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            campaign.server_errors.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

    send()
    return counts


def poison(case: schemathesis.Case, data: st.DataObject) -> bool:
    """One field of the case (a body property, a path or query parameter) made hostile, if it
    has any."""
    targets: list[tuple[str, dict]] = []
    for where in (case.path_parameters, case.query):
        targets += [("url", where)] if where else []
    if isinstance(case.body, dict) and case.body:
        targets.append(("body", case.body))
    if not targets:
        return False
    kind, fields = data.draw(st.sampled_from(targets), label="where")
    name = data.draw(st.sampled_from(sorted(fields)), label="field")
    value = data.draw(BODY_HOSTILE if kind == "body" else URL_HOSTILE, label="hostile")
    # Metadata is a free dict: the hostile value goes in as a key and as a value.
    fields[name] = {value: value} if name == "metadata" else value
    return True


async def test_no_operation_answers_a_server_error(platform, served: str) -> None:
    tenant = f"fuzz{uuid.uuid4().hex[:6]}"
    redis_client = make_redis(platform.settings.falkordb_url)
    try:
        _, key = KeyStore(redis_client).create(tenant, "fuzzer", frozenset({Role.ADMIN}))
    finally:
        redis_client.close()
    # In a thread: the session's worker shares this event loop and keeps running tasks meanwhile.
    campaign = await asyncio.to_thread(fuzz, served, key)
    seen = campaign.seen
    sent = sum(sum(counts.values()) for counts in seen.values())
    print(
        f"schemathesis: {len(seen)} operations, {sent} examples sent ({campaign.poisoned} with a "
        f"NUL, surrogate, control or oversize value), {len(campaign.server_errors)} answered 5xx; "
        f"by operation: {seen}"
    )
    assert not campaign.server_errors, "\n".join(campaign.server_errors)
    assert len(seen) >= 20 and sent >= len(seen) * 2 and campaign.poisoned >= len(seen)

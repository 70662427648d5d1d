"""The answer cache over REST, on the real servers: a paraphrase is a hit (a task of its own,
traced and audited, naming its source); an edit or a deletion of a cited document ends the hit at
once; an answer that needed review is reused only once approved, and only under the same policy.

The session runs with the cache off (other tests ask the same questions and expect fresh runs);
each test here turns it on in the session's worker and off again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from activities.answer_memory import AnswerMemory
from keel.stores.answer_cache import AnswerCache
from keel.stores.redis import make_redis
from tests.support.polling import wait_for_status, wait_indexed

pytestmark = [pytest.mark.integration]

GATE = "The west gate code of the Lindqvist depot is 4417. The east gate has no code."
QUESTION = "What is the west gate code of the Lindqvist depot?"
PARAPHRASE = "what's the west gate code of the lindqvist depot"


@pytest.fixture
def cache_on(platform) -> Iterator[None]:  # type: ignore[no-untyped-def]
    agent = platform.components.agent
    settings = platform.settings
    client = make_redis(settings.falkordb_url)
    cache = AnswerCache(client, settings.cache.max_entries_per_tenant)
    agent.memory = AnswerMemory(
        cache, agent._graph, platform.components.dense.encode_query, settings.cache.threshold
    )
    try:
        yield
    finally:
        agent.memory = None
        client.close()


@pytest.fixture
def team(callers):  # type: ignore[no-untyped-def]
    """A tenant of this test's own: an asker who also uploads and audits, and a reviewer."""
    tenant = f"c{uuid.uuid4().hex[:8]}"
    asker = callers("ann", "submitter", "ingester", "auditor", tenant=tenant)
    return asker, callers("rita", "reviewer", tenant=tenant)


async def upload(api: httpx.AsyncClient, document_id: str, text: str) -> None:
    response = await api.post("/v1/documents", json={"id": document_id, "title": "Depot gates", "text": text})
    assert response.status_code == 202, response.text
    await wait_indexed(api, document_id, response.json()["ingestion_id"])


async def ask(api: httpx.AsyncClient, question: str, review: str = "never", **body: object) -> dict:
    response = await api.post("/v1/tasks", json={"question": question, "review": review, **body})
    assert response.status_code == 202, response.text
    return await wait_for_status(
        api, response.json()["id"], {"completed", "rejected", "failed", "awaiting_review"}
    )


async def test_a_paraphrase_is_served_from_the_cache_as_a_task_of_its_own(cache_on, team) -> None:  # type: ignore[no-untyped-def]
    asker, _ = team
    await upload(asker, "gates", GATE)
    first = await ask(asker, QUESTION)
    assert "4417" in first["result"]["answer"] and first["result"]["cache"]["hit"] is False

    second = await ask(asker, PARAPHRASE)
    cache = second["result"]["cache"]
    assert cache["hit"] is True and cache["source_task"] == first["id"], cache
    assert second["result"]["answer"] == first["result"]["answer"]
    assert [s["step"] for s in second["result"]["usage"]["steps"]] == ["cache"]  # no retrieval, no model
    trace = (await asker.get(f"/v1/tasks/{second['id']}/trace")).json()
    assert {o["name"] for o in trace["observations"]} >= {"cache", "finalize"}
    assert "plan" not in {o["name"] for o in trace["observations"]}

    bypassed = await ask(asker, PARAPHRASE, cache=False)
    assert bypassed["result"]["cache"] == {**bypassed["result"]["cache"], "hit": False}
    assert "bypassed" in bypassed["result"]["cache"]["note"]


async def test_an_edit_or_a_deletion_of_a_cited_document_ends_the_hit_at_once(cache_on, team) -> None:  # type: ignore[no-untyped-def]
    asker, _ = team
    await upload(asker, "gates", GATE)
    await ask(asker, QUESTION)
    assert (await ask(asker, PARAPHRASE))["result"]["cache"]["hit"] is True

    await upload(asker, "gates", GATE.replace("4417", "5521"))  # the code changes
    after_edit = await ask(asker, PARAPHRASE)
    assert after_edit["result"]["cache"]["hit"] is False
    assert "5521" in after_edit["result"]["answer"] and "4417" not in after_edit["result"]["answer"]
    assert (await ask(asker, QUESTION))["result"]["cache"]["hit"] is True  # the new answer is reused

    assert (await asker.delete("/v1/documents/gates")).status_code == 200
    after_delete = await ask(asker, QUESTION)
    assert after_delete["result"]["cache"]["hit"] is False
    assert "5521" not in (after_delete["result"]["answer"] or "")


async def test_a_reviewed_answer_is_reused_only_once_approved_and_under_the_same_policy(
    cache_on, team
) -> None:  # type: ignore[no-untyped-def]
    asker, reviewer = team
    await upload(asker, "gates", GATE)
    pending = await ask(asker, QUESTION, review="always")
    assert pending["status"] == "awaiting_review"
    while_pending = await ask(asker, PARAPHRASE, review="always")
    assert while_pending["status"] == "awaiting_review"  # nothing approved to reuse yet

    rejected = await reviewer.post(
        f"/v1/reviews/{pending['id']}", json={"decision": "reject", "reason": "no"}
    )
    assert rejected.status_code == 200, rejected.text
    approved = await reviewer.post(f"/v1/reviews/{while_pending['id']}", json={"decision": "approve"})
    assert approved.status_code == 200, approved.text
    await wait_for_status(asker, while_pending["id"], {"completed"})

    reused = await ask(asker, QUESTION, review="always")
    assert reused["status"] == "completed"  # no second review: the reused answer was approved
    assert reused["result"]["cache"]["source_task"] == while_pending["id"]
    assert reused["result"]["cache"]["approved_by"] == "rita"
    audit = (await asker.get("/v1/audit", params={"task_id": reused["id"]})).json()
    assert any(e["action"] == "cache_hit" and while_pending["id"] in e["reason"] for e in audit["entries"]), (
        audit
    )

    other_policy = await ask(asker, QUESTION, review="never")
    assert other_policy["result"]["cache"]["hit"] is False  # approved under `always`, not `never`

"""End to end over REST on the real components: ingest, ask, review, read the cited answer."""

from __future__ import annotations

import httpx
import pytest

from tests.support.polling import eventually, wait_for_status

pytestmark = [pytest.mark.integration]

TWO_HOP = "Who leads the team that owns the system Project Halcyon depends on?"


async def test_demo_corpus_indexed_in_both_stores(platform, demo_corpus) -> None:
    tenant = platform.settings.tenant
    indexed = demo_corpus["result"].indexed
    assert len(indexed) == len(demo_corpus["documents"]) >= 30
    vectors, graph = platform.components.ingestion._vectors, platform.components.ingestion._graph
    # Per document: other tests upload documents of their own into the same tenant.
    for document in indexed:
        assert vectors.count(tenant, document.document_id) == document.chunks >= 1
        assert graph.document(tenant, document.document_id)["chunks"] == document.chunks


async def test_documents_ingested_by_a_batch_report_their_status(api: httpx.AsyncClient, demo_corpus) -> None:
    [kestrel] = [d for d in demo_corpus["result"].indexed if d.document_id == "system-kestrel"]
    view = (await api.get("/v1/documents/system-kestrel")).json()
    assert view["status"] == "indexed"
    assert (view["chunks"], view["version"]) == (kestrel.chunks, kestrel.version)


async def test_task_needing_review_is_approved_and_cites_expected_documents(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    response = await api.post("/v1/tasks", json={"question": TWO_HOP, "review": "always"})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]

    view = await wait_for_status(api, task_id, {"awaiting_review"})
    assert view["step"] == "review" and view["result"] is None

    async def queued() -> dict | None:
        items = (await api.get("/v1/reviews")).json()["items"]
        return next((i for i in items if i["task_id"] == task_id), None)

    item = await eventually(queued, 30, "the task to appear in the review queue")
    assert item["question"] == TWO_HOP and item["draft"]

    decided = await callers("rita", "reviewer").post(
        f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
    )
    assert decided.status_code == 200, decided.text

    view = await wait_for_status(api, task_id, {"completed"})
    result = view["result"]
    cited = {c["document_id"] for c in result["citations"]}
    assert cited & {"team-aurora", "person-maya-okafor", "system-kestrel"}, result
    assert "Maya Okafor" in result["answer"], result["answer"]
    for citation in result["citations"]:
        assert citation["quote"] and citation["chunk_id"].startswith(citation["document_id"] + "#")
    assert result["review"]["decision"] == "approve" and result["review"]["reviewer"] == "rita"
    assert result["review"]["decided_at"] and result["review"]["changed"] is False
    assert (
        result["review"]["requested_at"] <= result["review"]["decided_at"]
        and result["review"]["waited_s"] > 0
    )
    trace = (await api.get(f"/v1/tasks/{task_id}/trace")).json()["observations"]
    [review] = [o for o in trace if o["name"] == "review"]
    assert review["type"] == "guardrail" and review["output"]["reviewer"] == "rita"
    assert review["latency_ms"] == pytest.approx(result["review"]["waited_s"] * 1000, abs=1)

    again = await callers("rita", "reviewer").post(
        f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
    )
    assert again.status_code == 409


async def test_edit_replaces_the_draft_and_records_the_diff(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    task_id = (await api.post("/v1/tasks", json={"question": TWO_HOP, "review": "always"})).json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    edited = "Maya Okafor leads Team Aurora, which owns Kestrel."
    response = await callers("sam", "reviewer").post(
        f"/v1/reviews/{task_id}", json={"decision": "edit", "reviewer": "sam", "answer": edited}
    )
    assert response.status_code == 200, response.text
    result = (await wait_for_status(api, task_id, {"completed"}))["result"]
    assert result["answer"] == edited
    assert (
        result["review"]["changed"] is True and "+Maya Okafor leads Team Aurora" in result["review"]["diff"]
    )


async def test_reject_records_the_reason(api: httpx.AsyncClient, demo_corpus, callers) -> None:
    task_id = (await api.post("/v1/tasks", json={"question": TWO_HOP, "review": "always"})).json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    response = await callers("sam", "reviewer").post(
        f"/v1/reviews/{task_id}",
        json={"decision": "reject", "reviewer": "sam", "reason": "cites the wrong team"},
    )
    assert response.status_code == 200
    view = await wait_for_status(api, task_id, {"rejected"})
    assert view["result"]["answer"] is None
    assert view["result"]["review"]["reason"] == "cites the wrong team"
    listed = (await api.get("/v1/tasks", params={"status": "rejected"})).json()["tasks"]
    assert task_id in {t["id"] for t in listed}


async def test_review_never_completes_without_a_reviewer(api: httpx.AsyncClient, demo_corpus) -> None:
    task_id = (
        await api.post(
            "/v1/tasks", json={"question": "How long are events kept in Kestrel?", "review": "never"}
        )
    ).json()["id"]
    view = await wait_for_status(api, task_id, {"completed"})
    assert view["result"]["review"] is None and view["result"]["citations"]


async def test_ingesting_the_same_files_twice_changes_nothing(platform, temporal_env, demo_corpus) -> None:
    import uuid

    from keel.control.documents import start_batch

    tenant = platform.settings.tenant
    vectors, graph = platform.components.ingestion._vectors, platform.components.ingestion._graph
    before = (vectors.count(tenant), graph.counts(tenant))
    calls_before = platform.components.agent._dense.encode_calls
    handle = await start_batch(
        temporal_env.client,
        platform.settings,
        demo_corpus["documents"],
        batch_id=f"again-{uuid.uuid4().hex[:8]}",
    )
    again = await handle.result()
    assert not again.failed
    assert [(d.document_id, d.version, d.chunks) for d in again.indexed] == [
        (d.document_id, d.version, d.chunks) for d in demo_corpus["result"].indexed
    ]
    assert (vectors.count(tenant), graph.counts(tenant)) == before
    # Unchanged documents compute no embedding at all.
    assert platform.components.agent._dense.encode_calls == calls_before


async def test_auto_review_sends_an_off_corpus_question_to_a_human(
    api: httpx.AsyncClient, demo_corpus
) -> None:
    async def submit(question: str) -> str:
        return (await api.post("/v1/tasks", json={"question": question, "review": "auto"})).json()["id"]

    off_corpus = await submit("What is the capital of France?")
    answerable = await submit("Which team owns Kestrel?")
    view = await wait_for_status(api, off_corpus, {"awaiting_review"})
    item = next(i for i in (await api.get("/v1/reviews")).json()["items"] if i["task_id"] == off_corpus)
    assert item["reason"].startswith("weak grounding")
    assert item["draft"] == "The indexed documents do not answer this question."
    done = await wait_for_status(api, answerable, {"completed"})
    assert done["result"]["review"] is None and "Team Aurora" in done["result"]["answer"]
    assert view["status"] == "awaiting_review"
    await api.post(f"/v1/tasks/{off_corpus}/cancel")

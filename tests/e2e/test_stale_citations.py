"""Over REST: a task's citations carry the cited versions, and reading it later tells what changed."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.polling import wait_for_status, wait_indexed

pytestmark = [pytest.mark.integration]

# Names no demo document uses, so these documents answer only this test's question; each holds
# one hop of it (who owns Quillfeather, who leads that team), so the answer cites both.
SYSTEM_TEXT = (
    "Quillfeather is the greenhouse irrigation scheduler of Harrowgate Farms. "
    "Quillfeather is owned by Team Marigold. Quillfeather waters 40 greenhouses every morning."
)
TEAM_TEXT = (
    "Team Marigold is the irrigation team of Harrowgate Farms. "
    "Team Marigold is led by Odalys Venkataraman and has 4 engineers."
)
QUESTION = "Who leads the team that owns Quillfeather?"


async def upload(api: httpx.AsyncClient, document_id: str, title: str, text: str) -> str:
    """Upload a document, wait until this upload is indexed, return its version."""
    response = await api.post("/v1/documents", json={"id": document_id, "title": title, "text": text})
    assert response.status_code == 202, response.text
    view = await wait_indexed(api, document_id, response.json()["ingestion_id"])
    return str(view["version"])


async def read_result(api: httpx.AsyncClient, task_id: str) -> dict:
    response = await api.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


async def test_a_changed_or_deleted_cited_document_makes_its_citations_stale(
    api: httpx.AsyncClient, platform, demo_corpus
) -> None:
    tenant = platform.settings.tenant
    vectors, graph = platform.components.ingestion._vectors, platform.components.ingestion._graph
    suffix = uuid.uuid4().hex[:8]
    system, team = f"system-quillfeather-{suffix}", f"team-marigold-{suffix}"
    try:
        versions = {
            system: await upload(api, system, "Quillfeather (system)", SYSTEM_TEXT),
            team: await upload(api, team, "Team Marigold (team)", TEAM_TEXT),
        }
        task_id = (await api.post("/v1/tasks", json={"question": QUESTION, "review": "never"})).json()["id"]
        result = (await wait_for_status(api, task_id, {"completed"}))["result"]
        citations = result["citations"]
        assert {c["document_id"] for c in citations} == {system, team}, citations
        assert result["stale"] is False
        for citation in citations:
            assert citation["version"] == citation["current_version"] == versions[citation["document_id"]]
            assert citation["file_hash"] and citation["modified_at"]
            assert (citation["stale"], citation["stale_reason"]) == (False, "")

        # The team's lead changes: a re-upload under the same id, with new text.
        changed = await upload(api, team, "Team Marigold (team)", TEAM_TEXT.replace("Odalys", "Ilse"))
        assert changed != versions[team]
        result = await read_result(api, task_id)
        assert result["stale"] is True
        by_document = {c["document_id"]: c for c in result["citations"]}
        assert by_document[team]["stale"] is True and by_document[team]["stale_reason"] == "changed"
        assert by_document[team]["version"] == versions[team]
        assert by_document[team]["current_version"] == changed
        assert (by_document[system]["stale"], by_document[system]["stale_reason"]) == (False, "")

        assert (await api.delete(f"/v1/documents/{system}")).status_code == 200
        result = await read_result(api, task_id)
        by_document = {c["document_id"]: c for c in result["citations"]}
        assert by_document[system]["stale"] is True and by_document[system]["stale_reason"] == "deleted"
        assert by_document[system]["current_version"] is None
        assert by_document[team]["stale_reason"] == "changed" and result["stale"] is True
    finally:
        for document_id in (system, team):
            vectors.delete_document(tenant, document_id)
            graph.delete_document(tenant, document_id)

"""A team's first documents: a small Markdown folder, synced, answers its facts (issue 17)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.polling import eventually, wait_for_status

pytestmark = [pytest.mark.integration]

# Title-only first lines straight above their text (no blank line), a one-sentence body, a list
# whose items end without a period, Windows line endings.
FILES = {
    "gate-codes.md": "# Gate codes\nThe west gate code is 4417.\n",
    "parking.md": "# Parking\r\n- Visitors park in lot C\r\n- Staff park in the **garage**",
}


def _ok(response: httpx.Response, code: int) -> dict:
    assert response.status_code == code, response.text
    return response.json()


async def _sync(client: httpx.AsyncClient, temporal_env, source_id: str) -> dict:
    started = _ok(await client.post(f"/v1/sources/{source_id}/sync"), 202)

    async def finished() -> dict | None:
        sync = _ok(await client.get(f"/v1/sources/{source_id}"), 200)["last_sync"]
        done = sync["run_id"] == started["run_id"] and sync["status"] in ("completed", "failed")
        return sync if done else None

    sync = await eventually(finished, 120, f"source {source_id} to sync")
    await temporal_env.client.get_workflow_handle(started["workflow_id"], run_id=started["run_id"]).result()
    return sync


async def _ask(client: httpx.AsyncClient, question: str) -> dict:
    body = {"question": question, "review": "never", "cache": False}
    task_id = _ok(await client.post("/v1/tasks", json=body), 202)["id"]
    return (await wait_for_status(client, task_id, {"completed"}))["result"]


async def test_a_two_file_markdown_folder_answers_its_facts(callers, temporal_env, tmp_path_factory) -> None:
    tag = uuid.uuid4().hex[:8]
    # A fresh tenant: its first two documents are all it has.
    client = callers("first", tenant=f"first{tag}")
    root = tmp_path_factory.mktemp(f"first-docs-{tag}")
    for name, text in FILES.items():
        (root / name).write_text(text)
    source_id = f"first-{tag}"
    _ok(await client.post("/v1/sources", json={"path": str(root), "id": source_id}), 201)

    sync = await _sync(client, temporal_env, source_id)
    assert (sync["status"], sync["indexed"], sync["failed"]) == ("completed", 2, 0), sync

    gate = await _ask(client, "What is the west gate code?")
    assert "4417" in gate["answer"], gate
    # The sentence itself is quoted: not merged with its heading, not the heading alone.
    assert ("gate-codes", "The west gate code is 4417.") in _quotes(gate), gate

    parking = await _ask(client, "Where do visitors park?")
    assert "lot C" in parking["answer"], parking
    assert ("parking", "Visitors park in lot C") in _quotes(parking), parking


def _quotes(result: dict) -> set[tuple[str, str]]:
    return {(c["document_id"], c["quote"]) for c in result["citations"]}

"""Every error path of the REST API, on the real app, Temporal dev server and worker: never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.polling import eventually, wait_for_status, wait_indexed

pytestmark = [pytest.mark.integration]

QUESTION = "Who leads the team that owns the system Project Halcyon depends on?"


def _unknown_task() -> str:
    return f"task-{uuid.uuid4().hex}"


def _check(response: httpx.Response, expected: int) -> dict:
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.status_code == expected, response.text
    return response.json()


def _reason(body: dict) -> str:
    """The reason of a 422: FastAPI lists the failing fields and messages in `detail`."""
    detail = body["detail"]
    assert detail, body
    return str(detail)


# --- tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({}, "question"),
        ({"review": "never"}, "question"),
        ({"question": "   "}, "blank"),
        ({"question": QUESTION, "review": "sometimes"}, "review"),
        ({"question": "x" * 4001}, "4000"),
        ({"question": 42}, "question"),
    ],
    ids=["missing", "missing-with-review", "blank", "bad-review", "too-long", "not-a-string"],
)
async def test_submit_task_rejects_invalid_bodies(api: httpx.AsyncClient, payload: dict, reason: str) -> None:
    body = _check(await api.post("/v1/tasks", json=payload), 422)
    assert reason in _reason(body)


async def test_submit_task_rejects_a_non_json_body(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/tasks", content=b"question=who", headers={"content-type": "application/json"}
    )
    assert "json" in _reason(_check(response, 422)).lower()


async def test_submit_task_accepts_the_longest_question(api: httpx.AsyncClient) -> None:
    task_id = _check(await api.post("/v1/tasks", json={"question": "x" * 4000, "review": "never"}), 202)["id"]
    await wait_for_status(api, task_id, {"completed", "rejected", "failed"})


@pytest.mark.parametrize(
    "task_id",
    [_unknown_task(), "..%2Fetc", "task-", "not-a-task", "task-" + "0" * 200],
    ids=["never-started", "traversal", "bare-prefix", "no-prefix", "too-long"],
)
async def test_unknown_task_is_404(api: httpx.AsyncClient, task_id: str, callers) -> None:
    _check(await api.get(f"/v1/tasks/{task_id}"), 404)
    _check(await api.get(f"/v1/tasks/{task_id}/trace"), 404)
    _check(await api.post(f"/v1/tasks/{task_id}/cancel"), 404)
    _check(
        await callers("rita", "reviewer").post(
            f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
        ),
        404,
    )


async def test_unknown_task_id_is_named_in_the_404(api: httpx.AsyncClient) -> None:
    task_id = _unknown_task()
    assert task_id in _check(await api.get(f"/v1/tasks/{task_id}"), 404)["detail"]


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=501", "limit=many"])
async def test_list_tasks_rejects_bad_filters(api: httpx.AsyncClient, query: str) -> None:
    _reason(_check(await api.get(f"/v1/tasks?{query}"), 422))


async def test_list_tasks_by_status(api: httpx.AsyncClient, demo_corpus) -> None:
    task_id = _check(await api.post("/v1/tasks", json={"question": QUESTION, "review": "never"}), 202)["id"]
    await wait_for_status(api, task_id, {"completed"})

    async def listed() -> list | None:
        tasks = _check(await api.get("/v1/tasks?status=completed"), 200)["tasks"]
        return tasks if any(t["id"] == task_id for t in tasks) else None

    tasks = await eventually(listed, 30, "the completed task to be listed")
    assert all(t["status"] == "completed" for t in tasks)


async def test_cancel_a_task_awaiting_review(api: httpx.AsyncClient, demo_corpus, callers) -> None:
    task_id = _check(await api.post("/v1/tasks", json={"question": QUESTION, "review": "always"}), 202)["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})

    view = _check(await api.post(f"/v1/tasks/{task_id}/cancel"), 202)
    assert view["id"] == task_id and view["status"] == "awaiting_review"
    view = await wait_for_status(api, task_id, {"cancelled"})
    assert view["result"] is None

    again = _check(await api.post(f"/v1/tasks/{task_id}/cancel"), 409)
    assert "cancelled" in again["detail"]
    # A cancelled task takes no decision either.
    _check(
        await callers("rita", "reviewer").post(
            f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
        ),
        409,
    )


async def test_cancel_a_completed_task_is_409(api: httpx.AsyncClient, demo_corpus) -> None:
    task_id = _check(await api.post("/v1/tasks", json={"question": QUESTION, "review": "never"}), 202)["id"]
    await wait_for_status(api, task_id, {"completed"})
    assert "completed" in _check(await api.post(f"/v1/tasks/{task_id}/cancel"), 409)["detail"]


# --- reviews ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"decision": "reject", "reviewer": "rita"}, "reason"),
        ({"decision": "reject", "reviewer": "rita", "reason": "  "}, "reason"),
        ({"decision": "edit", "reviewer": "rita"}, "edited answer"),
        ({"decision": "edit", "reviewer": "rita", "answer": "\n"}, "edited answer"),
        ({"decision": "approve", "reviewer": "   "}, "reviewer"),
        ({"decision": "approve", "reviewer": ""}, "reviewer"),
        ({"decision": "maybe", "reviewer": "rita"}, "decision"),
        ({"reviewer": "rita"}, "decision"),
    ],
    ids=[
        "reject-no-reason",
        "reject-blank-reason",
        "edit-no-answer",
        "edit-blank-answer",
        "blank-reviewer",
        "empty-reviewer",
        "bad-decision",
        "no-decision",
    ],
)
async def test_review_rejects_invalid_bodies(api: httpx.AsyncClient, payload: dict, reason: str) -> None:
    # The body is validated before the task is looked up: 422 even for an unknown task.
    body = _check(await api.post(f"/v1/reviews/{_unknown_task()}", json=payload), 422)
    assert reason in _reason(body)


async def test_review_of_a_completed_task_is_409(api: httpx.AsyncClient, demo_corpus, callers) -> None:
    task_id = _check(await api.post("/v1/tasks", json={"question": QUESTION, "review": "never"}), 202)["id"]
    await wait_for_status(api, task_id, {"completed"})
    response = await callers("rita", "reviewer").post(
        f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
    )
    assert task_id in _check(response, 409)["detail"]


async def test_review_queue_is_a_list(api: httpx.AsyncClient) -> None:
    assert isinstance(_check(await api.get("/v1/reviews"), 200)["items"], list)


# --- documents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"text": "Some text."}, "title"),
        ({"title": "  ", "text": "Some text."}, "blank"),
        ({"title": "T", "text": "   "}, "blank"),
        ({"title": "T"}, "text"),
        ({"id": "a/b", "title": "T", "text": "Some text."}, "pattern"),
        ({"id": "a b", "title": "T", "text": "Some text."}, "pattern"),
        ({"id": "../etc", "title": "T", "text": "Some text."}, "pattern"),
        ({"id": "x" * 129, "title": "T", "text": "Some text."}, "pattern"),
        ({"title": "T", "text": "Some text.", "metadata": ["a"]}, "metadata"),
        ({"title": "T", "text": "Some text.", "metadata": "a"}, "metadata"),
    ],
    ids=[
        "missing-title",
        "blank-title",
        "blank-text",
        "missing-text",
        "id-slash",
        "id-space",
        "id-traversal",
        "id-too-long",
        "metadata-list",
        "metadata-string",
    ],
)
async def test_upload_document_rejects_invalid_bodies(
    api: httpx.AsyncClient, payload: dict, reason: str
) -> None:
    body = _check(await api.post("/v1/documents", json=payload), 422)
    assert reason in _reason(body)


async def test_upload_document_rejects_a_non_json_body(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/documents", content=b"{not json", headers={"content-type": "application/json"}
    )
    _reason(_check(response, 422))


async def test_upload_document_indexes_and_reupload_changes_the_version(
    api: httpx.AsyncClient, platform
) -> None:
    document_id = f"errors-test-{uuid.uuid4().hex[:8]}"
    first = {
        "id": document_id,
        "title": "Harbour logistics",
        "text": "The Osprey crane fleet at Pier 9 is maintained by the Tidewater crew.",
        "metadata": {"source": "test"},
    }
    accepted = _check(await api.post("/v1/documents", json=first), 202)
    assert accepted["id"] == document_id and accepted["ingestion_id"]
    view = await wait_indexed(api, document_id, accepted["ingestion_id"])
    assert view["chunks"] >= 1 and view["version"] and view["reason"] is None

    second = first | {"text": "The Osprey crane fleet moved to Pier 12 and is now run by the Gannet crew."}
    accepted = _check(await api.post("/v1/documents", json=second), 202)
    again = await wait_indexed(api, document_id, accepted["ingestion_id"])
    assert again["chunks"] >= 1 and again["version"] and again["version"] != view["version"]


async def test_document_without_an_id_gets_one_from_its_content(api: httpx.AsyncClient, platform) -> None:
    payload = {"title": "Untitled", "text": f"Content-addressed note {uuid.uuid4().hex}."}
    first = _check(await api.post("/v1/documents", json=payload), 202)
    second = _check(await api.post("/v1/documents", json=payload), 202)
    assert first["id"] == second["id"] and first["id"].startswith("doc-")
    await wait_indexed(api, second["id"], second["ingestion_id"])


@pytest.mark.parametrize(
    "document_id", [f"never-{uuid.uuid4().hex[:8]}", "..%2Fetc", "a%20b", "-leading-dash", "x" * 129]
)
async def test_unknown_document_is_404(api: httpx.AsyncClient, document_id: str) -> None:
    _check(await api.get(f"/v1/documents/{document_id}"), 404)


# --- health -------------------------------------------------------------------------------


async def test_healthz(api: httpx.AsyncClient) -> None:
    assert _check(await api.get("/healthz"), 200) == {"status": "ok"}


async def test_readyz_reports_every_check_ok(api: httpx.AsyncClient, platform) -> None:
    body = _check(await api.get("/readyz"), 200)
    assert body["status"] == "ready"
    assert body["checks"] == {"temporal": "ok", "worker": "ok", "falkordb": "ok", "reranker": "ok"}
    # Which reranker the agent runs, and with which pipeline: the default reranks with the learned model.
    retrieval = body["retrieval"]
    assert retrieval["pipeline"] == platform.settings.retrieval.pipeline
    assert (
        retrieval["reranker"].startswith("ltr-linear")
        and retrieval["reranker"] == retrieval["configured_reranker"]
    )
    assert retrieval["feedback_adapter"] == "none"

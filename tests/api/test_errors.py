"""Every error path of the REST API, on the real app, Temporal dev server and worker: never a 500."""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from keel.app.api_server import build_api
from keel.core.identity import Role
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis
from tests.support.polling import eventually, wait_for_status, wait_indexed
from tests.support.servers import falkordb_server, start_temporal

pytestmark = [pytest.mark.integration]

QUESTION = "Who leads the team that owns the system Project Halcyon depends on?"


def _unknown_task() -> str:
    return f"task-{uuid.uuid4().hex}"


def _check(response: httpx.Response, expected: int) -> dict:
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.status_code == expected, response.text
    return response.json()


def _reason(body: dict) -> str:
    """The reason of a refusal: `detail` says it in words (for a 422, each failing field and why)."""
    detail = body["detail"]
    assert detail and isinstance(detail, str), body
    assert isinstance(body["errors"], list), body
    return detail


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


# --- what no field may carry: NULs, lone surrogates, control characters -------------------

# JSON may escape any of them ("\u0000", "\ud800"), so every request model and parameter is
# checked. Sent as raw bytes: httpx cannot encode a lone surrogate itself.
NUL, SURROGATE, BELL = "\x00", "\ud800", "\x07"
MAX_REFUSAL_BYTES = 2048


@pytest.fixture
def edge(callers) -> httpx.AsyncClient:
    """An admin of a key of its own: these refusals count against no other test's rates."""
    return callers(f"edge-{uuid.uuid4().hex[:8]}", "admin")


async def _send(
    api: httpx.AsyncClient, method: str, url: str, payload: object | None = None
) -> httpx.Response:
    content = None if payload is None else json.dumps(payload).encode()  # ASCII, surrogates escaped
    return await api.request(method, url, content=content, headers={"content-type": "application/json"})


def _refused_field(response: httpx.Response, field: str) -> dict:
    """A 422 naming `field`, that renders as JSON and stays small."""
    assert response.status_code == 422, response.text
    assert len(response.content) < MAX_REFUSAL_BYTES, len(response.content)
    body = response.json()
    assert field in body["detail"], body
    assert any(field in [str(part) for part in error["loc"]] for error in body["errors"]), body
    return body


_REVIEW = f"/v1/reviews/task-{uuid.uuid4().hex}"
_TASK = {"question": "Who owns Kestrel?"}
_DOCUMENT = {"title": "T", "text": "Some text."}


@pytest.mark.parametrize(
    "url, payload, field",
    [
        ("/v1/tasks", {"question": f"who{NUL}?"}, "question"),
        ("/v1/tasks", {"question": f"who{SURROGATE}?"}, "question"),
        ("/v1/tasks", {"question": f"who{BELL}?"}, "question"),
        ("/v1/tasks", _TASK | {"requester": f"a{NUL}"}, "requester"),
        ("/v1/tasks", _TASK | {"review_policy": {"sensitive_patterns": [f"x{NUL}"]}}, "sensitive_patterns"),
        ("/v1/documents", _DOCUMENT | {"id": f"doc{NUL}"}, "id"),
        ("/v1/documents", _DOCUMENT | {"title": f"T{SURROGATE}"}, "title"),
        ("/v1/documents", {"title": "T", "text": f"Some{NUL} text."}, "text"),
        ("/v1/documents", {"title": "T", "text": f"Some{SURROGATE} text."}, "text"),
        ("/v1/documents", _DOCUMENT | {"metadata": {f"k{NUL}": "v"}}, "metadata"),
        ("/v1/documents", _DOCUMENT | {"metadata": {"k": f"v{SURROGATE}"}}, "metadata"),
        ("/v1/documents", _DOCUMENT | {"metadata": {"k": [{"a": [{"b": [1]}]}]}}, "metadata"),
        ("/v1/documents", _DOCUMENT | {"metadata": {str(i): i for i in range(201)}}, "metadata"),
        ("/v1/documents", _DOCUMENT | {"metadata": {"k": "v" * 2001}}, "metadata"),
        (_REVIEW, {"decision": "reject", "reason": f"no{NUL}"}, "reason"),
        (_REVIEW, {"decision": "edit", "answer": f"new{SURROGATE}"}, "answer"),
        (_REVIEW, {"decision": "request_changes", "instruction": f"more{BELL}"}, "instruction"),
        (_REVIEW, {"decision": "approve", "citations": [f"c{NUL}"]}, "citations"),
        (_REVIEW, {"decision": "approve", "reviewer": f"rita{SURROGATE}"}, "reviewer"),
        (f"{_REVIEW}/claim", {"reviewer": f"rita{NUL}"}, "reviewer"),
        ("/v1/sources", {"path": f"/tmp/a{NUL}b"}, "path"),
        ("/v1/sources", {"path": f"/tmp/a{SURROGATE}"}, "path"),
        ("/v1/sources", {"path": "/tmp/" + "x" * 5000}, "path"),
        ("/v1/sources", {"path": "/tmp/" + "x" * 300}, "path"),  # one name past NAME_MAX
        ("/v1/sources", {"path": "/tmp/" + "é/" * 1500}, "path"),  # past PATH_MAX in bytes
        ("/v1/sources", {"path": "/tmp", "id": f"s{BELL}"}, "id"),
        ("/v1/sources", {"path": "/tmp", "include": [f"*.md{NUL}"]}, "include"),
        ("/v1/sources", {"path": "/tmp", "exclude": [f"*{SURROGATE}"]}, "exclude"),
        ("/v1/sources", {"path": "/tmp", "json_text_field": f"t{NUL}"}, "json_text_field"),
        ("/v1/keys", {"name": f"bob{NUL}", "roles": ["submitter"]}, "name"),
    ],
)
async def test_a_body_field_with_a_forbidden_character_is_422_naming_it(
    edge: httpx.AsyncClient, url: str, payload: dict, field: str
) -> None:
    body = _refused_field(await _send(edge, "POST", url, payload), field)
    assert all(len(error["input"] or "") <= 100 for error in body["errors"])


@pytest.mark.parametrize(
    "method, url, field",
    [
        ("GET", "/v1/tasks/task-%00", "task_id"),
        ("POST", "/v1/tasks/task-%07/cancel", "task_id"),
        ("GET", "/v1/tasks/task-%1b/trace", "task_id"),
        ("GET", "/v1/reviews/task-%00", "task_id"),
        ("GET", "/v1/documents/doc%00", "document_id"),
        ("DELETE", "/v1/documents/doc%01", "document_id"),
        ("GET", "/v1/sources/src%00", "source_id"),
        ("POST", "/v1/sources/src%00/sync", "source_id"),
        ("DELETE", "/v1/keys/key%00", "key_id"),
        ("GET", "/v1/tasks/task-" + "0" * 300, "task_id"),
        ("GET", "/v1/audit?reviewer=rita%00", "reviewer"),
        ("GET", "/v1/audit?task_id=task-%07", "task_id"),
        ("GET", "/v1/reviews?group=ops%00", "group"),
    ],
)
async def test_a_parameter_with_a_forbidden_character_is_422_naming_it(
    edge: httpx.AsyncClient, method: str, url: str, field: str
) -> None:
    _refused_field(await edge.request(method, url), field)


async def test_line_breaks_and_tabs_are_fine_in_free_text(edge: httpx.AsyncClient) -> None:
    accepted = await _send(
        edge, "POST", "/v1/tasks", {"question": "Who\towns\r\nKestrel?", "review": "never"}
    )
    _check(accepted, 202)
    await wait_for_status(edge, accepted.json()["id"], {"completed", "rejected", "failed"})


async def test_a_body_far_over_the_limit_is_413_without_an_echo(edge: httpx.AsyncClient) -> None:
    response = await edge.post(
        "/v1/documents", content=b"x" * (30 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and len(response.content) < 200, response.content[:200]
    assert "larger than the limit" in _reason(response.json())


async def test_a_huge_field_under_the_body_limit_is_a_small_422(edge: httpx.AsyncClient, platform) -> None:
    room = platform.settings.limits.max_body_bytes - 1000
    response = await edge.post("/v1/documents", json={"title": "t" * room, "text": "Some text."})
    body = _refused_field(response, "title")
    assert body["errors"][0]["input"].startswith("'ttt") and len(body["errors"][0]["input"]) <= 100


async def test_many_failing_fields_are_counted_not_listed(edge: httpx.AsyncClient) -> None:
    response = await edge.post("/v1/tasks", json=[{"question": i} for i in range(10_000)])
    assert response.status_code == 422 and len(response.content) < MAX_REFUSAL_BYTES
    many = await edge.post("/v1/reviews/task-x", json={"decision": "approve", "citations": list(range(150))})
    body = many.json()
    assert many.status_code == 422 and len(body["errors"]) == 20 and "and 130 more" in body["detail"]
    assert len(many.content) < 8 * MAX_REFUSAL_BYTES


async def test_a_body_nested_too_deep_is_400_not_500(edge: httpx.AsyncClient) -> None:
    deep = b'{"title": "t", "text": "x", "metadata": {"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await edge.post("/v1/documents", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400 and _reason(response.json())


# --- one documented error shape -----------------------------------------------------------


async def test_every_error_status_a_route_returns_is_in_its_schema(api: httpx.AsyncClient) -> None:
    schema = _check(await api.get("/openapi.json"), 200)
    error_ref = "#/components/schemas/ErrorOut"
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            documented = operation["responses"]
            for code in ("401", "403", "422", "503"):
                assert code in documented, (method, path, code)
            for code, response in documented.items():
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"]["$ref"] == error_ref
            if "{" in path and not path.startswith("/v1/audit"):
                assert "404" in documented, (method, path)
    cancel = schema["paths"]["/v1/tasks/{task_id}/cancel"]["post"]["responses"]
    decide = schema["paths"]["/v1/reviews/{task_id}"]["post"]["responses"]
    assert "409" in cancel and "409" in decide


async def test_every_refusal_has_the_one_shape(api: httpx.AsyncClient, callers) -> None:
    async with callers.raw({}) as anonymous:
        refusals = [
            await anonymous.get("/v1/tasks"),  # 401
            await callers("nobody", "auditor").post("/v1/tasks", json=_TASK),  # 403
            await api.get(f"/v1/tasks/task-{uuid.uuid4().hex}"),  # 404
            await api.post("/v1/tasks", json={}),  # 422
            await api.get("/v1/no-such-route"),  # 404 from the router
        ]
    for response in refusals:
        body = response.json()
        assert response.status_code >= 400 and set(body) == {"detail", "errors"}, body
        assert isinstance(body["detail"], str) and isinstance(body["errors"], list)


# --- a store that is down: 503 with Retry-After, never a 500 -----------------------------


async def test_a_falkordb_outage_is_503_with_retry_after(platform, temporal_env, tmp_path: Path) -> None:
    with ExitStack() as servers:
        url = servers.enter_context(falkordb_server(tmp_path))
        falkordb = platform.settings.falkordb.model_copy(update={"url": url})
        settings = platform.settings.model_copy(update={"falkordb": falkordb})
        client = make_redis(url)
        try:
            _, secret = KeyStore(client).create("outage", "boss", frozenset({Role.ADMIN}))
        finally:
            client.close()
        app = build_api(settings, temporal=temporal_env.client)
        key = {"Authorization": f"Bearer {secret}"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel.test") as api,
        ):
            assert (await api.get("/v1/reviews", headers=key)).status_code == 200
            servers.close()  # FalkorDB stops: the key check and the queue both read it
            for url_path in ("/v1/reviews", "/v1/audit?reviewer=boss", "/v1/keys"):
                down = await api.get(url_path, headers=key)
                assert down.status_code == 503, down.text
                assert int(down.headers["retry-after"]) > 0
                assert "unavailable" in _reason(down.json())


async def test_a_temporal_outage_is_503_with_retry_after(platform) -> None:
    temporal = await start_temporal()  # a server of its own, stopped mid-test
    stopped = False
    try:
        app = build_api(platform.settings, temporal=temporal.client)
        client = make_redis(platform.settings.falkordb_url)
        try:
            _, secret = KeyStore(client).create(f"t{uuid.uuid4().hex[:8]}", "boss", frozenset({Role.ADMIN}))
        finally:
            client.close()
        key = {"Authorization": f"Bearer {secret}"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel.test") as api,
        ):
            assert (await api.get("/v1/tasks", headers=key)).status_code == 200
            await temporal.shutdown()
            stopped = True
            down = await api.get("/v1/tasks", headers=key)
            assert down.status_code == 503, down.text
            assert int(down.headers["retry-after"]) > 0 and "Temporal is unavailable" in _reason(down.json())
    finally:
        if not stopped:
            await temporal.shutdown()

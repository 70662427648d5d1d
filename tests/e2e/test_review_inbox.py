"""The review inbox over REST on the real components: claims, decisions, conflicts, the audit."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.polling import eventually, wait_for_status

pytestmark = [pytest.mark.integration]

QUESTION = "Which team owns Kestrel?"
TWO_HOP = "Who leads the team that owns the system Project Halcyon depends on?"


async def awaiting(api: httpx.AsyncClient, **policy: object) -> str:
    """A task waiting for review (mode always), with policy overrides; the caller requests it."""
    body = {"question": QUESTION, "review": "always", "review_policy": policy}
    response = await api.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    return task_id


async def listed(api: httpx.AsyncClient, task_id: str, **params: object) -> bool:
    items = (await api.get("/v1/reviews", params=params)).json()["items"]
    return any(item["task_id"] == task_id for item in items)


async def audit(api: httpx.AsyncClient, **params: str) -> list[dict]:
    response = await api.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


async def decide(callers, task_id: str, reviewer: str, **body: object) -> httpx.Response:
    """The decision, sent by the reviewer's own key (the body names them too: it must match)."""
    return await callers(reviewer, "reviewer").post(
        f"/v1/reviews/{task_id}", json={**body, "reviewer": reviewer}
    )


def person() -> str:
    return f"rev-{uuid.uuid4().hex[:6]}"


async def test_a_claim_hides_the_item_from_others_and_only_its_holder_decides(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    task_id = await awaiting(api)
    rita, sam = person(), person()
    await eventually(lambda: listed(callers(sam, "reviewer"), task_id), 30, "the item in sam's queue")

    claimed = await callers(rita, "reviewer").post(f"/v1/reviews/{task_id}/claim", json={"reviewer": rita})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["reviewer"] == rita and claimed.json()["round"] == 1

    async def hidden_from_sam() -> bool:
        return not await listed(callers(sam, "reviewer"), task_id)

    await eventually(hidden_from_sam, 30, "the claimed item to leave sam's queue")
    assert await listed(callers(rita, "reviewer"), task_id)  # her own claim stays in her view
    assert await listed(api, task_id, show="claimed")

    second = await callers(sam, "reviewer").post(f"/v1/reviews/{task_id}/claim", json={"reviewer": sam})
    assert second.status_code == 409 and f"claimed by {rita}" in second.json()["detail"]
    refused = await decide(callers, task_id, decision="approve", reviewer=sam)
    assert refused.status_code == 409 and f"claimed by {rita}" in refused.json()["detail"]

    detail = (await api.get(f"/v1/reviews/{task_id}")).json()
    assert detail["review"]["claimed_by"] == rita and detail["draft"] and detail["citations"]
    assert detail["temporal_url"].endswith(f"/namespaces/default/workflows/{task_id}")
    assert detail["trace_url"].startswith("http://127.0.0.1:9/trace/")  # Langfuse is configured

    approved = await decide(callers, task_id, decision="approve", reviewer=rita)
    assert approved.status_code == 200, approved.text
    view = await wait_for_status(api, task_id, {"completed"})
    assert view["result"]["review"]["reviewer"] == rita
    again = await decide(callers, task_id, decision="reject", reviewer=rita, reason="x")
    assert again.status_code == 409

    [entry] = await audit(api, task_id=task_id)
    assert (entry["action"], entry["actor"], entry["round"], entry["group"]) == (
        "approve",
        rita,
        1,
        "reviewers",
    )
    assert entry["review_reasons"] == ["review requested"]
    assert [e["task_id"] for e in await audit(api, reviewer=rita)] == [task_id]


async def test_a_claim_expires_and_the_item_returns_to_the_queue(
    api: httpx.AsyncClient, platform, demo_corpus, monkeypatch: pytest.MonkeyPatch, callers
) -> None:
    # The grade step reads the tenant's policy when the task reaches review: a 2 s lease.
    monkeypatch.setattr(platform.settings.review.default, "lease_s", 2.0)
    task_id = await awaiting(api)
    rita, sam = person(), person()
    assert (
        await callers(rita, "reviewer").post(f"/v1/reviews/{task_id}/claim", json={"reviewer": rita})
    ).status_code == 200
    assert (
        await callers(sam, "reviewer").post(f"/v1/reviews/{task_id}/claim", json={"reviewer": sam})
    ).status_code == 409
    await eventually(lambda: listed(callers(sam, "reviewer"), task_id), 30, "the item back after the lease")
    taken = await callers(sam, "reviewer").post(f"/v1/reviews/{task_id}/claim", json={"reviewer": sam})
    assert taken.status_code == 200, taken.text
    late = await decide(callers, task_id, decision="approve", reviewer=rita)
    assert late.status_code == 409 and f"claimed by {sam}" in late.json()["detail"]
    # Released, the item is anyone's again.
    assert (
        await callers(sam, "reviewer").post(f"/v1/reviews/{task_id}/release", json={"reviewer": sam})
    ).status_code == 200
    approve = await decide(callers, task_id, decision="approve", reviewer=rita)
    assert approve.status_code == 200, approve.text
    await wait_for_status(api, task_id, {"completed"})


async def test_four_eyes_keeps_the_requester_off_their_own_task(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    ana, bo = person(), person()
    # ana both submits and reviews: her key has both roles, and four-eyes holds her off.
    task_id = await awaiting(callers(ana, "submitter", "reviewer"))
    for path, body in (
        ("/claim", {}),
        ("", {"decision": "approve"}),
        ("", {"decision": "edit", "answer": "Mine."}),
    ):
        response = await callers(ana, "submitter", "reviewer").post(f"/v1/reviews/{task_id}{path}", json=body)
        assert response.status_code == 409 and "four-eyes" in response.json()["detail"], response.text
    assert (await decide(callers, task_id, decision="approve", reviewer=bo)).status_code == 200
    view = await wait_for_status(api, task_id, {"completed"})
    assert view["result"]["review"]["reviewer"] == bo


async def test_a_stale_decision_and_bad_input_are_refused_with_reasons(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    task_id = await awaiting(api)
    rita = person()
    stale = await decide(callers, task_id, decision="approve", reviewer=rita, round=2)
    assert stale.status_code == 409 and "stale decision" in stale.json()["detail"]
    for body, words in (
        ({"decision": "reject", "reviewer": rita}, "needs a reason"),
        ({"decision": "request_changes", "reviewer": rita}, "needs an instruction"),
        ({"decision": "approve", "reviewer": "it's me"}, "reviewer"),
        ({"decision": "approve", "reviewer": "someone-else"}, "is not the caller"),
        ({"decision": "edit", "reviewer": rita, "answer": "x", "citations": ["nope#0000"]}, "not cited"),
    ):
        response = await callers(rita, "reviewer").post(f"/v1/reviews/{task_id}", json=body)
        assert response.status_code == 422 and words in response.text, response.text
    assert (await api.get("/v1/audit")).status_code == 422
    assert (await api.get("/v1/reviews", params={"group": "x' OR '1'='1"})).status_code == 422
    assert (
        await callers(rita, "reviewer").post("/v1/reviews/task-nope/claim", json={"reviewer": rita})
    ).status_code == 404
    rejected = await decide(callers, task_id, decision="reject", reviewer=rita, reason="off")
    assert rejected.status_code == 200
    await wait_for_status(api, task_id, {"rejected"})
    [entry] = await audit(api, task_id=task_id)
    assert (entry["action"], entry["reason"]) == ("reject", "off")


async def test_request_changes_sends_the_task_back_and_is_bounded(
    api: httpx.AsyncClient, platform, demo_corpus, monkeypatch: pytest.MonkeyPatch, callers
) -> None:
    monkeypatch.setattr(platform.settings.review.default, "max_change_rounds", 1)
    task_id = await awaiting(api)
    rita = person()
    instruction = "Name who leads Team Aurora too"
    first = (await api.get(f"/v1/reviews/{task_id}")).json()
    assert first["review"]["round"] == 1 and first["review"]["changes_left"] == 1
    asked = await decide(
        callers, task_id, decision="request_changes", reviewer=rita, instruction=instruction, round=1
    )
    assert asked.status_code == 200, asked.text

    async def second_round() -> dict | None:
        response = await api.get(f"/v1/reviews/{task_id}")
        current = response.json() if response.status_code == 200 else None
        return current if current and current["review"]["round"] == 2 else None

    second = await eventually(second_round, 120, "the reworked draft back in review")
    assert second["review"]["reasons"][0] == "changes requested" and second["review"]["changes_left"] == 0
    # The new draft answers the question with the instruction applied: the first draft's answer
    # stays, and who leads Team Aurora is added.
    assert first["draft"].split(". ")[0] in second["draft"], (first["draft"], second["draft"])
    assert "Maya Okafor" in second["draft"], second["draft"]
    stale = await decide(callers, task_id, decision="approve", reviewer=rita, round=1)
    assert stale.status_code == 409 and "stale" in stale.json()["detail"]
    more = await decide(callers, task_id, decision="request_changes", reviewer=rita, instruction="again")
    assert more.status_code == 409 and "no request-changes rounds left" in more.json()["detail"]
    ok = await decide(callers, task_id, decision="approve", reviewer=rita, round=2)
    assert ok.status_code == 200, ok.text
    view = await wait_for_status(api, task_id, {"completed"})
    reviews = view["result"]["reviews"]
    assert [(r["decision"], r["round"]) for r in reviews] == [("request_changes", 1), ("approve", 2)]
    assert reviews[0]["instruction"] == instruction
    assert [(e["action"], e["round"]) for e in await audit(api, task_id=task_id)] == [
        ("request_changes", 1),
        ("approve", 2),
    ]


async def test_an_edit_changes_the_answer_and_its_citations_and_the_audit_shows_the_diff(
    api: httpx.AsyncClient, demo_corpus, callers
) -> None:
    task_id = await awaiting(api)
    detail = (await api.get(f"/v1/reviews/{task_id}")).json()
    cited = [c["chunk_id"] for c in detail["citations"]]
    assert cited
    sam = person()
    edited = "Team Aurora owns Kestrel."
    response = await decide(
        callers, task_id, decision="edit", reviewer=sam, answer=edited, citations=cited[:1], reason="tighter"
    )
    assert response.status_code == 200, response.text
    view = await wait_for_status(api, task_id, {"completed"})
    assert view["result"]["answer"] == edited
    assert [c["chunk_id"] for c in view["result"]["citations"]] == cited[:1]
    [entry] = await audit(api, task_id=task_id)
    assert entry["action"] == "edit" and f"+{edited}" in entry["diff"] and entry["reason"] == "tighter"
    assert entry["citations_removed"] == cited[1:]


async def test_policies_send_answers_to_review_for_each_reason(api: httpx.AsyncClient, demo_corpus) -> None:
    async def outcome(policy: dict, question: str = QUESTION) -> dict:
        """The task's result when it went out, else its review (cancelled once read)."""
        body = {"question": question, "review": "auto", "review_policy": policy}
        task_id = (await api.post("/v1/tasks", json=body)).json()["id"]
        view = await wait_for_status(api, task_id, {"awaiting_review", "completed"})
        if view["status"] == "completed":
            return view["result"]
        detail = (await api.get(f"/v1/reviews/{task_id}")).json()
        await api.post(f"/v1/tasks/{task_id}/cancel")
        return detail["review"]

    went_out = await outcome({})  # a grounded answer with nothing sensitive goes out
    assert "reasons" not in went_out and went_out["review"] is None
    sensitive = await outcome({"sensitive_patterns": ["Team Aurora"]})
    assert sensitive["reasons"] == ["sensitive content (1 match)"]
    # A two-hop answer is grounded well enough for the tenant's 0.5, not for this request's bar.
    two_hop = await outcome({}, TWO_HOP)
    assert "reasons" not in two_hop and 0.5 <= two_hop["grounding"] < 0.99, two_hop
    grounding, stricter = two_hop["grounding"], round(two_hop["grounding"] + 0.01, 2)
    weak = await outcome({"grounding_threshold": stricter}, TWO_HOP)
    assert weak["reasons"] == [f"weak grounding ({grounding:.2f} < {stricter:.2f})"]
    # The extractive answerer costs nothing, so no budget is exceeded here (tests/keel covers it).
    assert "reasons" not in await outcome({"max_cost": 0.0})
    unclosed = {"sensitive_patterns": ["("]}
    bad = await api.post("/v1/tasks", json={"question": QUESTION, "review_policy": unclosed})
    assert bad.status_code == 422 and "not a regular expression" in bad.text


async def test_the_queue_filters_by_reason_group_and_age(api: httpx.AsyncClient, demo_corpus) -> None:
    task_id = await awaiting(api)
    await eventually(lambda: listed(api, task_id, reason="review requested", group="reviewers"), 30, "listed")
    assert not await listed(api, task_id, reason="weak grounding")
    assert not await listed(api, task_id, group="leads")
    assert not await listed(api, task_id, min_age_s=3600)
    assert await listed(api, task_id, max_age_s=3600)
    assert not await listed(api, task_id, max_age_s=0)
    item = next(i for i in (await api.get("/v1/reviews")).json()["items"] if i["task_id"] == task_id)
    assert item["age_s"] > 0 and item["review"]["group"] == "reviewers" and item["review"]["deadline"]
    # A task cancelled while it waits leaves every view of the queue.
    assert (await api.post(f"/v1/tasks/{task_id}/cancel")).status_code in (200, 202)

    async def gone() -> bool:
        return not await listed(api, task_id, show="all")

    await eventually(gone, 30, "the cancelled task to leave the queue")


async def test_the_audit_is_read_back_by_a_restarted_api(
    api: httpx.AsyncClient, platform, temporal_env, demo_corpus, callers
) -> None:
    # The API keeps nothing itself: a new instance (a restart) reads the same trail. The store's
    # own restart is tests/keel/stores/test_audit.py::test_the_log_survives_a_restart_of_its_server.
    from keel.app.api_server import build_api

    task_id = await awaiting(api)
    sam = person()
    assert (
        await decide(callers, task_id, decision="reject", reviewer=sam, reason="wrong team")
    ).status_code == 200
    await wait_for_status(api, task_id, {"rejected"})
    app = build_api(platform.settings, temporal=temporal_env.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://keel.test", headers=api.headers
        ) as restarted:
            [entry] = await audit(restarted, reviewer=sam)
    assert (entry["task_id"], entry["action"], entry["reason"]) == (task_id, "reject", "wrong team")

"""Tracing: the observation tree of one real task, its Langfuse spans, and StepTracer's guarantees."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import pytest_asyncio
import redis

from keel.core.tracing import StepTracer, trace_id_for
from keel.stores.redis import make_redis
from keel.stores.traces import LocalTraceStore
from tests.support.polling import wait_for_status

pytestmark = [pytest.mark.integration]

QUESTION = "How long are backups kept in the system that Sablegate depends on?"
PER_ROUND = {"retrieve": "retriever", "rerank": "retriever", "generate": "generation", "grade": "evaluator"}
ONCE = {"plan": "chain", "finalize": "span"}


@pytest_asyncio.fixture(scope="module")
async def traced_task(api: httpx.AsyncClient, demo_corpus) -> dict:
    """One completed task (review never) and its trace, shared by the trace-tree tests."""
    response = await api.post("/v1/tasks", json={"question": QUESTION, "review": "never"})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    view = await wait_for_status(api, task_id, {"completed"})
    trace = (await api.get(f"/v1/tasks/{task_id}/trace")).json()
    return {"task_id": task_id, "rounds": view["result"]["rounds"], **trace}


def _roots(observations: list[dict]) -> list[dict]:
    return [o for o in observations if o["parent_id"] is None]


def _children(observations: list[dict], parent: dict) -> list[dict]:
    return [o for o in observations if o["parent_id"] == parent["id"]]


async def test_one_task_has_one_trace_with_every_step_per_round(traced_task: dict) -> None:
    observations, rounds = traced_task["observations"], traced_task["rounds"]
    trace_id = trace_id_for(traced_task["task_id"])
    assert rounds >= 1
    assert traced_task["trace_id"] == trace_id
    assert {o["trace_id"] for o in observations} == {trace_id}
    assert all(o["latency_ms"] and o["latency_ms"] > 0 for o in observations), observations
    assert all(o["level"] == "DEFAULT" for o in observations)

    roots = _roots(observations)
    counts = Counter(o["name"] for o in roots)
    assert counts == Counter({**dict.fromkeys(ONCE, 1), **dict.fromkeys(PER_ROUND, rounds)}), counts
    for o in roots:
        assert o["type"] == {**ONCE, **PER_ROUND}[o["name"]], o

    for retrieve in (o for o in roots if o["name"] == "retrieve"):
        searches = _children(observations, retrieve)
        assert {o["name"] for o in searches} == {"search"} and len(searches) >= 1, searches
        for search in searches:
            # Each stage's hits and milliseconds: what a reviewer needs to see why a passage came up.
            assert {"dense", "bm25", "stages_ms"} <= set(search["output"]), search["output"]
            assert {"encode_dense", "dense", "bm25", "fuse", "graph"} <= set(search["output"]["stages_ms"])
    assert {o["parent_id"] for o in observations if o["parent_id"]} <= {o["id"] for o in roots}

    for generation in (o for o in roots if o["name"] == "generate"):
        assert generation["model"]
        assert generation["usage"]["input"] > 0 and generation["usage"]["output"] > 0, generation["usage"]


async def test_langfuse_spans_share_the_trace_and_type_each_step(traced_task: dict, platform) -> None:
    trace_id = trace_id_for(traced_task["task_id"])
    types = {o["name"]: o["type"] for o in traced_task["observations"]}
    platform.components.agent._tracer.flush()
    spans = [s for s in platform.spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    assert {s.name for s in spans} == set(types), Counter(s.name for s in spans)
    for span in spans:
        assert span.attributes is not None
        assert span.attributes.get("langfuse.observation.type") == types[span.name], (
            span.name,
            dict(span.attributes),
        )
    assert {s.attributes["langfuse.observation.type"] for s in spans if s.name == "generate"} == {
        "generation"
    }


async def test_every_query_search_of_a_retrieve_is_recorded_locally(traced_task: dict) -> None:
    observations = traced_task["observations"]
    if traced_task["rounds"] < 2:
        pytest.skip("the task took one round: every retrieve had a single query")
    for retrieve in (o for o in _roots(observations) if o["name"] == "retrieve"):
        children = Counter(o["name"] for o in _children(observations, retrieve))
        queries = len(retrieve["input"]["queries"])
        assert children["search"] == queries, (children, retrieve["input"]["queries"])


@pytest.fixture
def store(falkordb_url: str) -> Iterator[LocalTraceStore]:
    client = make_redis(falkordb_url)
    try:
        yield LocalTraceStore(client)
    finally:
        client.close()


def _task() -> str:
    return f"task-{uuid.uuid4().hex}"


def test_same_key_observed_twice_is_stored_once(store: LocalTraceStore) -> None:
    tracer, task_id = StepTracer(store), _task()
    for attempt in (1, 2):
        with tracer.observe(task_id, "7/plan", "plan", "chain", {"attempt": attempt}) as obs:
            obs.update(output={"attempt": attempt})
    [record] = store.load(task_id)
    assert record.name == "plan" and record.trace_id == trace_id_for(task_id)
    assert record.output == {"attempt": 2}  # the retry overwrote the first attempt


def test_children_point_at_their_parent(store: LocalTraceStore) -> None:
    tracer, task_id = StepTracer(store), _task()
    with (
        tracer.observe(task_id, "3/retrieve", "retrieve", "retriever") as obs,
        obs.child("dense", "retriever"),
    ):
        pass
    records = {r.name: r for r in store.load(task_id)}
    assert records["dense"].parent_id == records["retrieve"].id
    assert records["retrieve"].parent_id is None


def test_same_named_children_of_one_step_are_all_stored(store: LocalTraceStore) -> None:
    tracer, task_id = StepTracer(store), _task()
    with tracer.observe(task_id, "3/retrieve", "retrieve", "retriever") as obs:
        for query in ("first query", "second query"):
            with obs.child("dense", "retriever", {"query": query}):
                pass
    dense = [r for r in store.load(task_id) if r.name == "dense"]
    assert sorted(r.input["query"] for r in dense) == ["first query", "second query"]


def test_an_exception_is_recorded_as_error_and_reraised(store: LocalTraceStore) -> None:
    tracer, task_id = StepTracer(store), _task()
    with (
        pytest.raises(RuntimeError, match="boom"),
        tracer.observe(task_id, "1/generate", "generate", "generation"),
    ):
        raise RuntimeError("boom")
    [record] = store.load(task_id)
    assert record.level == "ERROR"
    assert record.status_message == "RuntimeError: boom"
    assert record.latency_ms is not None and record.end_time is not None


def test_an_unreachable_store_never_fails_the_step() -> None:
    client = make_redis("redis://127.0.0.1:1")
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()  # the store really is down
        tracer = StepTracer(LocalTraceStore(client))
        with tracer.observe(_task(), "1/plan", "plan", "chain", {"q": "?"}) as obs:
            obs.update(output={"ok": True})
        # The step's own error still propagates, not the store's.
        with pytest.raises(ValueError, match="bad input"), tracer.observe(_task(), "1/plan", "plan", "chain"):
            raise ValueError("bad input")
    finally:
        client.close()

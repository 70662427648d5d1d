"""Usage per step and the router's choice, on the real servers: every step's usage is on its trace
observation and in the task's result, rolled up per tenant, key, model, step and pipeline version;
the router sends a multi-hop question to the strong model and a simple one to the cheap one, and
says why on the trace.

The strong model is a small OpenAI-compatible HTTP server in this test (tests/support/fake_model.py)
that reports its usage; the cheap one is the extractive answerer, whose tokens Keel counts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR
from keel.control.documents import start_batch
from keel.control.tasks import start_task
from keel.core.domain import TaskRequest, TaskResult
from keel.core.settings import ModelProfile, RouterSettings, Settings
from keel.core.usage import group_rows
from keel.stores.redis import make_redis
from keel.stores.traces import LocalTraceStore
from keel.stores.usage import UsageLedger
from tests.support.fake_model import FakeModel, fake_model, prompt_words, worker_for

pytestmark = [pytest.mark.integration]

MODEL = "strong-model"
ANSWER = "Maya Okafor leads Team Aurora, which owns Kestrel [1]."
PRICE_IN, PRICE_OUT = 2.0, 8.0  # per million tokens
CHAIN = {"project-halcyon", "system-kestrel", "team-aurora", "person-maya-okafor"}
MULTI_HOP = "Who leads the team that owns Kestrel?"
SIMPLE = "Which team owns Kestrel?"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeModel]:
    with fake_model(MODEL, ANSWER) as strong:
        yield strong


@pytest_asyncio.fixture(scope="module")
async def routed_worker(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    endpoint: FakeModel,
) -> AsyncIterator[Settings]:
    # The fake endpoint is the default profile (worker_for points it there); the extractive
    # answerer is the cheap one.
    router = RouterSettings(enabled=True, cheap="cheap", strong="default")
    own = settings.model_copy(
        update={
            "tenant": f"u{uuid.uuid4().hex[:8]}",
            "models": settings.models.model_copy(
                update={"profiles": {"cheap": ModelProfile()}, "router": router}
            ),
            "cost": Settings(
                cost={
                    "prices": [
                        {"match": MODEL, "input_per_1m": PRICE_IN, "output_per_1m": PRICE_OUT},
                        {"match": "extractive-.*"},
                    ]
                }
            ).cost,
        }
    )
    data_dir = tmp_path_factory.mktemp("routed")
    async with worker_for(temporal_env.client, own, endpoint, data_dir, "routed") as worker:
        yield worker


@pytest_asyncio.fixture(scope="module")
async def routed(temporal_env: WorkflowEnvironment, routed_worker: Settings) -> Settings:
    documents = [d for d in load_documents(CORPUS_DIR, {".md"}) if d[0] in CHAIN]
    batch = await start_batch(
        temporal_env.client, routed_worker, documents, batch_id=f"ingest-usage-{uuid.uuid4().hex[:8]}"
    )
    assert len((await batch.result()).indexed) == len(CHAIN)
    return routed_worker


async def run(client: Client, own: Settings, question: str, key_id: str) -> tuple[str, TaskResult]:
    request = TaskRequest(question=question, review="never", tenant=own.tenant, key_id=key_id, cache=False)
    task_id = await start_task(client, request, own.temporal.task_queue)
    return task_id, await client.get_workflow_handle(task_id, result_type=TaskResult).result()


async def test_usage_of_every_step_is_on_its_trace_in_the_result_and_rolled_up(
    temporal_env: WorkflowEnvironment, routed: Settings, endpoint: FakeModel, settings: Settings
) -> None:
    endpoint.requests.clear()
    task_id, result = await run(temporal_env.client, routed, MULTI_HOP, key_id="key-usage")
    usage = result.usage
    assert usage.pipeline_version.startswith("pv-")
    steps = {}
    for step in usage.steps:
        steps.setdefault(step.step, step)  # each step's first run (a multi-hop task runs two rounds)
    assert {"plan", "retrieve", "rerank", "generate", "grade"} <= set(steps)  # the cache: bypassed

    generate = steps["generate"]
    reported_in = prompt_words(endpoint.requests[0])  # what the provider said it read
    assert (generate.model, generate.calls, generate.kind) == (MODEL, 1, "model")
    assert (generate.input_tokens, generate.output_tokens) == (reported_in, FakeModel.COMPLETION_TOKENS)
    assert not generate.tokens_counted  # the provider's own usage, not Keel's count
    assert generate.cost == pytest.approx((reported_in * PRICE_IN + 7 * PRICE_OUT) / 1e6)
    assert (
        steps["retrieve"].kind == "embed"
        and steps["retrieve"].texts == 1
        and steps["retrieve"].input_tokens > 0
    )
    assert steps["rerank"].kind == "rerank" and steps["rerank"].texts > 0
    assert steps["grade"].texts > 0 and steps["grade"].tokens_counted
    assert all(s.latency_ms > 0 for s in usage.steps)
    assert usage.cost == pytest.approx(sum(s.cost for s in usage.steps))

    traces = LocalTraceStore(make_redis(settings.falkordb_url)).load(task_id)
    by_name: dict = {}
    for observation in sorted(traces, key=lambda o: o.start_time):
        by_name.setdefault(observation.name, observation)  # each step's first run
    assert by_name["generate"].usage["input"] == reported_in and by_name["generate"].cost == generate.cost
    assert by_name["generate"].model == MODEL
    assert by_name["retrieve"].usage["texts"] == 1
    assert by_name["plan"].output["pipeline_version"] == usage.pipeline_version

    today = datetime.now(UTC).date()  # and the day before: the task may have run before midnight
    rows = UsageLedger(make_redis(settings.falkordb_url)).rows(
        [routed.tenant], today - timedelta(days=1), today
    )
    by_step = {
        r.step: r
        for r in group_rows([r for r in rows if r.key == "key-usage"], ["step", "model", "pipeline"])
    }
    model_cost = sum(s.cost for s in usage.steps if s.step == "generate")  # every round's call
    assert by_step["generate"].model == MODEL and by_step["generate"].cost == pytest.approx(model_cost)
    assert by_step["generate"].pipeline == usage.pipeline_version
    assert by_step["task"].tasks >= 1 and by_step["retrieve"].texts >= 1


async def test_the_router_sends_multi_hop_questions_to_the_strong_model_and_says_why(
    temporal_env: WorkflowEnvironment, routed: Settings, settings: Settings
) -> None:
    hard_id, hard = await run(temporal_env.client, routed, MULTI_HOP, key_id="key-router")
    easy_id, easy = await run(temporal_env.client, routed, SIMPLE, key_id="key-router")
    assert hard.model == MODEL and easy.model == "extractive-minilm", [s.route for s in easy.usage.steps]
    hard_route = next(s.route for s in hard.usage.steps if s.step == "generate")
    easy_route = next(s.route for s in easy.usage.steps if s.step == "generate")
    assert hard_route.startswith("strong:") and "multi-hop question" in hard_route
    assert easy_route.startswith("cheap:")
    traces = LocalTraceStore(make_redis(settings.falkordb_url))
    shown = next(o for o in traces.load(hard_id) if o.name == "generate").output["route"]
    assert shown == {"profile": "default", "model": MODEL, "reason": hard_route}
    assert next(o for o in traces.load(easy_id) if o.name == "generate").output["route"]["profile"] == "cheap"

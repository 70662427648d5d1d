"""The worker's assembly: it builds every client the activities use, and closes them."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.langgraph import LangGraphPlugin
from temporalio.worker import Worker

from activities.agent import AgentActivities
from activities.audit import AuditActivities
from activities.ingestion import IngestionActivities
from activities.review_queue import ReviewQueueActivities
from activities.sources import SourceActivities
from ingestion.entities import extract_entities
from keel.core.models import make_provider
from keel.core.pipelines import pipeline_named
from keel.core.settings import Settings
from keel.core.tracing import StepTracer, make_langfuse
from keel.stores.audit import AuditLog
from keel.stores.blobs import BlobStore
from keel.stores.redis import make_redis
from keel.stores.review_index import ReviewQueueIndex
from keel.stores.sources import SourceRegistry
from keel.stores.traces import LocalTraceStore
from retrieval.encoders import SparseEncoder
from retrieval.factories import make_dense_encoder, make_reranker, make_vector_store
from retrieval.feedback import QueryAdapter
from retrieval.graph_store import GraphStore
from retrieval.pipeline import Retriever
from retrieval.rerank import Reranker
from workflows.agent import AgentWorkflow
from workflows.agent_graph import AGENT_GRAPH, make_agent_graph
from workflows.ingest import DeleteDocumentWorkflow, IngestBatchWorkflow, IngestDocumentWorkflow
from workflows.sources import SourceBatchWorkflow, SourceSyncWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [
    AgentWorkflow,
    IngestDocumentWorkflow,
    IngestBatchWorkflow,
    DeleteDocumentWorkflow,
    SourceSyncWorkflow,
    SourceBatchWorkflow,
]
_CORES = os.cpu_count() or 2


@dataclass
class Components:
    agent: AgentActivities
    ingestion: IngestionActivities
    sources: SourceActivities
    audit: AuditActivities
    review_queue: ReviewQueueActivities
    reranker: Reranker


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
    provider = make_provider(settings, dense.encode_documents, find_entities=extract_entities)
    log.info(
        "retrieval: pipeline %s, queries encoded by %s, reranker %s, feedback adapter %s; "
        "answer provider: %s (%s)",
        cfg.pipeline,
        dense.query_runtime,
        reranker.name if pipeline_named(cfg.pipeline).rerank else f"none (configured: {reranker.name})",
        f"{adapter.digest} ({adapter.trained_on})" if adapter else "none",
        provider.name,
        provider.model,
    )
    blobs = BlobStore(settings.blob_dir)
    ingestion = IngestionActivities(settings, vectors, graph, dense, sparse, blobs)
    registry_client = make_redis(settings.falkordb_url)
    stack.callback(registry_client.close)
    return Components(
        agent=AgentActivities(settings, vectors, graph, retriever, dense, provider, tracer, blobs),
        ingestion=ingestion,
        sources=SourceActivities(ingestion, graph, blobs, SourceRegistry(registry_client)),
        audit=AuditActivities(AuditLog(registry_client), tracer),
        review_queue=ReviewQueueActivities(ReviewQueueIndex(registry_client)),
        reranker=reranker,
    )


def make_worker(
    client: Client, settings: Settings, components: Components, task_queue: str | None = None
) -> Worker:
    agent, ingestion, sources = components.agent, components.ingestion, components.sources
    return Worker(
        client,
        task_queue=task_queue or settings.temporal.task_queue,
        workflows=WORKFLOWS,
        activities=[
            agent.plan,
            agent.retrieve,
            agent.rerank,
            agent.generate,
            agent.grade,
            agent.finalize,
            agent.review_context,
            ingestion.index_document,
            ingestion.delete_document,
            sources.plan_sync,
            sources.index_files,
            sources.remove_documents,
            sources.record_sync,
            components.audit.record,
            components.review_queue.publish,
        ],
        # Activities are synchronous and CPU-bound (encoders): as many at once as there are
        # cores, so steps queue instead of thrashing and starving the workflow thread.
        activity_executor=ThreadPoolExecutor(max_workers=2 * _CORES),
        max_concurrent_activities=_CORES,
        max_concurrent_local_activities=_CORES,
        plugins=[LangGraphPlugin(graphs={AGENT_GRAPH: make_agent_graph()})],
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from keel.control.temporal import connect, ensure_search_attributes

    client = await connect(settings)
    if settings.temporal.address:
        # An external cluster: nothing else registers the attributes the queue lists by.
        await ensure_search_attributes(client, settings.temporal.namespace)
    with ExitStack() as stack:
        components = build_components(settings, stack)
        worker = make_worker(client, settings, components)
        log.info(
            "worker polling task queue %s at %s", settings.temporal.task_queue, settings.temporal_address
        )
        if stop is None:
            await worker.run()
            return
        async with worker:
            await stop.wait()

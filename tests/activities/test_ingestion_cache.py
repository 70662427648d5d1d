"""Indexing and deleting documents invalidates the cached answers citing them, and only those."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from temporalio.testing import ActivityEnvironment

from activities.ingestion import IngestionActivities
from activities.sources import SourceActivities
from keel.core.domain import DeleteDocument, DocumentRef, IndexedDocument, RemoveDocuments
from keel.core.settings import Settings
from keel.stores.answer_cache import AnswerCache, CachedAnswer
from keel.stores.blobs import BlobStore
from keel.stores.redis import make_redis
from keel.stores.sources import SourceRegistry
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphStore
from retrieval.qdrant_edge_store import QdrantEdgeStore

pytestmark = pytest.mark.integration
POLICY = "p"
RUNBOOK = "The billing service is operated by the payments team. Roll back with the deploy tool."
GUIDE = "The search cluster is monitored on the main dashboard. Page the search team on alerts."


@pytest.fixture(scope="module")
def dense() -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path())


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@contextmanager
def ingestion(
    tmp_path: Path, falkordb_url: str, dense: DenseEncoder, cache: AnswerCache, graph: GraphStore
) -> Iterator[IngestionActivities]:
    """The ingestion activities over real stores in `tmp_path`, invalidating `cache`."""
    settings = Settings(data_dir=tmp_path, falkordb={"url": falkordb_url})
    vectors = QdrantEdgeStore(tmp_path / "qdrant")
    try:
        blobs = BlobStore(tmp_path / "blobs")
        yield IngestionActivities(settings, vectors, graph, dense, SparseEncoder(), blobs, cache=cache)
    finally:
        vectors.close()


@pytest.fixture
def graph(falkordb_url: str, tenant: str) -> Iterator[GraphStore]:
    store = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:6]}")
    yield store
    store.drop(tenant)
    store.close()


@pytest.fixture
def cache(falkordb_url: str) -> AnswerCache:
    return AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=100)


def index(activities: IngestionActivities, tenant: str, document_id: str, text: str) -> IndexedDocument:
    blob_key = activities._blobs.put_json(tenant, {"title": document_id, "text": text})
    ref = DocumentRef(tenant=tenant, document_id=document_id, title=document_id, blob_key=blob_key)
    result: IndexedDocument = ActivityEnvironment().run(activities.index_document, ref)
    return result


def remember(cache: AnswerCache, tenant: str, task_id: str, versions: dict[str, str]) -> None:
    vector = np.zeros(8, dtype=np.float32)
    vector[len(task_id) % 8] = 1.0
    answer = CachedAnswer(tenant, task_id, "q", {}, versions, POLICY, "", "2026-12-04T12:00:00+00:00")
    cache.remember(answer, vector)


def cached(cache: AnswerCache, tenant: str) -> set[str]:
    prefix = AnswerCache.prefix(tenant)
    return {task_id.decode() for task_id in cache._client.zrange(f"{prefix}order", 0, -1)}


@pytest.fixture
def activities(
    tmp_path: Path, falkordb_url: str, dense: DenseEncoder, cache: AnswerCache, graph: GraphStore
) -> Iterator[IngestionActivities]:
    with ingestion(tmp_path, falkordb_url, dense, cache, graph) as made:
        yield made


def test_a_changed_document_invalidates_and_an_unchanged_one_does_not(
    activities: IngestionActivities, cache: AnswerCache, tenant: str
) -> None:
    runbook = index(activities, tenant, "runbook", RUNBOOK)
    guide = index(activities, tenant, "guide", GUIDE)
    remember(cache, tenant, "cites-runbook", {"runbook": runbook.version})
    remember(cache, tenant, "cites-guide", {"guide": guide.version})
    remember(cache, tenant, "cites-both", {"runbook": runbook.version, "guide": guide.version})

    unchanged = index(activities, tenant, "runbook", RUNBOOK)
    assert unchanged.version == runbook.version and unchanged.embedded_chunks == 0
    assert cached(cache, tenant) == {"cites-runbook", "cites-guide", "cites-both"}

    edited = index(activities, tenant, "runbook", RUNBOOK.replace("payments", "ledger"))
    assert edited.version != runbook.version
    assert cached(cache, tenant) == {"cites-guide"}

    assert ActivityEnvironment().run(activities.delete_document, DeleteDocument(tenant, "guide"))
    assert cached(cache, tenant) == set()


def test_a_sync_removing_documents_invalidates_their_answers(
    activities: IngestionActivities, cache: AnswerCache, graph: GraphStore, tenant: str
) -> None:
    runbook = index(activities, tenant, "runbook", RUNBOOK)
    guide = index(activities, tenant, "guide", GUIDE)
    remember(cache, tenant, "cites-runbook", {"runbook": runbook.version})
    remember(cache, tenant, "cites-guide", {"guide": guide.version})
    registry = SourceRegistry(cache._client)
    sources = SourceActivities(activities, graph, activities._blobs, registry, cache=cache)
    gone = activities._blobs.put_json(tenant, {"documents": ["runbook"]})
    assert ActivityEnvironment().run(sources.remove_documents, RemoveDocuments(tenant, gone)) == 1
    assert cached(cache, tenant) == {"cites-guide"}


def test_an_unreachable_cache_does_not_fail_indexing(
    tmp_path: Path,
    falkordb_url: str,
    dense: DenseEncoder,
    graph: GraphStore,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = AnswerCache(make_redis("redis://127.0.0.1:1"), max_entries_per_tenant=10)
    with (
        ingestion(tmp_path, falkordb_url, dense, dead, graph) as activities,
        caplog.at_level(logging.WARNING, logger="activities.ingestion"),
    ):
        indexed = index(activities, tenant, "runbook", RUNBOOK)
    assert indexed.chunks >= 1
    assert any("answer cache: could not invalidate" in r.getMessage() for r in caplog.records)

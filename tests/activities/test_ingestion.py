"""The indexing activity's change detection, on real stores and the real encoder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.ingestion import IngestionActivities
from ingestion.chunking import chunk_text
from keel.core.domain import DocumentRef, IndexedDocument
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphStore
from retrieval.qdrant_edge_store import QdrantEdgeStore

pytestmark = pytest.mark.integration
TENANT = "acme"

# Five paragraphs of about 300 characters: with 700-character chunks, each chunk holds two
# paragraphs at most, so an edit to the last paragraph touches only the last chunk.
PARAGRAPHS = [
    f"Paragraph {n} of the runbook explains how the {topic} service is operated during an incident. "
    f"It lists the on-call owner, the dashboards to open first and the rollback steps, in order. "
    f"The {topic} team reviews this paragraph every quarter and records who approved the change."
    for n, topic in enumerate(["billing", "search", "ledger", "gateway", "archive"], start=1)
]


@pytest.fixture(scope="module")
def dense() -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path())


@pytest.fixture
def activities(tmp_path: Path, falkordb_url: str, dense: DenseEncoder) -> Iterator[IngestionActivities]:
    settings = Settings(data_dir=tmp_path, falkordb={"url": falkordb_url})
    vectors = QdrantEdgeStore(tmp_path / "qdrant")
    graph = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:6]}")
    try:
        yield IngestionActivities(
            settings, vectors, graph, dense, SparseEncoder(), BlobStore(tmp_path / "blobs")
        )
    finally:
        graph.drop(TENANT)
        graph.close()
        vectors.close()


def index(activities: IngestionActivities, text: str, title: str = "Runbook") -> IndexedDocument:
    blob_key = activities._blobs.put_json(TENANT, {"title": title, "text": text})
    ref = DocumentRef(tenant=TENANT, document_id="runbook", title=title, blob_key=blob_key)
    result: IndexedDocument = ActivityEnvironment().run(activities.index_document, ref)
    return result


def stored_texts(activities: IngestionActivities, chunks: int) -> list[str]:
    ids = [f"runbook#{i:04d}" for i in range(chunks)]
    return [c.text for c in activities._vectors.get_chunks(TENANT, ids)]


def changed_chunks(before: str, after: str) -> int:
    """Chunks of `after` whose text no chunk of `before` has: what an edit must embed."""
    old = set(chunk_text(before))
    return sum(piece not in old for piece in chunk_text(after))


def test_an_edit_embeds_only_the_changed_chunks(activities: IngestionActivities, dense: DenseEncoder) -> None:
    before = "\n\n".join(PARAGRAPHS)
    first = index(activities, before)
    assert first.chunks == 3 and first.embedded_chunks == 3

    after = "\n\n".join([*PARAGRAPHS[:-1], PARAGRAPHS[-1].replace("archive", "cold-storage")])
    calls = dense.encode_calls
    second = index(activities, after)
    assert second.chunks == 3
    # The last paragraph's first sentence closes chunk 2, the rest is chunk 3: two of three change.
    assert second.embedded_chunks == dense.encode_calls - calls == changed_chunks(before, after) == 2
    texts = stored_texts(activities, second.chunks)
    assert any("cold-storage" in t for t in texts) and not any("archive" in t for t in texts)


def test_an_insert_at_the_top_reuses_the_moved_chunks(
    activities: IngestionActivities, dense: DenseEncoder
) -> None:
    before = "\n\n".join(PARAGRAPHS)
    index(activities, before)
    # A short line on top shifts every position; chunk ids are positions, so matching by
    # id would re-embed all of them. Matching by text re-embeds only what the shift re-packed.
    after = "\n\n".join(["Escalate to the duty manager.", *PARAGRAPHS])
    calls = dense.encode_calls
    inserted = index(activities, after)
    assert inserted.embedded_chunks == dense.encode_calls - calls == changed_chunks(before, after)
    assert 1 <= inserted.embedded_chunks < inserted.chunks


def test_unchanged_computes_no_embedding_and_shrinking_removes_stale_chunks(
    activities: IngestionActivities, dense: DenseEncoder
) -> None:
    first = index(activities, "\n\n".join(PARAGRAPHS))
    calls = dense.encode_calls
    again = index(activities, "\n\n".join(PARAGRAPHS))
    assert (again.embedded_chunks, again.removed_chunks, dense.encode_calls) == (0, 0, calls)

    shorter = index(activities, PARAGRAPHS[0])
    assert shorter.chunks == 1 and shorter.removed_chunks == first.chunks - 1
    assert shorter.embedded_chunks == 1  # chunk 0 held two paragraphs; alone it is new text
    assert activities._vectors.count(TENANT, "runbook") == 1


def test_a_new_title_re_embeds_every_chunk(activities: IngestionActivities) -> None:
    first = index(activities, "\n\n".join(PARAGRAPHS))
    # The title is part of every embedded text, so every vector depends on it.
    renamed = index(activities, "\n\n".join(PARAGRAPHS), title="Operations runbook")
    assert renamed.embedded_chunks == first.chunks

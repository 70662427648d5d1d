"""The indexing activity's change detection, on real stores and the real encoder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.ingestion import IngestionActivities
from ingestion.chunking import chunk_text
from ingestion.indexer import graph_document, prepare_documents
from keel.core.domain import DocumentRef, IndexedDocument
from keel.core.errors import FailureKind
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import SET_DOCUMENTS, GraphStore, Provenance
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.types import SourceDocument, StoreError

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


@contextmanager
def ingestion_over(
    graph: GraphStore, tmp_path: Path, falkordb_url: str, dense: DenseEncoder
) -> Iterator[IngestionActivities]:
    """The ingestion activities over real stores in `tmp_path`, with `graph`; dropped after."""
    settings = Settings(data_dir=tmp_path, falkordb={"url": falkordb_url})
    vectors = QdrantEdgeStore(tmp_path / "qdrant")
    try:
        yield IngestionActivities(
            settings, vectors, graph, dense, SparseEncoder(), BlobStore(tmp_path / "blobs")
        )
    finally:
        graph.drop(TENANT)
        graph.close()
        vectors.close()


@pytest.fixture
def activities(tmp_path: Path, falkordb_url: str, dense: DenseEncoder) -> Iterator[IngestionActivities]:
    graph = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:6]}")
    with ingestion_over(graph, tmp_path, falkordb_url, dense) as made:
        yield made


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


# --- all or nothing per document, and bad bytes ------------------------------------------


class RefusingGraphStore(GraphStore):
    """The real FalkorDB store, made to fail the commit (the Document.version statement) while
    `refuse` is set: every other statement of the write reaches the server. A failure injected
    by subclassing, as a FalkorDB refusing a write would raise it."""

    refuse = False

    def _run(
        self, tenant: str, what: str, cypher: str, params: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        if self.refuse and cypher == SET_DOCUMENTS:
            raise StoreError(f"falkordb: {what} failed: injected refusal")
        return super()._run(tenant, what, cypher, params)


@pytest.fixture
def refusing(tmp_path: Path, falkordb_url: str, dense: DenseEncoder) -> Iterator[IngestionActivities]:
    graph = RefusingGraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:6]}")
    with ingestion_over(graph, tmp_path, falkordb_url, dense) as made:
        yield made


def searched_versions(activities: IngestionActivities, query: str) -> set[tuple[str, str]]:
    """(chunk id, version) of every chunk a search or a lookup by id can return."""
    vectors = activities._vectors
    hits = vectors.search_hybrid(
        TENANT, activities._dense.encode_query(query), SparseEncoder().encode_query(query), 20, 50
    )
    by_id = vectors.get_chunks(TENANT, [f"runbook#{i:04d}" for i in range(10)])
    return {(c.chunk_id, c.version) for c in [*hits, *by_id]}


def test_a_failed_graph_write_leaves_the_previous_version_answering(refusing: IngestionActivities) -> None:
    graph = refusing._graph
    assert isinstance(graph, RefusingGraphStore)
    old = index(refusing, "\n\n".join(PARAGRAPHS))
    new_text = "\n\n".join(p.replace("incident", "outage") for p in PARAGRAPHS[:2])
    graph.refuse = True
    with pytest.raises(StoreError, match="injected refusal"):
        index(refusing, new_text)
    # Nothing of the failed version is readable; its staged vectors are gone too.
    assert searched_versions(refusing, "outage rollback") == {
        (f"runbook#{i:04d}", old.version) for i in range(3)
    }
    assert refusing._vectors.count(TENANT, "runbook", staged=True) == 0
    assert (graph.document(TENANT, "runbook") or {})["version"] == old.version

    graph.refuse = False  # the retry converges
    new = index(refusing, new_text)
    assert searched_versions(refusing, "outage rollback") == {
        (f"runbook#{i:04d}", new.version) for i in range(new.chunks)
    }
    assert new.chunks < old.chunks  # and the old version's tail is gone
    assert (graph.document(TENANT, "runbook") or {})["version"] == new.version


def index_raw(activities: IngestionActivities, text: str, title: str = "Runbook") -> IndexedDocument:
    """Index text as a sync passes it, with no blob between: a blob (JSON in UTF-8) cannot even
    hold a lone surrogate, a file read with surrogateescape can."""
    origin = Provenance("folder", "runbook.md", "h", 1)
    result: IndexedDocument = ActivityEnvironment().run(
        activities.index_text, TENANT, "runbook", title, text, origin
    )
    return result


def test_a_document_with_bad_bytes_is_indexed_clean(activities: IngestionActivities) -> None:
    dirty = PARAGRAPHS[0].replace("on-call", "on\x00call\ud800") + "\x1b[0m\x0cPage two.\x7f"
    indexed = index_raw(activities, dirty, title="Run\x00book \ud83d\ude00")
    [chunk] = activities._vectors.get_chunks(TENANT, ["runbook#0000"])
    assert (
        chunk.text == PARAGRAPHS[0].replace("on-call", "oncall\ufffd") + "[0m Page two."
    )  # the chunker folds the break
    assert chunk.title == "Runbook \U0001f600"  # a surrogate pair written as two code points is joined
    stored = activities._graph.document(TENANT, "runbook") or {}
    assert (stored["title"], stored["version"]) == ("Runbook \U0001f600", indexed.version)
    # Indexing the same dirty text again finds it unchanged: the version is the clean text's.
    assert index_raw(activities, dirty, title="Run\x00book \ud83d\ude00").embedded_chunks == 0
    # An upload's NUL (JSON can carry one) is cleaned the same way.
    assert (
        index(activities, dirty.replace("\ud800", "\ufffd"), title="Runbook \U0001f600").version
        == indexed.version
    )


def test_a_document_of_nothing_but_bad_bytes_fails_once_as_unsupported(
    activities: IngestionActivities,
) -> None:
    with pytest.raises(ApplicationError, match="no text to index") as failed:
        index(activities, "\x00\x01\x02")
    assert (failed.value.type, failed.value.non_retryable) == (FailureKind.UNSUPPORTED_DOCUMENT.value, True)
    assert activities._vectors.count(TENANT, "runbook", staged=True) == 0


def test_a_crash_after_the_commit_is_not_mistaken_for_done(activities: IngestionActivities) -> None:
    """The graph holds the new version but the worker died before publishing: the readable
    chunks are still the old version's, so the retry must write again, not skip."""
    old = index(activities, "\n\n".join(PARAGRAPHS))
    new_text = "\n\n".join(p.replace("incident", "outage") for p in PARAGRAPHS)
    cfg = activities._settings.retrieval
    source = SourceDocument("runbook", "Runbook", new_text)
    [prepared] = prepare_documents(
        TENANT, [source], activities._dense, SparseEncoder(), cfg.chunk_chars, cfg.chunk_overlap_chars
    )
    activities._vectors.stage(prepared.records)
    activities._graph.upsert_documents(TENANT, [graph_document(prepared)])  # committed, then "killed"
    assert {v for _, v in searched_versions(activities, "outage")} == {old.version}

    retried = index(activities, new_text)
    assert retried.version == prepared.version
    assert {v for _, v in searched_versions(activities, "outage")} == {prepared.version}
    assert activities._vectors.count(TENANT, "runbook", staged=True) == 0

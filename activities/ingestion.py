"""Indexing one document into both stores: chunk, embed, upsert, link entities."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors
from ingestion.chunking import chunk_text
from ingestion.indexer import content_version, prepare_documents, write_document
from keel.blobs import BlobNotFoundError, BlobStore
from keel.domain import DocumentRef, IndexedDocument
from keel.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphStore
from retrieval.types import SourceDocument
from retrieval.vector_store import VectorStore


class IngestionActivities:
    def __init__(
        self,
        settings: Settings,
        vectors: VectorStore,
        graph: GraphStore,
        dense: DenseEncoder,
        sparse: SparseEncoder,
        blobs: BlobStore,
    ) -> None:
        self._settings = settings
        self._vectors = vectors
        self._graph = graph
        self._dense = dense
        self._sparse = sparse
        self._blobs = blobs

    @activity.defn(name="ingest.index_document")
    @permanent_errors()
    def index_document(self, ref: DocumentRef) -> IndexedDocument:
        """Idempotent: deterministic point ids, MERGE in the graph, stale chunks removed."""
        try:
            doc = self._blobs.get_json(ref.blob_key)
        except BlobNotFoundError as err:
            raise ApplicationError(str(err), type="InvalidInput", non_retryable=True) from err
        title, text = str(doc.get("title") or ref.title), str(doc.get("text") or "")
        cfg = self._settings.retrieval
        pieces = chunk_text(text, cfg.chunk_chars, cfg.chunk_overlap_chars)
        if not pieces:
            raise ApplicationError(
                f"document {ref.document_id} has no text to index",
                type="UnsupportedDocument",
                non_retryable=True,
            )
        version = content_version(title, text)
        stored = self._graph.document(ref.tenant, ref.document_id)
        if (
            stored
            and stored.get("version") == version
            and self._vectors.count(ref.tenant, ref.document_id) == len(pieces)
        ):
            # Unchanged since the last ingestion: no embedding, no write.
            return IndexedDocument(ref.document_id, version, len(pieces), 0, removed_chunks=0)

        [prepared] = prepare_documents(
            ref.tenant,
            [SourceDocument(ref.document_id, title, text)],
            self._dense,
            self._sparse,
            cfg.chunk_chars,
            cfg.chunk_overlap_chars,
        )
        activity.heartbeat(len(pieces))
        removed = write_document(ref.tenant, prepared, self._vectors, self._graph, replacing=bool(stored))
        return IndexedDocument(
            ref.document_id, version, len(prepared.records), prepared.entity_count, removed_chunks=removed
        )

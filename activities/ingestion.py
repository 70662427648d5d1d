"""Indexing one document into both stores: chunk, embed, upsert, link entities."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors
from ingestion.chunking import chunk_text
from ingestion.indexer import content_version, embedded_text, prepare_documents, write_document
from keel.blobs import BlobNotFoundError, BlobStore
from keel.domain import DocumentRef, IndexedDocument
from keel.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphStore, Provenance
from retrieval.types import SourceDocument, chunk_id_for
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
        # An upload's provenance is the upload itself: its content hash and when it was indexed.
        origin = Provenance(ref.source, "", content_version(title, text), time.time_ns())
        return self.index_text(ref.tenant, ref.document_id, title, text, origin)

    def index_text(
        self, tenant: str, document_id: str, title: str, text: str, provenance: Provenance
    ) -> IndexedDocument:
        """Index one document's text into both stores, embedding only chunks not stored already.

        Idempotent: deterministic point ids, MERGE in the graph, stale chunks removed.
        Raises ApplicationError(type="UnsupportedDocument") when there is no text to index.
        """
        cfg = self._settings.retrieval
        pieces = chunk_text(text, cfg.chunk_chars, cfg.chunk_overlap_chars)
        if not pieces:
            raise ApplicationError(
                f"document {document_id} has no text to index", type="UnsupportedDocument", non_retryable=True
            )
        version = content_version(title, text)
        stored = self._graph.document(tenant, document_id)
        stored_chunks = self._vectors.count(tenant, document_id) if stored else 0
        if stored and stored.get("version") == version and stored_chunks == len(pieces):
            # Same text: no embedding, no write; only a new file hash (a re-saved file) is noted,
            # so the next sync does not look at the file again.
            if stored.get("file_hash") != provenance.file_hash and provenance.path:
                self._graph.set_provenance(tenant, document_id, provenance)
            return IndexedDocument(document_id, version, len(pieces), 0, removed_chunks=0)

        [prepared] = prepare_documents(
            tenant,
            [SourceDocument(document_id, title, text)],
            self._dense,
            self._sparse,
            cfg.chunk_chars,
            cfg.chunk_overlap_chars,
            known_vectors=self._stored_vectors(tenant, document_id, stored_chunks),
        )
        activity.heartbeat(document_id)  # embedding a long document is the slow part
        removed = write_document(tenant, prepared, self._vectors, self._graph, bool(stored), provenance)
        return IndexedDocument(
            document_id,
            version,
            len(prepared.records),
            prepared.entity_count,
            removed_chunks=removed,
            embedded_chunks=len(prepared.records) - prepared.reused_vectors,
        )

    def _stored_vectors(self, tenant: str, document_id: str, count: int) -> dict[str, list[float]]:
        """Embedded text -> stored vector of the document's current chunks: an edit re-embeds
        only the chunks whose text (or the title) changed, wherever they moved to."""
        if count == 0:
            return {}
        ids = [chunk_id_for(document_id, position) for position in range(count)]
        stored = self._vectors.get_chunks(tenant, ids, with_vectors=True)
        return {embedded_text(c.title, c.text): c.dense for c in stored if c.dense is not None}

"""Indexing one document into both stores: chunk, embed, upsert, link entities."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis import RedisError
from temporalio import activity

from activities.errors import permanent_errors
from ingestion.chunking import chunk_text
from ingestion.indexer import (
    DocumentWrite,
    content_version,
    embedded_text,
    prepare_documents,
    write_documents,
)
from keel.core.domain import DeleteDocument, DocumentRef, IndexedDocument
from keel.core.errors import FailureKind, failure
from keel.core.faults import pause_if_asked
from keel.core.settings import Settings
from keel.stores.answer_cache import AnswerCache
from keel.stores.blobs import BlobNotFoundError, BlobStore
from retrieval.clean_text import clean_text
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphStore, Provenance
from retrieval.types import SourceDocument, chunk_id_for
from retrieval.vector_store import VectorStore

# Texts per encoder call between heartbeats: a few seconds of work on 2 cores.
ENCODE_SLICE = 256
# The fault point between a write's two stores (keel/core/faults.py): after stage, before commit.
COMMIT_FAULT_STEP = "index_commit"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextToIndex:
    """One document's text, and where it came from."""

    document_id: str
    title: str
    text: str
    provenance: Provenance


class IngestionActivities:
    def __init__(
        self,
        settings: Settings,
        vectors: VectorStore,
        graph: GraphStore,
        dense: DenseEncoder,
        sparse: SparseEncoder,
        blobs: BlobStore,
        *,
        cache: AnswerCache | None = None,
    ) -> None:
        self._settings = settings
        self._vectors = vectors
        self._graph = graph
        self._dense = dense
        self._sparse = sparse
        self._blobs = blobs
        # Cached answers citing a document go as soon as a new version of it is readable, or it
        # is deleted (a source sync's removals: SourceActivities, with the same cache).
        self._cache = cache

    @property
    def chunk_chars(self) -> int:
        return self._settings.retrieval.chunk_chars

    @activity.defn(name="ingest.index_document")
    @permanent_errors()
    def index_document(self, ref: DocumentRef) -> IndexedDocument:
        """Idempotent: deterministic point ids, MERGE in the graph, stale chunks removed."""
        try:
            doc = self._blobs.get_json(ref.tenant, ref.blob_key)
        except BlobNotFoundError as err:
            raise failure(FailureKind.INVALID_INPUT, str(err)) from err
        title, text = str(doc.get("title") or ref.title), str(doc.get("text") or "")
        # An upload's provenance is the upload itself: its content hash and when it was indexed.
        origin = Provenance(ref.source, "", content_version(title, text), time.time_ns())
        return self.index_text(ref.tenant, ref.document_id, title, text, origin)

    @activity.defn(name="ingest.delete_document")
    @permanent_errors()
    def delete_document(self, request: DeleteDocument) -> bool:
        """Remove a document from both stores, with the entities only it mentioned.

        Idempotent; returns whether there was anything to remove.
        """
        tenant, document_id = request.tenant, request.document_id
        existed = (
            self._graph.document(tenant, document_id) is not None
            or bool(self._vectors.count(tenant, document_id))
            or bool(self._vectors.count(tenant, document_id, staged=True))
        )
        self.remove(tenant, document_id)
        invalidate_answers(self._cache, tenant, [document_id])
        return existed

    def remove(self, tenant: str, document_id: str) -> None:
        """Take a document out of both stores (a gone one is a no-op), with its orphaned entities."""
        self._vectors.delete_document(tenant, document_id)
        self._graph.delete_document(tenant, document_id)

    def index_text(
        self, tenant: str, document_id: str, title: str, text: str, provenance: Provenance
    ) -> IndexedDocument:
        """Index one document's text into both stores (see `index_texts`).

        Fails as UnsupportedDocument (permanent) when there is no text to index.
        """
        [indexed] = self.index_texts(tenant, [TextToIndex(document_id, title, text, provenance)])
        if indexed is None:
            raise failure(FailureKind.UNSUPPORTED_DOCUMENT, f"document {document_id} has no text to index")
        return indexed

    def index_texts(
        self, tenant: str, texts: Sequence[TextToIndex], heartbeat: Callable[[], None] = activity.heartbeat
    ) -> list[IndexedDocument | None]:
        """Index documents into both stores, embedding only chunks not stored already, in one
        encoder batch for all of them (a sync passes a group of files: small files one by one
        would leave the encoder's batches half empty).

        Idempotent: deterministic point ids, MERGE in the graph, stale chunks removed. Each
        document is written all or nothing (`write_documents`); texts are cleaned first of the
        characters a store refuses (`clean_text`), so bad bytes cannot fail a write.
        Returns one entry per text, in order: None for a text with nothing to index.
        `heartbeat` is called as the embedding, the slow part, goes: a caller whose heartbeats
        carry resume details passes its own.
        """
        cfg = self._settings.retrieval
        results: list[IndexedDocument | None] = [None] * len(texts)
        changed: list[tuple[int, int]] = []  # (position, chunks stored of an earlier version)
        known: dict[str, list[float]] = {}
        texts = [_cleaned(tenant, item) for item in texts]
        stored_documents = self._graph.documents(tenant, [item.document_id for item in texts])
        for position, item in enumerate(texts):
            pieces = chunk_text(item.text, cfg.chunk_chars, cfg.chunk_overlap_chars)
            if not pieces:
                continue
            version = content_version(item.title, item.text)
            stored = stored_documents.get(item.document_id)
            # Readable chunks only (staged ones are a failed or unfinished write's leftovers),
            # counted even without a Document node (points written before staging existed).
            stored_chunks = self._vectors.count(tenant, item.document_id)
            if (
                stored
                and stored.get("version") == version
                and self._published(tenant, item, version, len(pieces), stored_chunks)
            ):
                # Same text: no embedding, no write; only a new file hash (a re-saved file) is
                # noted, so the next sync does not look at the file again.
                if stored.get("file_hash") != item.provenance.file_hash and item.provenance.path:
                    self._graph.set_provenance(tenant, item.document_id, item.provenance)
                results[position] = IndexedDocument(item.document_id, version, len(pieces), 0, 0)
                continue
            known.update(self._stored_vectors(tenant, item.document_id, stored_chunks))
            changed.append((position, stored_chunks))
        if not changed:
            return results
        prepared = prepare_documents(
            tenant,
            [SourceDocument(texts[p].document_id, texts[p].title, texts[p].text) for p, _ in changed],
            self._dense,
            self._sparse,
            cfg.chunk_chars,
            cfg.chunk_overlap_chars,
            known_vectors=known,
            encode=functools.partial(self._encode_with_heartbeats, heartbeat=heartbeat),
        )
        writes = [
            DocumentWrite(doc, stored_chunks, texts[position].provenance)
            for (position, stored_chunks), doc in zip(changed, prepared, strict=True)
        ]
        hold = functools.partial(pause_if_asked, COMMIT_FAULT_STEP, self._settings.faults)
        removed = write_documents(tenant, writes, self._vectors, self._graph, before_commit=hold)
        # Every document written, even one whose graph already had this version: that is a retry
        # after a crash between commit and publish, before the first attempt got here.
        invalidate_answers(self._cache, tenant, [doc.document_id for doc in prepared])
        for (position, _), doc, dropped in zip(changed, prepared, removed, strict=True):
            results[position] = IndexedDocument(
                doc.document_id,
                doc.version,
                len(doc.records),
                doc.entity_count,
                removed_chunks=dropped,
                embedded_chunks=len(doc.records) - doc.reused_vectors,
            )
        return results

    def _published(self, tenant: str, item: TextToIndex, version: str, chunks: int, readable: int) -> bool:
        """Whether the committed version is also what search reads: exactly its chunks. After a
        crash between the graph's commit and the publish, the readable chunks are the old version's."""
        if readable != chunks:
            return False
        return self._vectors.count(tenant, item.document_id, version=version) == chunks

    def _encode_with_heartbeats(
        self, texts: Sequence[str], heartbeat: Callable[[], None]
    ) -> list[list[float]]:
        """Embed in slices, with a heartbeat after each: one huge file (a 500-page PDF) must not
        go quiet for longer than the heartbeat timeout, which is what detects a dead worker."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), ENCODE_SLICE):
            vectors.extend(self._dense.encode_documents(texts[start : start + ENCODE_SLICE]))
            heartbeat()
        return vectors

    def _stored_vectors(self, tenant: str, document_id: str, count: int) -> dict[str, list[float]]:
        """Embedded text -> stored vector of the document's current chunks: an edit re-embeds
        only the chunks whose text (or the title) changed, wherever they moved to."""
        if count == 0:
            return {}
        ids = [chunk_id_for(document_id, position) for position in range(count)]
        stored = self._vectors.get_chunks(tenant, ids, with_vectors=True)
        return {embedded_text(c.title, c.text): c.dense for c in stored if c.dense is not None}


def invalidate_answers(cache: AnswerCache | None, tenant: str, document_ids: list[str]) -> None:
    """Drop the cached answers citing these documents (changed or removed). A failure is logged,
    not raised: the documents are written, and a cache hit is checked against the versions it
    cites before it is served, so an entry left behind here is never served."""
    if cache is None or not document_ids:
        return
    try:
        cache.invalidate_documents(tenant, document_ids)
    except RedisError as err:
        count = len(document_ids)
        _log.warning("answer cache: could not invalidate %d documents of %s: %s", count, tenant, err)


def _cleaned(tenant: str, item: TextToIndex) -> TextToIndex:
    """The text and title without the characters a store refuses; what changed is logged."""
    title, text = clean_text(item.title), clean_text(item.text)
    if not (title.changed or text.changed):
        return item
    _log.warning(
        "document %s (tenant %s): %d control characters removed, %d lone surrogates replaced",
        item.document_id,
        tenant,
        title.dropped + text.dropped,
        title.replaced + text.replaced,
    )
    return TextToIndex(item.document_id, title.text, text.text, item.provenance)

"""Indexing one document into both stores: chunk, embed, upsert, link entities."""

from __future__ import annotations

import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors
from ingestion.chunking import chunk_text
from ingestion.entities import entity_key, extract_entities, extract_relations
from keel.blobs import BlobNotFoundError, BlobStore
from keel.domain import DocumentRef, IndexedDocument
from keel.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphChunk, GraphRelation, GraphStore
from retrieval.types import ChunkRecord, chunk_id_for
from retrieval.vector_store import VectorStore


def content_version(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:16]


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

        # The title goes into every embedded text: a chunk alone often never names its subject.
        dense = self._dense.encode_documents([f"{title}\n{p}" for p in pieces])
        activity.heartbeat(len(pieces))
        records: list[ChunkRecord] = []
        graph_chunks: list[GraphChunk] = []
        relations: dict[tuple[str, str, str], GraphRelation] = {}
        title_entities = extract_entities(title.split("(")[0])
        # Names the whole document uses are known in each chunk: a chunk that opens with a
        # one-word name ("Palletview is owned by …") has no cue of its own.
        known = list(dict.fromkeys(title_entities + extract_entities(text)))
        for position, (piece, vector) in enumerate(zip(pieces, dense, strict=True)):
            chunk_id = chunk_id_for(ref.document_id, position)
            names = list(dict.fromkeys(title_entities + extract_entities(piece, known=known)))
            records.append(
                ChunkRecord(
                    tenant=ref.tenant,
                    document_id=ref.document_id,
                    chunk_id=chunk_id,
                    position=position,
                    title=title,
                    text=piece,
                    version=version,
                    dense=vector,
                    sparse=self._sparse.encode_document(f"{title}\n{piece}"),
                    entities=names,
                )
            )
            graph_chunks.append(GraphChunk(chunk_id, position, [(entity_key(n), n) for n in names]))
            for rel in extract_relations(piece, names):
                source, target = entity_key(rel.source), entity_key(rel.target)
                relations[(source, target, rel.kind)] = GraphRelation(
                    source, target, rel.kind, ref.document_id
                )

        self._vectors.upsert(records)
        keep = [r.chunk_id for r in records]
        removed = (self._vectors.count(ref.tenant, ref.document_id) - len(keep)) if stored else 0
        self._vectors.delete_document(ref.tenant, ref.document_id, keep_chunk_ids=keep)
        self._graph.upsert_document(
            ref.tenant, ref.document_id, title, version, graph_chunks, list(relations.values())
        )
        entities = {key for chunk in graph_chunks for key, _ in chunk.entities}
        return IndexedDocument(
            ref.document_id, version, len(records), len(entities), removed_chunks=max(0, removed)
        )

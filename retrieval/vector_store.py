"""The vector-store protocol both Qdrant adapters implement, and the helpers they share."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from keel.core.chunks import ScoredChunk
from retrieval.clean_text import unsafe_character
from retrieval.types import ChunkRecord, InvalidRequestError, SparseVec, point_id, validate_tenant

DENSE = "dense"
SPARSE = "bm25"
DEFAULT_DIMENSION = 384  # all-MiniLM-L6-v2
# A staged point carries STATE = STAGED: written, but not part of any read until published.
STATE = "state"
STAGED = "staged"
# Keyword payload indexes: tenant (is_tenant), plus the fields deletes, lookups and reads filter on.
INDEXED_KEYWORDS = ("tenant", "document_id", "chunk_id", STATE)


class VectorStore(Protocol):
    """Chunks with a dense and a BM25 vector each; every call is scoped to one tenant."""

    def upsert(self, chunks: Sequence[ChunkRecord]) -> None:
        """Insert or overwrite chunks (point id from tenant + chunk_id); durable on return."""
        ...

    def stage(self, chunks: Sequence[ChunkRecord]) -> None:
        """Write chunks that no read sees (searches, `get_chunks`, `count` without `staged`):
        a version's vectors, stored and accepted by the store before the version is committed.

        Point ids come from tenant + chunk_id + version, apart from the published points, so
        a retry overwrites its own staged points and never hides a published one. Durable on return.
        """
        ...

    def discard_staged(self, tenant: str, document_ids: Collection[str]) -> None:
        """Remove the documents' staged chunks (of any version); durable on return."""
        ...

    def delete_document(self, tenant: str, document_id: str, keep_chunk_ids: Collection[str] = ()) -> None:
        """Remove the document's chunks except `keep_chunk_ids`; durable on return."""
        ...

    def search_dense(self, tenant: str, vector: Sequence[float], k: int) -> list[ScoredChunk]:
        """Nearest chunks by cosine similarity (source "dense")."""
        ...

    def search_sparse(self, tenant: str, vector: SparseVec, k: int) -> list[ScoredChunk]:
        """Best chunks by BM25 with IDF (source "bm25")."""
        ...

    def search_hybrid(
        self,
        tenant: str,
        dense: Sequence[float],
        sparse: SparseVec,
        k: int,
        prefetch_k: int,
        rrf_k: int = 60,
    ) -> list[ScoredChunk]:
        """Dense and BM25 candidates (`prefetch_k` each) fused by RRF (source "fused")."""
        ...

    def get_chunks(
        self, tenant: str, chunk_ids: Sequence[str], with_vectors: bool = False
    ) -> list[ScoredChunk]:
        """Chunks by id, in input order, score 0; ids not stored are skipped. `with_vectors` fills `dense`."""
        ...

    def count(
        self, tenant: str, document_id: str | None = None, version: str | None = None, staged: bool = False
    ) -> int:
        """Number of the tenant's chunks, or of one document's, or of one version of it;
        the readable ones, or with `staged` the staged ones."""
        ...

    def close(self) -> None:
        """Release the store; later calls fail."""
        ...


def payload_of(chunk: ChunkRecord, staged: bool = False) -> dict[str, Any]:
    return {
        **({STATE: STAGED} if staged else {}),
        "tenant": chunk.tenant,
        "document_id": chunk.document_id,
        "chunk_id": chunk.chunk_id,
        "position": chunk.position,
        "title": chunk.title,
        "text": chunk.text,
        "version": chunk.version,
    }


def check_chunks(chunks: Sequence[ChunkRecord], dimension: int) -> None:
    """Refuse malformed chunks before anything is written, so a batch is not half applied."""
    for chunk in chunks:
        validate_tenant(chunk.tenant)
        if not chunk.chunk_id or not chunk.document_id:
            raise InvalidRequestError(f"chunk {chunk.chunk_id!r} of {chunk.document_id!r}: empty id")
        if len(chunk.dense) != dimension:
            raise InvalidRequestError(
                f"chunk {chunk.chunk_id!r}: dense vector has {len(chunk.dense)} dims, "
                f"store expects {dimension}"
            )
        check_sparse(chunk.sparse, f"chunk {chunk.chunk_id!r}")
        for name in ("tenant", "document_id", "chunk_id", "title", "text", "version"):
            # Refused here, as bad input: in the engine it would be a bare error, retried in vain.
            if bad := unsafe_character(getattr(chunk, name)):
                raise InvalidRequestError(
                    f"chunk {chunk.chunk_id!r}: {name} holds {bad} (clean the text first)"
                )


def staged_point_id(chunk: ChunkRecord) -> str:
    """Where `stage` writes a chunk: apart from its published point, one place per version."""
    return point_id(chunk.tenant, f"{chunk.chunk_id}@{chunk.version}")


def check_sparse(vector: SparseVec, what: str) -> None:
    if len(vector.indices) != len(vector.values):
        raise InvalidRequestError(
            f"{what}: sparse vector has {len(vector.indices)} indices and {len(vector.values)} values"
        )


def check_query(tenant: str, k: int, dense: Sequence[float] | None = None, dimension: int = 0) -> None:
    validate_tenant(tenant)
    if k < 1:
        raise InvalidRequestError(f"k must be at least 1, got {k}")
    if dense is not None and len(dense) != dimension:
        raise InvalidRequestError(f"query vector has {len(dense)} dims, store expects {dimension}")


def dense_of(vector: Any) -> list[float] | None:
    """The named "dense" vector of a retrieved record, whatever the adapter's shape."""
    if isinstance(vector, Mapping) and "dense" in vector:
        return [float(x) for x in vector["dense"]]
    return None


def scored_chunk(
    payload: Mapping[str, Any] | None, score: float, source: str, dense: list[float] | None = None
) -> ScoredChunk:
    payload = payload or {}
    return ScoredChunk(
        chunk_id=str(payload.get("chunk_id", "")),
        document_id=str(payload.get("document_id", "")),
        score=float(score),
        title=str(payload.get("title", "")),
        text=str(payload.get("text", "")),
        source=source,
        version=str(payload.get("version", "")),
        dense=dense,
    )


def in_input_order(chunk_ids: Sequence[str], found: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Order `found` as `chunk_ids` (first occurrence), skipping ids not found."""
    by_id = {chunk.chunk_id: chunk for chunk in found}
    ordered: list[ScoredChunk] = []
    for chunk_id in dict.fromkeys(chunk_ids):
        if chunk_id in by_id:
            ordered.append(by_id[chunk_id])
    return ordered

"""VectorStore over Qdrant Edge: the Qdrant engine in-process, one shard on disk."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from keel.core.chunks import ScoredChunk
from retrieval.types import ChunkRecord, InvalidRequestError, SparseVec, StoreError, point_id
from retrieval.vector_store import (
    DEFAULT_DIMENSION,
    DENSE,
    INDEXED_KEYWORDS,
    SPARSE,
    STAGED,
    STATE,
    check_chunks,
    check_query,
    check_sparse,
    dense_of,
    in_input_order,
    payload_of,
    scored_chunk,
    staged_point_id,
)


class QdrantEdgeStore:
    """Chunks in a Qdrant Edge shard at `path`, created on first use."""

    def __init__(self, path: Path, dimension: int = DEFAULT_DIMENSION) -> None:
        self._path = Path(path)
        self._dimension = dimension
        # The shard's thread safety is not documented; activities may run in threads.
        self._lock = threading.Lock()
        with self._errors(f"open shard at {self._path}"):
            if self._path.exists() and any(self._path.iterdir()):
                self._shard = qe.EdgeShard.load(str(self._path))
            else:
                self._shard = qe.EdgeShard.create(str(self._path), self._config())
            self._ensure_indexes()
        self._closed = False

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self._dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    def _ensure_indexes(self) -> None:
        existing = self._shard.info().payload_schema
        for field in INDEXED_KEYWORDS:
            if field in existing:
                continue
            schema = (
                qe.KeywordIndexParams(is_tenant=True) if field == "tenant" else qe.PayloadSchemaType.Keyword
            )
            self._shard.update(qe.UpdateOperation.create_field_index(field, schema))
        self._shard.flush()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        # The engine raises bare Exception; name the operation so the caller knows what failed.
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"qdrant edge: {what} failed: {exc}") from exc

    @contextmanager
    def _shard_call(self, what: str) -> Iterator[Any]:
        with self._lock, self._errors(what):
            if self._closed:
                raise StoreError(f"qdrant edge: {what}: store at {self._path} is closed")
            yield self._shard

    def upsert(self, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(chunks, self._dimension)
        if not chunks:
            return
        points = [qe.Point(point_id(c.tenant, c.chunk_id), _vectors(c), payload_of(c)) for c in chunks]
        with self._shard_call(f"upsert of {len(points)} chunks") as shard:
            shard.update(qe.UpdateOperation.upsert_points(points))
            shard.flush()

    def stage(self, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(chunks, self._dimension)
        if not chunks:
            return
        points = [qe.Point(staged_point_id(c), _vectors(c), payload_of(c, staged=True)) for c in chunks]
        with self._shard_call(f"stage of {len(points)} chunks") as shard:
            shard.update(qe.UpdateOperation.upsert_points(points))
            shard.flush()

    def discard_staged(self, tenant: str, document_ids: Collection[str]) -> None:
        if not document_ids:
            return
        flt = qe.Filter(
            must=[*_tenant(tenant), _match_any("document_id", list(document_ids)), _match(STATE, STAGED)]
        )
        with self._shard_call(
            f"discard of staged chunks of {len(document_ids)} documents (tenant {tenant!r})"
        ) as shard:
            shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
            shard.flush()

    def delete_document(self, tenant: str, document_id: str, keep_chunk_ids: Collection[str] = ()) -> None:
        must_not: list[Any] | None = (
            [_match_any("chunk_id", list(keep_chunk_ids))] if keep_chunk_ids else None
        )
        flt = qe.Filter(must=[*_tenant(tenant), _match("document_id", document_id)], must_not=must_not)
        with self._shard_call(f"delete of document {document_id!r} (tenant {tenant!r})") as shard:
            shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
            shard.flush()

    def search_dense(self, tenant: str, vector: Sequence[float], k: int) -> list[ScoredChunk]:
        check_query(tenant, k, vector, self._dimension)
        query = qe.Query.Nearest(list(vector), using=DENSE)
        return self._query(tenant, k, query, None, DENSE)

    def search_sparse(self, tenant: str, vector: SparseVec, k: int) -> list[ScoredChunk]:
        check_query(tenant, k)
        check_sparse(vector, "sparse query")
        if not vector.indices:  # only stop words: nothing can match
            return []
        query = qe.Query.Nearest(_sparse(vector), using=SPARSE)
        return self._query(tenant, k, query, None, SPARSE)

    def search_hybrid(
        self,
        tenant: str,
        dense: Sequence[float],
        sparse: SparseVec,
        k: int,
        prefetch_k: int,
        rrf_k: int = 60,
    ) -> list[ScoredChunk]:
        check_query(tenant, k, dense, self._dimension)
        check_sparse(sparse, "sparse query")
        if prefetch_k < k:
            raise InvalidRequestError(f"prefetch_k ({prefetch_k}) must be at least k ({k})")
        flt = _readable(tenant)
        prefetches = [
            qe.Prefetch(limit=prefetch_k, query=qe.Query.Nearest(list(dense), using=DENSE), filter=flt)
        ]
        if sparse.indices:
            nearest = qe.Query.Nearest(_sparse(sparse), using=SPARSE)
            prefetches.append(qe.Prefetch(limit=prefetch_k, query=nearest, filter=flt))
        return self._query(tenant, k, qe.Fusion.Rrf(k=rrf_k), prefetches, "fused")

    def _query(
        self, tenant: str, k: int, query: Any, prefetches: list[qe.Prefetch] | None, source: str
    ) -> list[ScoredChunk]:
        request = qe.QueryRequest(
            limit=k,
            query=query,
            prefetches=prefetches,
            filter=_readable(tenant),
            with_payload=True,
            with_vector=False,
        )
        with self._shard_call(f"{source} search (tenant {tenant!r})") as shard:
            points = shard.query(request)
        return [scored_chunk(p.payload, p.score, source) for p in points]

    def get_chunks(
        self, tenant: str, chunk_ids: Sequence[str], with_vectors: bool = False
    ) -> list[ScoredChunk]:
        check_query(tenant, 1)
        if not chunk_ids:
            return []
        flt = _readable(tenant, [_match_any("chunk_id", list(chunk_ids))])
        vectors: bool | list[str] = ["dense"] if with_vectors else False
        request = qe.ScrollRequest(limit=len(chunk_ids), filter=flt, with_payload=True, with_vector=vectors)
        with self._shard_call(f"get of {len(chunk_ids)} chunks (tenant {tenant!r})") as shard:
            records, _ = shard.scroll(request)
        return in_input_order(
            chunk_ids, [scored_chunk(r.payload, 0.0, "", dense_of(r.vector)) for r in records]
        )

    def count(
        self, tenant: str, document_id: str | None = None, version: str | None = None, staged: bool = False
    ) -> int:
        must = []
        if document_id is not None:
            must.append(_match("document_id", document_id))
        if version is not None:
            must.append(_match("version", version))
        flt = (
            qe.Filter(must=[*_tenant(tenant), _match(STATE, STAGED), *must])
            if staged
            else _readable(tenant, must)
        )
        with self._shard_call(f"count (tenant {tenant!r})") as shard:
            return int(shard.count(qe.CountRequest(exact=True, filter=flt)))

    def optimize(self) -> None:
        """Build the HNSW and sparse indexes now (otherwise searches are exact scans)."""
        with self._shard_call("optimize") as shard:
            shard.optimize()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._errors(f"close of shard at {self._path}"):
                self._shard.flush()
                self._shard.close()


def _tenant(tenant: str) -> list[Any]:
    check_query(tenant, 1)
    return [_match("tenant", tenant)]


def _readable(tenant: str, must: list[Any] | None = None) -> qe.Filter:
    """The tenant's points that reads see: all but the staged ones."""
    return qe.Filter(must=[*_tenant(tenant), *(must or [])], must_not=[_match(STATE, STAGED)])


def _match(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _match_any(key: str, values: list[str]) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchAny(values))


def _sparse(vector: SparseVec) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _vectors(chunk: ChunkRecord) -> dict[str, Any]:
    vectors: dict[str, Any] = {DENSE: list(chunk.dense)}
    # A chunk of stop words only has no BM25 terms; the point then simply has no sparse vector.
    if chunk.sparse.indices:
        vectors[SPARSE] = _sparse(chunk.sparse)
    return vectors

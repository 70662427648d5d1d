"""VectorStore over qdrant-client: a Qdrant server (or the client's local mode in tests)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from keel.core.chunks import ScoredChunk
from retrieval.types import (
    ChunkRecord,
    InvalidRequestError,
    SparseVec,
    StoreError,
    StoreUnavailableError,
    point_id,
)
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


class QdrantServerStore:
    """Chunks in one Qdrant collection, created (with its payload indexes) if missing."""

    def __init__(self, client: QdrantClient, collection: str, dimension: int = DEFAULT_DIMENSION) -> None:
        if not collection:
            raise ValueError("collection name is empty")
        self._client = client
        self._collection = collection
        self._dimension = dimension
        with self._errors(f"create collection {collection!r}"):
            self._ensure_collection()

    def _ensure_collection(self) -> None:
        if not self._client.collection_exists(self._collection):
            try:
                self._client.create_collection(
                    self._collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except (UnexpectedResponse, ValueError):
                # Another worker may have created it meanwhile; anything else re-raises.
                if not self._client.collection_exists(self._collection):
                    raise
        existing = self._client.get_collection(self._collection).payload_schema
        for field in INDEXED_KEYWORDS:
            if field in existing:
                continue
            schema = models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD, is_tenant=field == "tenant"
            )
            self._client.create_payload_index(self._collection, field, field_schema=schema, wait=True)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (ResponseHandlingException, httpx.TransportError, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailableError(f"qdrant {self._collection!r}: {what} failed: {exc}") from exc
        except UnexpectedResponse as exc:
            status = exc.status_code or 0
            cls = InvalidRequestError if 400 <= status < 500 else StoreUnavailableError
            raise cls(f"qdrant {self._collection!r}: {what} failed ({status}): {exc}") from exc
        except (ValueError, TypeError, KeyError) as exc:  # local mode raises these for bad input
            raise InvalidRequestError(f"qdrant {self._collection!r}: {what} failed: {exc}") from exc
        except Exception as exc:
            raise StoreError(f"qdrant {self._collection!r}: {what} failed: {exc}") from exc

    def upsert(self, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(chunks, self._dimension)
        if not chunks:
            return
        points = [
            models.PointStruct(id=point_id(c.tenant, c.chunk_id), vector=_vectors(c), payload=payload_of(c))
            for c in chunks
        ]
        with self._errors(f"upsert of {len(points)} chunks"):
            # wait=True: acknowledged means applied, so a crash after return loses nothing.
            self._client.upsert(self._collection, points=points, wait=True)

    def stage(self, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(chunks, self._dimension)
        if not chunks:
            return
        points = [
            models.PointStruct(id=staged_point_id(c), vector=_vectors(c), payload=payload_of(c, staged=True))
            for c in chunks
        ]
        with self._errors(f"stage of {len(points)} chunks"):
            self._client.upsert(self._collection, points=points, wait=True)

    def discard_staged(self, tenant: str, document_ids: Collection[str]) -> None:
        if not document_ids:
            return
        flt = models.Filter(
            must=[*_tenant(tenant), _match_any("document_id", list(document_ids)), _match(STATE, STAGED)]
        )
        with self._errors(f"discard of staged chunks of {len(document_ids)} documents (tenant {tenant!r})"):
            self._client.delete(
                self._collection, points_selector=models.FilterSelector(filter=flt), wait=True
            )

    def delete_document(self, tenant: str, document_id: str, keep_chunk_ids: Collection[str] = ()) -> None:
        must_not: list[models.Condition] | None = (
            [_match_any("chunk_id", list(keep_chunk_ids))] if keep_chunk_ids else None
        )
        flt = models.Filter(must=[*_tenant(tenant), _match("document_id", document_id)], must_not=must_not)
        with self._errors(f"delete of document {document_id!r} (tenant {tenant!r})"):
            self._client.delete(
                self._collection, points_selector=models.FilterSelector(filter=flt), wait=True
            )

    def search_dense(self, tenant: str, vector: Sequence[float], k: int) -> list[ScoredChunk]:
        check_query(tenant, k, vector, self._dimension)
        return self._query(tenant, k, DENSE, query=list(vector), using=DENSE)

    def search_sparse(self, tenant: str, vector: SparseVec, k: int) -> list[ScoredChunk]:
        check_query(tenant, k)
        check_sparse(vector, "sparse query")
        if not vector.indices:  # only stop words: nothing can match
            return []
        return self._query(tenant, k, SPARSE, query=_sparse(vector), using=SPARSE)

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
        prefetch = [models.Prefetch(query=list(dense), using=DENSE, filter=flt, limit=prefetch_k)]
        if sparse.indices:
            prefetch.append(
                models.Prefetch(query=_sparse(sparse), using=SPARSE, filter=flt, limit=prefetch_k)
            )
        rrf = models.RrfQuery(rrf=models.Rrf(k=rrf_k))
        return self._query(tenant, k, "fused", query=rrf, prefetch=prefetch)

    def _query(self, tenant: str, k: int, source: str, **query: Any) -> list[ScoredChunk]:
        with self._errors(f"{source} search (tenant {tenant!r})"):
            response = self._client.query_points(
                self._collection,
                query_filter=_readable(tenant),
                limit=k,
                with_payload=True,
                with_vectors=False,
                **query,
            )
        return [scored_chunk(p.payload, p.score, source) for p in response.points]

    def get_chunks(
        self, tenant: str, chunk_ids: Sequence[str], with_vectors: bool = False
    ) -> list[ScoredChunk]:
        check_query(tenant, 1)
        if not chunk_ids:
            return []
        flt = _readable(tenant, [_match_any("chunk_id", list(chunk_ids))])
        with self._errors(f"get of {len(chunk_ids)} chunks (tenant {tenant!r})"):
            records, _ = self._client.scroll(
                self._collection,
                scroll_filter=flt,
                limit=len(chunk_ids),
                with_payload=True,
                with_vectors=["dense"] if with_vectors else False,
            )
        return in_input_order(
            chunk_ids, [scored_chunk(r.payload, 0.0, "", dense_of(r.vector)) for r in records]
        )

    def count(
        self, tenant: str, document_id: str | None = None, version: str | None = None, staged: bool = False
    ) -> int:
        must: list[models.Condition] = []
        if document_id is not None:
            must.append(_match("document_id", document_id))
        if version is not None:
            must.append(_match("version", version))
        flt = (
            models.Filter(must=[*_tenant(tenant), _match(STATE, STAGED), *must])
            if staged
            else _readable(tenant, must)
        )
        with self._errors(f"count (tenant {tenant!r})"):
            return self._client.count(self._collection, count_filter=flt, exact=True).count

    def close(self) -> None:
        with self._errors("close"):
            self._client.close()


def _tenant(tenant: str) -> list[models.Condition]:
    check_query(tenant, 1)
    return [_match("tenant", tenant)]


def _readable(tenant: str, must: list[models.Condition] | None = None) -> models.Filter:
    """The tenant's points that reads see: all but the staged ones."""
    return models.Filter(must=[*_tenant(tenant), *(must or [])], must_not=[_match(STATE, STAGED)])


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _match_any(key: str, values: list[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=values))


def _sparse(vector: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _vectors(chunk: ChunkRecord) -> dict[str, Any]:
    vectors: dict[str, Any] = {DENSE: list(chunk.dense)}
    if chunk.sparse.indices:
        vectors[SPARSE] = _sparse(chunk.sparse)
    return vectors

"""One behaviour, two adapters: every test runs on Qdrant Edge and on qdrant-client (local mode)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.qdrant_server_store import QdrantServerStore
from retrieval.types import ChunkRecord, InvalidRequestError, StoreError, chunk_id_for
from retrieval.vector_store import VectorStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

CORPUS = {
    "payments": [
        "The payments service retries failed card charges three times before giving up.",
        "Alice leads the payments team and owns the billing roadmap.",
    ],
    "kitchen": [
        "Fresh basil and ripe tomatoes make a simple summer pasta sauce.",
        "Bake the sourdough loaf at 230 degrees for forty minutes.",
    ],
    "network": ["The VPN gateway drops idle connections after fifteen minutes."],
}


class Encoders:
    def __init__(self) -> None:
        self.dense = DenseEncoder(Settings().embedding_model_path())
        self.sparse = SparseEncoder()

    def records(self, tenant: str, corpus: dict[str, list[str]], version: str = "v1") -> list[ChunkRecord]:
        rows = [(doc, pos, text) for doc, texts in corpus.items() for pos, text in enumerate(texts)]
        dense = self.dense.encode_documents([text for _, _, text in rows])
        return [
            ChunkRecord(
                tenant=tenant,
                document_id=doc,
                chunk_id=chunk_id_for(doc, pos),
                position=pos,
                title=doc.title(),
                text=text,
                version=version,
                dense=vector,
                sparse=self.sparse.encode_document(text),
            )
            for (doc, pos, text), vector in zip(rows, dense, strict=True)
        ]


@pytest.fixture(scope="module")
def enc() -> Encoders:
    return Encoders()


@pytest.fixture(scope="module")
def corpus_a(enc: Encoders) -> list[ChunkRecord]:
    return enc.records("tenant-a", CORPUS)


@pytest.fixture(params=["edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s: VectorStore
    if request.param == "edge":
        s = QdrantEdgeStore(tmp_path / "qdrant")
    else:
        s = QdrantServerStore(QdrantClient(location=":memory:"), "chunks")
    try:
        yield s
    finally:
        s.close()


def ids(chunks: list) -> list[str]:
    return [c.chunk_id for c in chunks]


def test_upsert_and_count(store: VectorStore, corpus_a: list[ChunkRecord]) -> None:
    store.upsert(corpus_a)
    assert store.count("tenant-a") == 5
    assert store.count("tenant-a", "payments") == 2
    assert store.count("tenant-a", "missing") == 0
    assert store.count("tenant-b") == 0


def test_re_upsert_is_idempotent(store: VectorStore, corpus_a: list[ChunkRecord]) -> None:
    store.upsert(corpus_a)
    store.upsert(corpus_a)
    assert store.count("tenant-a") == 5
    store.upsert([])
    assert store.count("tenant-a") == 5


def test_tenants_are_isolated(store: VectorStore, enc: Encoders, corpus_a: list[ChunkRecord]) -> None:
    store.upsert(corpus_a)
    # Same document and chunk ids, other texts: tenant B must neither overwrite nor see tenant A.
    store.upsert(enc.records("tenant-b", {"kitchen": ["Tenant B keeps its own bread notes here."]}))
    assert store.count("tenant-a") == 5
    assert store.count("tenant-b") == 1
    assert store.count("tenant-b", "payments") == 0

    query = "Alice leads the payments team"
    dense, sparse = enc.dense.encode_query(query), enc.sparse.encode_query(query)
    for hits in (
        store.search_dense("tenant-b", dense, 10),
        store.search_sparse("tenant-b", enc.sparse.encode_query("bread notes payments"), 10),
        store.search_hybrid("tenant-b", dense, sparse, 10, 20),
        store.get_chunks("tenant-b", [c.chunk_id for c in corpus_a]),
    ):
        assert [(c.chunk_id, c.text) for c in hits] in (
            [],
            [("kitchen#0000", "Tenant B keeps its own bread notes here.")],
        )
    assert store.search_sparse("tenant-b", sparse, 10) == []
    assert ids(store.search_dense("tenant-c", dense, 10)) == []

    store.delete_document("tenant-b", "kitchen")
    assert store.count("tenant-a", "kitchen") == 2
    assert store.count("tenant-b") == 0


def test_delete_document_keeps_listed_chunks(store: VectorStore, corpus_a: list[ChunkRecord]) -> None:
    store.upsert(corpus_a)
    store.delete_document("tenant-a", "payments", keep_chunk_ids=["payments#0000"])
    assert store.count("tenant-a", "payments") == 1
    assert ids(store.get_chunks("tenant-a", ["payments#0000", "payments#0001"])) == ["payments#0000"]
    store.delete_document("tenant-a", "payments")
    assert store.count("tenant-a", "payments") == 0
    assert store.count("tenant-a") == 3
    store.delete_document("tenant-a", "never-stored")


@pytest.mark.parametrize(
    ("mode", "query", "expected"),
    [
        ("dense", "how do I cook pasta with tomatoes", "kitchen#0000"),
        ("sparse", "sourdough loaf", "kitchen#0001"),
        ("hybrid", "who leads the payments team", "payments#0001"),
        ("hybrid", "VPN idle connection timeout", "network#0000"),
    ],
)
def test_search_ranks_expected_chunk_first(
    store: VectorStore, enc: Encoders, corpus_a: list[ChunkRecord], mode: str, query: str, expected: str
) -> None:
    store.upsert(corpus_a)
    dense, sparse = enc.dense.encode_query(query), enc.sparse.encode_query(query)
    if mode == "dense":
        hits = store.search_dense("tenant-a", dense, 3)
    elif mode == "sparse":
        hits = store.search_sparse("tenant-a", sparse, 3)
    else:
        hits = store.search_hybrid("tenant-a", dense, sparse, 3, 10, rrf_k=60)
    assert hits, f"{mode} search returned nothing"
    assert len(hits) <= 3
    top = hits[0]
    assert top.chunk_id == expected
    assert top.source == {"dense": "dense", "sparse": "bm25", "hybrid": "fused"}[mode]
    record = next(r for r in corpus_a if r.chunk_id == expected)
    assert (top.document_id, top.title, top.text, top.version) == (
        record.document_id,
        record.title,
        record.text,
        "v1",
    )
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_get_chunks_in_input_order(store: VectorStore, corpus_a: list[ChunkRecord]) -> None:
    store.upsert(corpus_a)
    wanted = ["network#0000", "missing#0000", "payments#0001", "kitchen#0000"]
    got = store.get_chunks("tenant-a", wanted)
    assert ids(got) == ["network#0000", "payments#0001", "kitchen#0000"]
    assert all(c.score == 0 for c in got)
    assert got[1].text == CORPUS["payments"][1]
    assert store.get_chunks("tenant-a", []) == []
    assert all(c.dense is None for c in got)


def test_get_chunks_with_vectors_returns_the_stored_dense_vector(
    store: VectorStore, corpus_a: list[ChunkRecord]
) -> None:
    store.upsert(corpus_a)
    stored = {r.chunk_id: r.dense for r in corpus_a}
    got = store.get_chunks("tenant-a", list(stored), with_vectors=True)
    assert len(got) == len(stored)
    for chunk in got:
        assert chunk.dense == pytest.approx(stored[chunk.chunk_id], abs=1e-5)


def test_updated_chunk_replaces_old_payload(store: VectorStore, enc: Encoders) -> None:
    store.upsert(enc.records("tenant-a", {"doc": ["first text"]}, version="v1"))
    store.upsert(enc.records("tenant-a", {"doc": ["second text"]}, version="v2"))
    [chunk] = store.get_chunks("tenant-a", ["doc#0000"])
    assert (chunk.text, chunk.version) == ("second text", "v2")


def test_bad_input_is_refused(store: VectorStore, corpus_a: list[ChunkRecord], enc: Encoders) -> None:
    with pytest.raises(InvalidRequestError, match="tenant"):
        store.count("bad tenant!")
    with pytest.raises(InvalidRequestError, match="3 dims"):
        store.search_dense("tenant-a", [0.1, 0.2, 0.3], 3)
    short = ChunkRecord("tenant-a", "d", "d#0000", 0, "", "", "v", [0.0] * 3, corpus_a[0].sparse)
    with pytest.raises(InvalidRequestError, match="d#0000"):
        store.upsert([corpus_a[0], short])
    assert store.count("tenant-a") == 0  # nothing of a refused batch is written
    assert issubclass(InvalidRequestError, StoreError)


def test_staged_chunks_are_invisible_to_every_read(store: VectorStore, enc: Encoders) -> None:
    store.upsert(enc.records("tenant-a", {"doc": ["The old text about sourdough bread."]}, version="v1"))
    staged = enc.records(
        "tenant-a", {"doc": ["The new text about basil pasta sauce.", "A second chunk."]}, "v2"
    )
    store.stage(staged)
    store.stage(staged)  # a retried stage overwrites its own points
    query = "basil pasta sauce"
    dense, sparse = enc.dense.encode_query(query), enc.sparse.encode_query(query)
    searches = [
        store.search_dense("tenant-a", dense, 10),
        store.search_sparse("tenant-a", sparse, 10),
        store.search_hybrid("tenant-a", dense, sparse, 10, 20),
        store.get_chunks("tenant-a", ["doc#0000", "doc#0001"], with_vectors=True),
    ]
    assert all({(c.chunk_id, c.version) for c in hits} <= {("doc#0000", "v1")} for hits in searches)
    assert [len(hits) for hits in searches[1:]] == [0, 1, 1]  # BM25 finds nothing of the old text
    assert (store.count("tenant-a"), store.count("tenant-a", "doc")) == (1, 1)
    assert (store.count("tenant-a", "doc", version="v1"), store.count("tenant-a", "doc", version="v2")) == (
        1,
        0,
    )
    assert (store.count("tenant-a", "doc", staged=True), store.count("tenant-a", staged=True)) == (2, 2)


def test_publishing_swaps_the_version_and_discard_drops_staged(store: VectorStore, enc: Encoders) -> None:
    store.upsert(enc.records("tenant-a", {"doc": ["old one", "old two"], "other": ["kept"]}, version="v1"))
    new = enc.records("tenant-a", {"doc": ["new one"]}, version="v2")
    store.stage(new)
    store.upsert(new)  # publish: the same chunk ids, now readable
    store.delete_document("tenant-a", "doc", keep_chunk_ids=["doc#0000"])
    store.discard_staged("tenant-a", ["doc"])
    store.discard_staged("tenant-a", [])  # nothing to do
    assert [
        (c.chunk_id, c.version, c.text) for c in store.get_chunks("tenant-a", ["doc#0000", "doc#0001"])
    ] == [("doc#0000", "v2", "new one")]
    assert store.count("tenant-a", staged=True) == 0
    assert store.count("tenant-a", "doc", version="v2") == 1
    assert store.count("tenant-a", "other") == 1


def test_deleting_a_document_removes_its_staged_chunks(store: VectorStore, enc: Encoders) -> None:
    store.stage(enc.records("tenant-a", {"doc": ["staged only"]}, version="v1"))
    store.delete_document("tenant-a", "doc")
    assert store.count("tenant-a", "doc", staged=True) == 0


@pytest.mark.parametrize("bad", ["nul \x00 byte", "lone \ud800 surrogate", "escape \x1b char"])
def test_text_a_store_cannot_hold_is_refused_before_writing(
    store: VectorStore, corpus_a: list[ChunkRecord], bad: str
) -> None:
    dirty = replace(corpus_a[1], text=bad)
    for write in (store.upsert, store.stage):
        with pytest.raises(InvalidRequestError, match=r"holds U\+(00|D800)"):
            write([corpus_a[0], dirty])
    assert store.count("tenant-a") == 0
    assert store.count("tenant-a", staged=True) == 0


def test_edge_store_survives_close_and_reopen(
    tmp_path: Path, enc: Encoders, corpus_a: list[ChunkRecord]
) -> None:
    path = tmp_path / "qdrant"
    store = QdrantEdgeStore(path)
    store.upsert(corpus_a)
    store.delete_document("tenant-a", "network")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count("tenant-a")

    reopened = QdrantEdgeStore(path)
    try:
        assert reopened.count("tenant-a") == 4
        query = "sourdough loaf"
        hits = reopened.search_hybrid(
            "tenant-a", enc.dense.encode_query(query), enc.sparse.encode_query(query), 2, 10
        )
        assert hits[0].chunk_id == "kitchen#0001"
    finally:
        reopened.close()

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from keel.services import free_port
from retrieval.graph_store import GraphChunk, GraphRelation, GraphStore
from retrieval.types import InvalidRequestError, StoreUnavailableError

pytestmark = pytest.mark.integration


@pytest.fixture
def graph(falkordb_url: str) -> Iterator[GraphStore]:
    # A fresh prefix per test: tests share the session's server but never a graph.
    store = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.close()


def handbook(n_chunks: int = 3) -> tuple[list[GraphChunk], list[GraphRelation]]:
    chunks = [
        GraphChunk("hb#0000", 0, [("alice", "Alice"), ("payments", "Payments team")]),
        GraphChunk("hb#0001", 1, [("payments", "Payments team"), ("billing", "Billing API")]),
        GraphChunk("hb#0002", 2, [("bob", "Bob"), ("ledger", "Ledger")]),
    ][:n_chunks]
    relations = [GraphRelation("billing", "ledger", "DEPENDS_ON", "hb")] if n_chunks == 3 else []
    return chunks, relations


def test_upsert_twice_gives_identical_counts(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    first = graph.counts("acme")
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    assert (
        graph.counts("acme")
        == first
        == {
            "documents": 1,
            "chunks": 3,
            "entities": 5,
            "mentions": 6,
            "relations": 1,
        }
    )
    assert graph.document("acme", "hb") == {"id": "hb", "title": "Handbook", "version": "v1", "chunks": 3}


def test_shrinking_document_removes_chunks_and_orphan_entities(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    short, _ = handbook(n_chunks=2)
    graph.upsert_document("acme", "hb", "Handbook", "v2", short, [])
    assert graph.counts("acme") == {"documents": 1, "chunks": 2, "entities": 3, "mentions": 4, "relations": 0}
    assert graph.entity_keys_in("acme", ["hb#0002"]) == []
    assert graph.neighbour_chunks("acme", ["bob", "ledger"]) == []
    assert graph.document("acme", "hb") == {"id": "hb", "title": "Handbook", "version": "v2", "chunks": 2}


def test_changed_mentions_of_a_kept_chunk_are_replaced(graph: GraphStore) -> None:
    graph.upsert_document("acme", "d", "D", "v1", [GraphChunk("d#0000", 0, [("x", "X"), ("y", "Y")])], [])
    graph.upsert_document("acme", "d", "D", "v2", [GraphChunk("d#0000", 0, [("y", "Y"), ("z", "Z")])], [])
    assert graph.entity_keys_in("acme", ["d#0000"]) == ["y", "z"]
    assert graph.counts("acme")["entities"] == 2


def test_neighbours_one_and_two_hops(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    graph.upsert_document("acme", "ops", "Ops", "v1", [GraphChunk("ops#0000", 0, [("ledger", "Ledger")])], [])

    # billing is in hb#0001 (1 hop); ledger DEPENDS_ON-related to billing is in hb#0002 and ops#0000;
    # payments is co-mentioned with billing, so hb#0000 is 2 hops away too.
    found = graph.neighbour_chunks("acme", ["billing"])
    assert [(n.chunk_id, n.hops) for n in found] == [
        ("hb#0001", 1),
        ("hb#0000", 2),
        ("hb#0002", 2),
        ("ops#0000", 2),
    ]
    assert {n.chunk_id: n.via for n in found}["ops#0000"] == "ledger"
    assert {n.chunk_id: n.document_id for n in found}["ops#0000"] == "ops"
    assert graph.neighbour_chunks("acme", ["billing"]) == found  # deterministic
    assert [n.chunk_id for n in graph.neighbour_chunks("acme", ["billing"], max_hops=1)] == ["hb#0001"]
    assert len(graph.neighbour_chunks("acme", ["billing"], limit=2)) == 2
    assert graph.neighbour_chunks("acme", ["nobody"]) == []
    assert graph.entity_keys_in("acme", ["hb#0000", "hb#0001"]) == ["alice", "billing", "payments"]


def test_tenants_are_isolated(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    assert graph.counts("globex") == dict.fromkeys(
        ("documents", "chunks", "entities", "mentions", "relations"), 0
    )
    assert graph.document("globex", "hb") is None
    assert graph.neighbour_chunks("globex", ["billing"]) == []
    assert graph.entity_keys_in("globex", ["hb#0000"]) == []
    graph.delete_document("globex", "hb")
    assert graph.counts("acme")["chunks"] == 3
    assert graph.graph_name("acme") != graph.graph_name("globex")
    with pytest.raises(InvalidRequestError, match="tenant"):
        graph.counts("acme}) MATCH (n")


def test_delete_document(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    graph.upsert_document("acme", "ops", "Ops", "v1", [GraphChunk("ops#0000", 0, [("ledger", "Ledger")])], [])
    graph.delete_document("acme", "hb")
    assert graph.counts("acme") == {"documents": 1, "chunks": 1, "entities": 1, "mentions": 1, "relations": 0}
    assert graph.document("acme", "hb") is None
    graph.delete_document("acme", "hb")  # deleting again is a no-op


def test_injection_looking_input_is_stored_verbatim(graph: GraphStore) -> None:
    title = "'}) DETACH DELETE n //"
    key = 'evil"}) MATCH (m) DETACH DELETE m //'
    graph.upsert_document("acme", "x", title, "v1", [GraphChunk("x#0000", 0, [(key, title)])], [])
    graph.upsert_document("acme", "y", "Y", "v1", [GraphChunk("y#0000", 0, [("ok", "OK")])], [])
    assert graph.document("acme", "x") == {"id": "x", "title": title, "version": "v1", "chunks": 1}
    assert graph.entity_keys_in("acme", ["x#0000"]) == [key]
    assert graph.counts("acme")["documents"] == 2


def test_unknown_relation_kind_is_refused(graph: GraphStore) -> None:
    chunks, _ = handbook()
    bad = [GraphRelation("alice", "bob", "DROP_ALL", "hb")]
    with pytest.raises(InvalidRequestError, match="DROP_ALL"):
        graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, bad)
    assert graph.counts("acme")["documents"] == 0


def test_ensure_indexes_is_repeatable(graph: GraphStore, falkordb_url: str) -> None:
    graph.ensure_indexes("acme")
    # A second process (fresh cache) finds the indexes and creates nothing.
    other = GraphStore(falkordb_url, prefix=graph.graph_name("acme").rsplit("_", 1)[0])
    try:
        other.ensure_indexes("acme")
    finally:
        other.close()


def test_client_does_not_retry(graph: GraphStore) -> None:
    pool = graph._db.connection.connection_pool
    conn = pool.get_connection()
    try:
        assert conn.retry.get_retries() == 0
    finally:
        pool.release(conn)


def test_unreachable_server_fails_at_once() -> None:
    with pytest.raises(StoreUnavailableError, match="falkordb: connect to redis"):
        GraphStore(f"redis://127.0.0.1:{free_port()}", socket_timeout_s=2.0)

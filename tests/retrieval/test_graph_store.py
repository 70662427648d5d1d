from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from retrieval import graph_store
from retrieval.graph_store import (
    SET_DOCUMENTS,
    EntityContribution,
    GraphChunk,
    GraphDocument,
    GraphEntity,
    GraphLink,
    GraphRelation,
    GraphStore,
    Provenance,
)
from retrieval.types import InvalidRequestError, StoreUnavailableError
from tests.support.servers import free_port

# What a document written without provenance records: an upload, no file.
UPLOAD = Provenance().row()

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
    assert graph.document("acme", "hb") == {
        "id": "hb",
        "title": "Handbook",
        "version": "v1",
        "chunks": 3,
        **UPLOAD,
    }


def test_shrinking_document_removes_chunks_and_orphan_entities(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    short, _ = handbook(n_chunks=2)
    graph.upsert_document("acme", "hb", "Handbook", "v2", short, [])
    assert graph.counts("acme") == {"documents": 1, "chunks": 2, "entities": 3, "mentions": 4, "relations": 0}
    assert graph.entity_keys_in("acme", ["hb#0002"]) == []
    assert graph.document("acme", "hb") == {
        "id": "hb",
        "title": "Handbook",
        "version": "v2",
        "chunks": 2,
        **UPLOAD,
    }


def test_changed_mentions_of_a_kept_chunk_are_replaced(graph: GraphStore) -> None:
    graph.upsert_document("acme", "d", "D", "v1", [GraphChunk("d#0000", 0, [("x", "X"), ("y", "Y")])], [])
    graph.upsert_document("acme", "d", "D", "v2", [GraphChunk("d#0000", 0, [("y", "Y"), ("z", "Z")])], [])
    assert graph.entity_keys_in("acme", ["d#0000"]) == ["y", "z"]
    assert graph.counts("acme")["entities"] == 2


def test_tenants_are_isolated(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    assert graph.counts("globex") == dict.fromkeys(
        ("documents", "chunks", "entities", "mentions", "relations"), 0
    )
    assert graph.document("globex", "hb") is None
    assert graph.documents_about("globex", ["billing"], limit=5) == []
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


def test_a_delete_cut_short_after_its_chunks_leaves_no_orphan_entity_once_retried(graph: GraphStore) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    graph.upsert_document("acme", "ops", "Ops", "v1", [GraphChunk("ops#0000", 0, [("ledger", "Ledger")])], [])
    # A worker killed right after the first steps of a delete: the chunks are gone, the entities
    # they alone mentioned are not, and nothing mentions them any more.
    keys = graph.entity_keys_in("acme", [c.chunk_id for c in chunks])
    graph._run("acme", "test", graph_store.MARK_DELETING, {"doc": "hb", "keys": keys})
    graph._run("acme", "test", graph_store.DELETE_CHUNKS_AND_ABOUT, {"doc": "hb"})
    graph.delete_document("acme", "hb")  # the retry
    assert graph.counts("acme") == {"documents": 1, "chunks": 1, "entities": 1, "mentions": 1, "relations": 0}


def test_injection_looking_input_is_stored_verbatim(graph: GraphStore) -> None:
    title = "'}) DETACH DELETE n //"
    key = 'evil"}) MATCH (m) DETACH DELETE m //'
    graph.upsert_document("acme", "x", title, "v1", [GraphChunk("x#0000", 0, [(key, title)])], [])
    graph.upsert_document("acme", "y", "Y", "v1", [GraphChunk("y#0000", 0, [("ok", "OK")])], [])
    assert graph.document("acme", "x") == {"id": "x", "title": title, "version": "v1", "chunks": 1, **UPLOAD}
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


# --- ABOUT edges: documents about an entity, and the bridge hop from a seed chunk --------------


def bridge_corpus(graph: GraphStore) -> None:
    """Anne's first chunk names Boston and Lincoln; there is an article about each, and one about Anne."""
    graph.upsert_document(
        "acme",
        "anne",
        "Anne Smith",
        "v1",
        [
            GraphChunk(
                "anne#0000", 0, [("anne smith", "Anne Smith"), ("boston", "Boston"), ("lincoln", "Lincoln")]
            ),
            GraphChunk("anne#0001", 1, [("anne smith", "Anne Smith")]),
        ],
        [],
        about=[("anne smith", "Anne Smith")],
    )
    graph.upsert_document(
        "acme",
        "boston",
        "Boston, Lincolnshire",
        "v1",
        [GraphChunk("boston#0000", 0, [("lincolnshire", "Lincolnshire")])],
        [],
        about=[("boston, lincolnshire", "Boston, Lincolnshire"), ("boston", "Boston")],
    )
    graph.upsert_document(
        "acme",
        "lincoln",
        "Lincoln",
        "v1",
        [GraphChunk("lincoln#0000", 0, [])],
        [],
        about=[("lincoln", "Lincoln")],
    )


def test_about_edges_are_created(graph: GraphStore) -> None:
    bridge_corpus(graph)
    assert graph.documents_about("acme", ["boston"], limit=10) == [GraphLink("boston", seed="", via="boston")]
    # An entity only an ABOUT edge points at is still an entity.
    assert graph.documents_about("acme", ["boston, lincolnshire"], limit=10) == [
        GraphLink("boston", seed="", via="boston, lincolnshire")
    ]
    assert graph.counts("acme")["entities"] == 5


def test_linked_documents_follow_mentions_to_documents_about_them(graph: GraphStore) -> None:
    bridge_corpus(graph)
    # anne#0000 also mentions Anne Smith, whom its own document is about: that is not a hop.
    assert graph.linked_documents("acme", ["anne#0000"], limit=10) == [
        GraphLink("boston", seed="anne#0000"),
        GraphLink("lincoln", seed="anne#0000"),
    ]
    assert graph.linked_documents("acme", ["anne#0000"], limit=1) == [GraphLink("boston", seed="anne#0000")]
    assert graph.linked_documents("acme", ["anne#0001"], limit=10) == []
    # Boston's chunk names Lincolnshire, which no document is about.
    assert graph.linked_documents("acme", ["boston#0000", "anne#0001"], limit=10) == []
    assert graph.linked_documents("acme", ["nowhere#0000"], limit=10) == []
    assert graph.linked_documents("acme", [], limit=10) == []
    assert graph.linked_documents("acme", ["anne#0000"], limit=0) == []
    assert graph.linked_documents("globex", ["anne#0000"], limit=10) == []


def test_linked_documents_from_several_seeds_are_ordered_by_seed(graph: GraphStore) -> None:
    bridge_corpus(graph)
    graph.upsert_document(
        "acme", "zed", "Zed", "v1", [GraphChunk("zed#0000", 0, [("anne smith", "Anne Smith")])], []
    )
    links = graph.linked_documents("acme", ["zed#0000", "anne#0000"], limit=10)
    assert [(link.seed, link.document_id) for link in links] == [
        ("anne#0000", "boston"),
        ("anne#0000", "lincoln"),
        ("zed#0000", "anne"),
    ]


def test_documents_about(graph: GraphStore) -> None:
    bridge_corpus(graph)
    found = graph.documents_about("acme", ["lincoln", "boston", "boston", "nobody"], limit=10)
    assert [(link.via, link.document_id) for link in found] == [("boston", "boston"), ("lincoln", "lincoln")]
    assert {link.seed for link in found} == {""}
    assert len(graph.documents_about("acme", ["lincoln", "boston"], limit=1)) == 1
    assert graph.documents_about("acme", [], limit=10) == []
    assert graph.documents_about("acme", ["boston"], limit=0) == []
    assert graph.documents_about("globex", ["boston"], limit=10) == []


def test_reupserting_replaces_about_edges(graph: GraphStore) -> None:
    chunks = [GraphChunk("b#0000", 0, [("port", "Port")])]
    graph.upsert_document("acme", "b", "B", "v1", chunks, [], about=[("boston", "Boston")])
    graph.upsert_document(
        "acme", "b", "B", "v1", chunks, [], about=[("boston", "Boston"), ("boston", "Boston")]
    )
    assert graph.documents_about("acme", ["boston"], limit=10) == [GraphLink("b", seed="", via="boston")]
    first = graph.counts("acme")

    graph.upsert_document("acme", "b", "B", "v2", chunks, [], about=[("lincs", "Lincolnshire")])
    assert graph.documents_about("acme", ["boston"], limit=10) == []
    assert graph.documents_about("acme", ["lincs"], limit=10) == [GraphLink("b", seed="", via="lincs")]
    # "boston" was only the old ABOUT target: it goes with the edge.
    assert graph.counts("acme") == first

    graph.upsert_document("acme", "b", "B", "v3", chunks, [])
    assert graph.documents_about("acme", ["lincs"], limit=10) == []
    assert graph.counts("acme")["entities"] == 1


def test_delete_document_removes_entities_only_it_was_about(graph: GraphStore) -> None:
    bridge_corpus(graph)
    graph.delete_document("acme", "boston")
    assert graph.documents_about("acme", ["boston", "boston, lincolnshire"], limit=10) == []
    # "boston" is still mentioned by Anne's chunk; "boston, lincolnshire" and "lincolnshire" are gone.
    assert graph.entity_keys_in("acme", ["anne#0000"]) == ["anne smith", "boston", "lincoln"]
    assert graph.counts("acme")["entities"] == 3
    assert graph.linked_documents("acme", ["anne#0000"], limit=10) == [GraphLink("lincoln", seed="anne#0000")]

    graph.delete_document("acme", "lincoln")
    assert graph.counts("acme")["entities"] == 3  # Anne's chunk still mentions Lincoln
    graph.delete_document("acme", "anne")
    assert graph.counts("acme") == dict.fromkeys(
        ("documents", "chunks", "entities", "mentions", "relations"), 0
    )


# --- Merge evidence: the forms each document reads an entity as, and why they are one entity ---


def edge_evidence(graph: GraphStore, tenant: str) -> list[list[object]]:
    """(edge type, key, names, matches) of every MENTIONS and ABOUT edge, sorted."""
    cypher = "MATCH ()-[r:MENTIONS|ABOUT]->(e:Entity) RETURN type(r), e.key, r.names, r.matches"
    return sorted(graph._run(tenant, "read evidence", cypher), key=repr)


def kestrel_corpus(graph: GraphStore, tenant: str = "acme", order: tuple[str, ...] = ("a", "b", "k")) -> None:
    """Three documents read Kestrel in four forms; "k" is the article about it."""
    docs = {
        "a": ([GraphChunk("a#0000", 0, [("kestrel", "The Kestrel"), ("kestrel", "Kestrel")])], []),
        "b": ([GraphChunk("b#0000", 0, [("kestrel", "kestrel")]), GraphChunk("b#0001", 1, [])], []),
        "k": ([GraphChunk("k#0000", 0, [("kestrel", "Kestrel")])], [("kestrel", "the  Kestrel")]),
    }
    for doc in order:
        chunks, about = docs[doc]
        graph.upsert_document(tenant, doc, doc.upper(), "v1", chunks, [], about=about)


def test_edges_carry_the_forms_they_were_read_as_and_why_they_merged(graph: GraphStore) -> None:
    kestrel_corpus(graph)
    assert edge_evidence(graph, "acme") == [
        ["ABOUT", "kestrel", ["the  Kestrel"], ["normalized: article"]],
        ["MENTIONS", "kestrel", ["Kestrel"], ["exact"]],
        ["MENTIONS", "kestrel", ["The Kestrel", "Kestrel"], ["normalized: article", "exact"]],
        ["MENTIONS", "kestrel", ["kestrel"], ["normalized: case"]],
    ]
    assert graph.entity("acme", "kestrel") == GraphEntity(
        "kestrel",
        "Kestrel",
        ["Kestrel", "The Kestrel", "kestrel", "the  Kestrel"],
        [
            EntityContribution("a", {"Kestrel": "exact", "The Kestrel": "normalized: article"}, 1, False),
            EntityContribution("b", {"kestrel": "normalized: case"}, 1, False),
            EntityContribution("k", {"Kestrel": "exact", "the  Kestrel": "normalized: article"}, 1, True),
        ],
    )
    assert graph.entity("acme", "osprey") is None
    assert graph.entity("globex", "kestrel") is None
    assert not graph._db.connection.exists(graph.graph_name("globex"))  # the read created no graph


def test_evidence_does_not_depend_on_the_order_documents_are_written_in(graph: GraphStore) -> None:
    kestrel_corpus(graph, "acme", order=("a", "b", "k"))
    kestrel_corpus(graph, "globex", order=("k", "b", "a"))
    # b first: the entity is created as "kestrel", then renamed once "Kestrel" is read.
    kestrel_corpus(graph, "initech", order=("b", "k", "a"))
    assert (
        graph.entity("acme", "kestrel")
        == graph.entity("globex", "kestrel")
        == graph.entity("initech", "kestrel")
    )
    assert edge_evidence(graph, "acme") == edge_evidence(graph, "globex") == edge_evidence(graph, "initech")


def test_an_update_replaces_the_documents_contribution_and_its_evidence(graph: GraphStore) -> None:
    old = [
        GraphChunk("a#0000", 0, [("kestrel", "Kestrel"), ("osprey", "Osprey")]),
        GraphChunk("a#0001", 1, [("kestrel", "Kestrel"), ("team aurora", "Team  Aurora")]),
    ]
    rels = [GraphRelation("team aurora", "kestrel", "OWNS", "a")]
    graph.upsert_document("acme", "a", "A", "v1", old, rels, about=[("osprey", "Osprey")])
    graph.upsert_document("acme", "b", "B", "v1", [GraphChunk("b#0000", 0, [("kestrel", "The Kestrel")])], [])
    before = graph.entity("acme", "kestrel")
    assert before is not None
    assert [(c.document_id, c.forms) for c in before.documents] == [
        ("a", {"Kestrel": "exact"}),
        ("b", {"The Kestrel": "normalized: article"}),
    ]

    # New text: a#0000 now reads Wayfinder, a#0001 is gone, the document is about Wayfinder.
    new = [GraphChunk("a#0000", 0, [("wayfinder", "the Wayfinder")])]
    graph.upsert_document("acme", "a", "A", "v2", new, [], about=[("wayfinder", "Wayfinder")])

    # Kestrel keeps only b's evidence; with "Kestrel" gone, b's form is the name and matches exactly.
    assert graph.entity("acme", "kestrel") == GraphEntity(
        "kestrel",
        "The Kestrel",
        ["The Kestrel"],
        [EntityContribution("b", {"The Kestrel": "exact"}, 1, False)],
    )
    # Entities only a's old text named are gone, with their relation and the ABOUT edge.
    assert graph.entity("acme", "osprey") is None
    assert graph.entity("acme", "team aurora") is None
    assert graph.documents_about("acme", ["osprey"], limit=10) == []
    assert graph.counts("acme") == {"documents": 2, "chunks": 2, "entities": 2, "mentions": 2, "relations": 0}
    # No edge anywhere still carries a form from the old text.
    assert edge_evidence(graph, "acme") == [
        ["ABOUT", "wayfinder", ["Wayfinder"], ["exact"]],
        ["MENTIONS", "kestrel", ["The Kestrel"], ["exact"]],
        ["MENTIONS", "wayfinder", ["the Wayfinder"], ["normalized: article"]],
    ]

    # A kept chunk that reads a kept entity in a new form gets that form's reason, not the old one's.
    graph.upsert_document("acme", "b", "B", "v2", [GraphChunk("b#0000", 0, [("kestrel", "KESTREL")])], [])
    assert graph.entity("acme", "kestrel") == GraphEntity(
        "kestrel", "KESTREL", ["KESTREL"], [EntityContribution("b", {"KESTREL": "exact"}, 1, False)]
    )


def test_deleting_a_document_resettles_the_entities_it_shared(graph: GraphStore) -> None:
    kestrel_corpus(graph)
    graph.delete_document("acme", "k")
    graph.delete_document("acme", "a")
    assert graph.entity("acme", "kestrel") == GraphEntity(
        "kestrel", "kestrel", ["kestrel"], [EntityContribution("b", {"kestrel": "exact"}, 1, False)]
    )
    graph.delete_document("acme", "b")
    assert graph.entity("acme", "kestrel") is None


def test_edges_written_before_evidence_was_recorded_still_link(graph: GraphStore) -> None:
    kestrel_corpus(graph)
    graph._run("acme", "forget evidence", "MATCH ()-[r:MENTIONS|ABOUT]->() REMOVE r.names, r.matches")
    legacy = graph.entity("acme", "kestrel")
    assert legacy is not None
    assert [(c.document_id, c.forms, c.mentions, c.about) for c in legacy.documents] == [
        ("a", {}, 1, False),
        ("b", {}, 1, False),
        ("k", {}, 1, True),
    ]
    # Re-ingesting a document records its evidence again.
    kestrel_corpus(graph, order=("b",))
    settled = graph.entity("acme", "kestrel")
    assert settled is not None
    assert settled.documents[1] == EntityContribution("b", {"kestrel": "exact"}, 1, False)


def test_drop_removes_the_tenants_graph(graph: GraphStore) -> None:
    bridge_corpus(graph)
    graph.upsert_document("globex", "g", "G", "v1", [GraphChunk("g#0000", 0, [("x", "X")])], [])
    graph.drop("acme")
    assert not graph._db.connection.exists(graph.graph_name("acme"))
    assert graph.counts("acme")["documents"] == 0
    assert graph.documents_about("acme", ["boston"], limit=10) == []
    assert graph.counts("globex")["documents"] == 1
    graph.drop("acme")  # dropping a missing graph is a no-op
    # The tenant can be written again, indexes and all.
    bridge_corpus(graph)
    assert graph.documents_about("acme", ["lincoln"], limit=10) == [
        GraphLink("lincoln", seed="", via="lincoln")
    ]
    rows = graph._run("acme", "list indexes", "CALL db.indexes() YIELD label RETURN label")
    assert {"Document", "Chunk", "Entity"} <= {row[0] for row in rows}


def test_provenance_is_stored_and_documents_are_listed_by_source(graph: GraphStore) -> None:
    for doc_id, path in (("a", "a.md"), ("b", "sub/b.md")):
        origin = Provenance(source="handbook", path=path, file_hash=f"hash-{doc_id}", modified_ns=7)
        graph.upsert_document(
            "acme", doc_id, "T", "v1", [GraphChunk(f"{doc_id}#0000", 0, [])], [], provenance=origin
        )
    graph.upsert_document("acme", "c", "T", "v1", [GraphChunk("c#0000", 0, [])], [])
    stored = graph.document("acme", "b")
    assert stored is not None
    assert (stored["source"], stored["path"], stored["file_hash"], stored["modified_ns"]) == (
        "handbook", "sub/b.md", "hash-b", 7,
    )  # fmt: skip
    assert graph.source_documents("acme", "handbook") == [
        ("a", "a.md", "hash-a"),
        ("b", "sub/b.md", "hash-b"),
    ]
    assert graph.source_documents("acme", "upload") == [("c", "", "")]
    assert graph.source_documents("globex", "handbook") == []


def test_documents_reads_many_in_one_call_and_leaves_out_missing_ids(graph: GraphStore) -> None:
    assert graph.documents("acme", ["a"]) == {}  # no graph yet: the read must not create one
    assert not graph._db.connection.exists(graph.graph_name("acme"))
    origin = Provenance(source="handbook", path="a.md", file_hash="hash-a", modified_ns=7)
    graph.upsert_document("acme", "a", "A", "v1", [GraphChunk("a#0000", 0, [])], [], provenance=origin)
    graph.upsert_document("acme", "b", "B", "v2", [GraphChunk("b#0000", 0, [])], [])
    found = graph.documents("acme", ["b", "a", "gone", "a"])
    assert found == {"a": graph.document("acme", "a"), "b": graph.document("acme", "b")}
    assert (found["a"]["version"], found["a"]["file_hash"], found["a"]["modified_ns"]) == ("v1", "hash-a", 7)
    assert graph.documents("acme", []) == {}


def mixed_group() -> list[GraphDocument]:
    """Documents sharing entities in several forms, with relations, ABOUT edges and provenance."""
    hb_chunks, hb_relations = handbook()
    origin = Provenance(source="handbook", path="ops.md", file_hash="hash-ops", modified_ns=9)
    return [
        GraphDocument("hb", "Handbook", "v1", hb_chunks, hb_relations),
        GraphDocument(
            "ops",
            "Ledger",
            "v1",
            [GraphChunk("ops#0000", 0, [("ledger", "the Ledger"), ("bob", "BOB")])],
            [GraphRelation("bob", "ledger", "OWNS", "ops")],
            about=[("ledger", "Ledger")],
            provenance=origin,
        ),
        GraphDocument("empty", "Nothing", "v1", [GraphChunk("empty#0000", 0, [])], []),
    ]


def graph_state(graph: GraphStore, tenant: str) -> tuple[object, ...]:
    keys = ("alice", "payments", "billing", "bob", "ledger")
    return (
        graph.counts(tenant),
        edge_evidence(graph, tenant),
        [graph.entity(tenant, key) for key in keys],
        graph.documents(tenant, ["hb", "ops", "empty"]),
        graph.documents_about(tenant, ["ledger"], limit=10),
    )


def test_a_group_written_at_once_equals_its_documents_written_one_by_one(graph: GraphStore) -> None:
    group = mixed_group()
    graph.upsert_documents("acme", group)
    for document in group:
        graph.upsert_documents("globex", [document])
    assert graph_state(graph, "acme") == graph_state(graph, "globex")
    assert graph.counts("acme") == {"documents": 3, "chunks": 5, "entities": 5, "mentions": 8, "relations": 2}

    # An update of two documents at once replaces both contributions, as one by one would.
    updates = [
        GraphDocument("hb", "Handbook", "v2", [GraphChunk("hb#0000", 0, [("alice", "Alice")])], []),
        GraphDocument("ops", "Ledger", "v2", [GraphChunk("ops#0000", 0, [("ledger", "Ledger")])], []),
    ]
    graph.upsert_documents("acme", updates)
    for document in updates:
        graph.upsert_documents("globex", [document])
    assert graph_state(graph, "acme") == graph_state(graph, "globex")
    assert graph.counts("acme") == {"documents": 3, "chunks": 3, "entities": 2, "mentions": 2, "relations": 0}


def test_a_document_twice_in_one_group_is_refused(graph: GraphStore) -> None:
    one = GraphDocument("a", "A", "v1", [GraphChunk("a#0000", 0, [])], [])
    with pytest.raises(InvalidRequestError, match="written twice"):
        graph.upsert_documents("acme", [one, one])
    assert graph.documents("acme", ["a"]) == {}


def test_a_write_cut_short_leaves_the_old_version_for_the_retry_to_see(
    graph: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The FalkorDB server is real; only the last statement is made to fail, as a crash would.
    first = [GraphDocument("a", "A", "v1", [GraphChunk("a#0000", 0, [("x", "X")])], [])]
    graph.upsert_documents("acme", first)
    real_run = graph._run

    def fail_at_the_end(tenant: str, what: str, cypher: str, params: object = None) -> object:
        if cypher == SET_DOCUMENTS:
            raise StoreUnavailableError("connection lost")
        return real_run(tenant, what, cypher, params)

    monkeypatch.setattr(graph, "_run", fail_at_the_end)
    second = [
        GraphDocument("a", "A", "v2", [GraphChunk("a#0000", 0, [("y", "Y")])], []),
        GraphDocument("b", "B", "v1", [GraphChunk("b#0000", 0, [("y", "Y")])], []),
    ]
    with pytest.raises(StoreUnavailableError):
        graph.upsert_documents("acme", second)
    cut_short = graph.documents("acme", ["a", "b"])
    # What a sync compares says "changed": the old version for a, none at all for b.
    assert (cut_short["a"]["version"], cut_short["b"]["version"], cut_short["b"]["file_hash"]) == (
        "v1", None, None,
    )  # fmt: skip

    monkeypatch.setattr(graph, "_run", real_run)
    graph.upsert_documents("acme", second)
    graph.upsert_documents("globex", second)
    assert graph_state(graph, "acme") == graph_state(graph, "globex")
    assert {doc: props["version"] for doc, props in graph.documents("acme", ["a", "b"]).items()} == {
        "a": "v2",
        "b": "v1",
    }


def test_no_statement_but_the_counts_scans_a_whole_label(graph: GraphStore) -> None:
    # A label scan in a per-write statement makes ingestion quadratic: every write walks every
    # node of the label (DELETE_RELATIONS once scanned all entities, 4 s of graph time per 1,000
    # documents). Lookups must go through the indexes.
    graph.upsert_document("acme", "a", "A", "v1", [GraphChunk("a#0000", 0, [("x", "X")])], [])
    statements = {
        name: value
        for name, value in vars(graph_store).items()
        if name.isupper() and isinstance(value, str) and ("MATCH" in value or "MERGE" in value)
    }
    assert len(statements) > 20
    params: dict[str, object] = {"limit": 3, "max_mentions": 3, "n": 1, "modified_ns": 0}
    params |= dict.fromkeys(("doc", "key", "source", "title", "version", "path", "file_hash"), "a")
    params |= {name: ["a"] for name in ("docs", "keys", "seeds", "ids", "keep")}
    params |= {name: [] for name in ("chunks", "mentions", "about", "rels", "entities")}
    planned = graph._db.select_graph(graph.graph_name("acme"))
    plans = {name: planned.explain(cypher, params).plan for name, cypher in statements.items()}
    scans = {
        name: [step for step in plan if "Label Scan" in step or "All Node" in step]
        for name, plan in plans.items()
    }
    assert {name: found for name, found in scans.items() if found and name != "COUNTS"} == {}
    assert scans["COUNTS"]  # the check sees scans where there are some


@pytest.mark.parametrize("bad", ["nul \x00 byte", "lone \ud800 surrogate", "bell \x07"])
def test_a_parameter_falkordb_cannot_take_is_refused_before_any_write(graph: GraphStore, bad: str) -> None:
    chunks, relations = handbook()
    graph.upsert_document("acme", "hb", "Handbook", "v1", chunks, relations)
    before = graph.counts("acme")
    dirty_entity = [GraphChunk("hb#0000", 0, [("alice", bad)])]
    for title, chunk_rows in ((bad, chunks), ("Handbook", dirty_entity)):
        with pytest.raises(InvalidRequestError, match=r"holds U\+"):
            graph.upsert_document("acme", "hb", title, "v2", chunk_rows, [])
    # Refused whole: the old version, with all its chunks and entities, is what is stored.
    assert graph.counts("acme") == before
    assert (graph.document("acme", "hb") or {}).get("version") == "v1"


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_lookups_with_unsafe_text_fail_as_bad_input_not_as_an_outage(graph: GraphStore, bad: str) -> None:
    graph.upsert_document("acme", "hb", "Handbook", "v1", *handbook())
    with pytest.raises(InvalidRequestError):
        graph.documents_about("acme", [f"alice{bad}"], limit=5)
    with pytest.raises(InvalidRequestError):
        graph.entity("acme", bad)

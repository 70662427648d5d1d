"""Turning documents into store rows: title aliases, entity linking, prepare and write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ingestion.indexer import (
    NameFinder,
    PreparedDocument,
    about_entities,
    content_version,
    prepare_documents,
    title_aliases,
    write_document,
)
from keel.core.pipelines import pipeline_named
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import EntityContribution, GraphDocument, GraphEntity, GraphStore
from retrieval.pipeline import Retriever
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.types import InvalidRequestError, SourceDocument

# --- title aliases and name finding (no models, no servers) -----------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("title", "aliases"),
    [
        ("Boston, Lincolnshire (UK)", ["Boston, Lincolnshire", "Boston"]),
        ("Boston, Lincolnshire", ["Boston, Lincolnshire", "Boston"]),
        ("Tom &amp; Jerry (franchise)", ["Tom & Jerry"]),
        ("Caf&eacute; Society", ["Café Society"]),
        # Only the trailing qualifier goes: the song's own parentheses are part of its name.
        ("Lady (Hear Me Tonight) (song)", ["Lady (Hear Me Tonight)"]),
        ("Microglia drive the loss of synapses in the ageing mouse brain", []),
        ("Li, Wei", ["Li, Wei"]),  # "Li" alone is too short to look for
        ("Why Is There Air?", ["Why Is There Air?", "Why Is There Air"]),
        ("Oklahoma! (musical)", ["Oklahoma!", "Oklahoma"]),
        # The name a designated title is referred to by: "last played for Salford City".
        ("Salford City F.C.", ["Salford City F.C.", "Salford City"]),
        ("A41 road", ["A41 road", "A41"]),
        (
            "1984 Tennessee Volunteers football team",
            ["1984 Tennessee Volunteers football team", "1984 Tennessee Volunteers"],
        ),
        # Not a facet of a plain name, a one-word name before an abbreviation, a bare number,
        # nor a tail that joins rather than designates.
        ("Tara Strong filmography", ["Tara Strong filmography"]),
        ("Dutch language", ["Dutch language"]),
        ("Washington D.C.", ["Washington D.C."]),
        ("1984 football season", ["1984 football season"]),
        ("History of art", ["History of art"]),
        ("A41 road to Chester", ["A41 road to Chester"]),
        ("Ludwig van Beethoven", ["Ludwig van Beethoven"]),
        ("AB (band)", []),
        ("(film)", []),
        ("", []),
    ],
)
def test_title_aliases(title: str, aliases: list[str]) -> None:
    assert title_aliases(title) == aliases


@pytest.mark.unit
def test_about_entities_are_keyed_like_mentions() -> None:
    assert about_entities("The Beatles (band)") == [("beatles", "The Beatles")]
    assert about_entities("Boston, Lincolnshire") == [
        ("boston, lincolnshire", "Boston, Lincolnshire"),
        ("boston", "Boston"),
    ]


@pytest.mark.unit
def test_name_finder_prefers_the_longest_name() -> None:
    finder = NameFinder(["Boston", "Boston, Lincolnshire"])
    assert finder.find("She moved to Boston, Lincolnshire in 1900.") == ["Boston, Lincolnshire"]
    assert finder.find("Boston, Lincolnshire is not Boston, Massachusetts.") == [
        "Boston, Lincolnshire",
        "Boston",
    ]


@pytest.mark.unit
def test_name_finder_matches_whole_words_only() -> None:
    finder = NameFinder(["Art", "C++", "Node.js"])
    assert finder.find("Artists and a Bostonian smart cart.") == []
    assert finder.find("Art is written in C++ and Node.js; art is not.") == ["Art", "C++", "Node.js"]
    assert finder.find("NodeXjs") == []  # the dot is literal, not a wildcard


@pytest.mark.unit
def test_name_finder_unescapes_html_and_dedupes() -> None:
    finder = NameFinder(["Tom & Jerry", "AT&T"])
    assert finder.find("Tom &amp; Jerry, then AT&amp;T, then Tom & Jerry again.") == ["Tom & Jerry", "AT&T"]


@pytest.mark.unit
def test_name_finder_without_names() -> None:
    assert NameFinder([]).find("Boston") == []
    assert NameFinder(["", "  "]).find("Boston") == []


# --- prepare_documents and write_document (MiniLM, BM25; FalkorDB and Qdrant Edge) --------

DOCUMENTS = [
    SourceDocument("boston", "Boston, Lincolnshire", "Boston is a market town. It has a port on the Witham."),
    SourceDocument(
        "anne",
        "Anne Smith",
        "Anne Smith grew up near Boston, Lincolnshire. She studied at Lincoln later on in life. "
        "The town has a port.",
    ),
    SourceDocument("blank", "Blank", ""),
]


@pytest.fixture(scope="module")
def encoders() -> tuple[DenseEncoder, SparseEncoder]:
    return DenseEncoder(Settings().embedding_model_path()), SparseEncoder()


def prepare(
    encoders: tuple[DenseEncoder, SparseEncoder], finder: NameFinder | None
) -> dict[str, PreparedDocument]:
    dense, sparse = encoders
    prepared = prepare_documents(
        "acme", DOCUMENTS, dense, sparse, chunk_chars=60, overlap_chars=0, name_finder=finder
    )
    return {doc.document_id: doc for doc in prepared}


def corpus_finder() -> NameFinder:
    return NameFinder(alias for doc in DOCUMENTS for alias in title_aliases(doc.title))


@pytest.mark.integration
def test_prepare_documents(encoders: tuple[DenseEncoder, SparseEncoder]) -> None:
    prepared = prepare(encoders, corpus_finder())
    assert list(prepared) == ["boston", "anne"]  # a document without text is skipped
    anne = prepared["anne"]
    assert [r.chunk_id for r in anne.records] == ["anne#0000", "anne#0001", "anne#0002"]
    assert [r.text for r in anne.records] == [
        "Anne Smith grew up near Boston, Lincolnshire.",
        "She studied at Lincoln later on in life.",
        "The town has a port.",
    ]
    assert {r.version for r in anne.records} == {content_version(DOCUMENTS[1].title, DOCUMENTS[1].text)}
    assert all(len(r.dense) == 384 and r.sparse.indices and r.tenant == "acme" for r in anne.records)
    assert prepared["boston"].about == about_entities("Boston, Lincolnshire")
    assert anne.about == [("anne smith", "Anne Smith")]
    # Records and graph chunks name the same entities.
    for record, chunk in zip(anne.records, anne.graph_chunks, strict=True):
        assert [name for _, name in chunk.entities] == record.entities


@pytest.mark.integration
def test_name_finder_links_chunks_to_other_documents_subjects(
    encoders: tuple[DenseEncoder, SparseEncoder],
) -> None:
    linked = prepare(encoders, corpus_finder())["anne"]
    plain = prepare(encoders, None)["anne"]
    # The capitalisation rules alone cut "Boston, Lincolnshire" into pieces; the finder keeps it whole.
    assert "Boston, Lincolnshire" not in plain.records[0].entities
    assert "Boston, Lincolnshire" in linked.records[0].entities
    assert ("boston, lincolnshire", "Boston, Lincolnshire") in linked.graph_chunks[0].entities
    # Linking is per chunk: only the chunk that names the subject gets the edge.
    assert all("Boston, Lincolnshire" not in r.entities for r in linked.records[1:])
    assert linked.entity_count > plain.entity_count


@pytest.fixture
def stores(tmp_path: Path, falkordb_url: str) -> Iterator[tuple[QdrantEdgeStore, GraphStore]]:
    vectors = QdrantEdgeStore(tmp_path / "qdrant")
    graph = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:12]}")
    try:
        yield vectors, graph
    finally:
        graph.close()
        vectors.close()


def write_all(
    encoders: tuple[DenseEncoder, SparseEncoder],
    stores: tuple[QdrantEdgeStore, GraphStore],
    documents: list[SourceDocument],
    chunk_chars: int,
    finder: NameFinder | None = None,
) -> None:
    """Prepare and write `documents` as new, one at a time, as the ingestion activity does."""
    (dense, sparse), (vectors, graph) = encoders, stores
    for doc in prepare_documents("acme", documents, dense, sparse, chunk_chars, 0, name_finder=finder):
        write_document("acme", doc, vectors, graph, replacing=False)


@pytest.mark.integration
def test_written_documents_are_linked_through_the_graph(
    encoders: tuple[DenseEncoder, SparseEncoder], stores: tuple[QdrantEdgeStore, GraphStore]
) -> None:
    vectors, graph = stores
    prepared = prepare(encoders, corpus_finder())
    for doc in prepared.values():
        assert write_document("acme", doc, vectors, graph, replacing=False) == 0
    assert vectors.count("acme", "anne") == 3
    # The bridge hop: Anne's first chunk names the subject of the Boston article.
    links = graph.linked_documents("acme", ["anne#0000"], limit=10)
    assert [(link.document_id, link.seed) for link in links] == [("boston", "anne#0000")]

    dense, sparse = encoders
    shorter = SourceDocument("anne", "Anne Smith", "Anne Smith grew up near Boston, Lincolnshire.")
    (rewritten,) = prepare_documents("acme", [shorter], dense, sparse, 60, 0, name_finder=corpus_finder())
    assert write_document("acme", rewritten, vectors, graph, replacing=True) == 2
    assert vectors.count("acme", "anne") == 1
    stored = graph.document("acme", "anne")
    assert stored is not None and stored["chunks"] == 1


@pytest.mark.integration
def test_a_passage_naming_a_designated_title_links_to_it_without_a_name_finder(
    encoders: tuple[DenseEncoder, SparseEncoder], stores: tuple[QdrantEdgeStore, GraphStore]
) -> None:
    # As the agent's ingestion writes them (no corpus-wide name finder): the passage says
    # "Salford City", the article is "Salford City F.C.".
    _, graph = stores
    documents = [
        SourceDocument("williams", "Chris Williams", "Chris Williams last played for Salford City."),
        SourceDocument("salford", "Salford City F.C.", "Salford City Football Club plays in Salford."),
    ]
    write_all(encoders, stores, documents, chunk_chars=400)
    links = graph.linked_documents("acme", ["williams#0000"], limit=10)
    assert [(link.document_id, link.seed) for link in links] == [("salford", "williams#0000")]


@pytest.mark.integration
def test_the_graph_says_why_two_documents_are_linked(
    encoders: tuple[DenseEncoder, SparseEncoder], stores: tuple[QdrantEdgeStore, GraphStore]
) -> None:
    _, graph = stores
    documents = [
        SourceDocument("witham", "The Witham (river)", "The Witham flows past Lincoln to Boston."),
        SourceDocument("port", "Port of Boston", "Ships reach the port along the Witham."),
    ]
    finder = NameFinder(alias for doc in documents for alias in title_aliases(doc.title))
    write_all(encoders, stores, documents, chunk_chars=200, finder=finder)
    # The port's passage names the Witham; the article about "The Witham" is the next hop...
    links = graph.linked_documents("acme", ["port#0000"], limit=10)
    assert [link.document_id for link in links] == ["witham"]
    # ...because both normalise to one key: the article's title differs only by its article.
    assert graph.entity("acme", "witham") == GraphEntity(
        "witham",
        "Witham",
        ["The Witham", "Witham"],
        [
            EntityContribution("port", {"Witham": "exact"}, 1, False),
            EntityContribution("witham", {"The Witham": "normalized: article", "Witham": "exact"}, 1, True),
        ],
    )


# --- all or nothing, and questions with bad bytes (FalkorDB and Qdrant Edge) --------------


class RefusingGraph(GraphStore):
    """The real store, refusing every document write as FalkorDB would refuse a bad parameter
    (the failure is injected by subclassing; the vector store and the server are real)."""

    def upsert_documents(self, tenant: str, documents: Sequence[GraphDocument]) -> None:
        raise InvalidRequestError("falkordb: injected refusal")


@pytest.mark.integration
def test_a_refused_graph_write_leaves_no_vector_of_the_new_version(
    encoders: tuple[DenseEncoder, SparseEncoder],
    stores: tuple[QdrantEdgeStore, GraphStore],
    falkordb_url: str,
) -> None:
    vectors, graph = stores
    anne = prepare(encoders, None)["anne"]
    write_document("acme", anne, vectors, graph, replacing=False)
    dense, sparse = encoders
    edited = SourceDocument("anne", "Anne Smith", "Anne Smith moved to Lincoln and opened a bakery there.")
    (rewritten,) = prepare_documents("acme", [edited], dense, sparse, 60, 0)
    refusing = RefusingGraph(falkordb_url, prefix=graph.graph_name("acme").rsplit("_", 1)[0])
    try:
        with pytest.raises(InvalidRequestError, match="injected"):
            write_document("acme", rewritten, vectors, refusing, replacing=True)
    finally:
        refusing.close()
    query = "bakery in Lincoln"
    hits = vectors.search_hybrid("acme", dense.encode_query(query), sparse.encode_query(query), 10, 50)
    assert {c.version for c in hits} == {anne.version}
    assert (vectors.count("acme", "anne"), vectors.count("acme", "anne", staged=True)) == (3, 0)
    assert (graph.document("acme", "anne") or {})["version"] == anne.version


@pytest.mark.integration
@pytest.mark.parametrize(
    "question",
    [
        "Where did Anne\x00 Smith grow up?",
        "Where did \ud800Anne Smith grow up?",
        "Where\x1b[0m did Anne Smith\x07 grow up?\x7f",
    ],
)
def test_a_question_with_bad_bytes_is_searched_clean(
    encoders: tuple[DenseEncoder, SparseEncoder], stores: tuple[QdrantEdgeStore, GraphStore], question: str
) -> None:
    vectors, graph = stores
    for doc in prepare(encoders, corpus_finder()).values():
        write_document("acme", doc, vectors, graph, replacing=False)
    retriever = Retriever(vectors, *encoders, graph=graph)
    # The graph pipeline looks the question's names up in FalkorDB: the path a NUL used to break.
    found = retriever.candidates("acme", question, pipeline_named("hybrid-graph"))
    assert found.chunks[0].document_id == "anne"
    # Nothing but bad bytes is an empty question: bad input (permanent), not a store failure.
    with pytest.raises(InvalidRequestError, match="empty"):
        retriever.candidates("acme", "\x00 \x07\x1b", pipeline_named("hybrid-graph"))

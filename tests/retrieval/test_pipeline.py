"""The retrieval pipeline over a tiny real index: Qdrant Edge, FalkorDB, MiniLM, BM25."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from ingestion.indexer import NameFinder, prepare_documents, title_aliases, write_document
from keel.core.chunks import ScoredChunk
from keel.core.pipelines import GATE_ALWAYS, PIPELINES, Pipeline, RetrievalParams, pipeline_named
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.feedback import QueryAdapter
from retrieval.graph_store import GraphStore
from retrieval.pipeline import (
    QuerySignals,
    Retriever,
    agreement,
    graph_gate,
    outermost_names,
    query_name_keys,
    query_name_spans,
    rerank_gate,
)
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.types import InvalidRequestError, SourceDocument

# --- query_name_keys, Pipeline, RetrievalParams (no models, no servers) -------------------


@pytest.mark.unit
def test_query_name_keys_finds_capitalised_spans_of_the_question() -> None:
    # Quotes and the question mark are stripped from a span's edges only; keys are casefolded.
    assert query_name_keys("Who directed Big Stone Gap?") == [
        "big",
        "big stone",
        "big stone gap",
        "gap",
        "stone",
        "stone gap",
        "who",
        "who directed",
        "who directed big",
        "who directed big stone",
        "who directed big stone gap",
    ]


@pytest.mark.unit
def test_query_name_keys_skips_lower_case_and_short_spans() -> None:
    keys = query_name_keys("which city hosts the 2012 Summer Olympics?")
    assert "city" not in keys  # "city" must not find the article "City"
    assert "2012 summer olympics" in keys  # a span may start with a digit
    assert "summer olympics" in keys
    assert all(not k.startswith(("which", "the ")) for k in keys)
    assert query_name_keys("Is it UK?") == ["is it", "is it uk"]  # "Is" and "UK" are too short


@pytest.mark.unit
def test_query_name_keys_spans_at_most_eight_tokens() -> None:
    words = [f"W{i}x" for i in range(10)]
    keys = query_name_keys(" ".join(words))
    assert "w0x w1x w2x w3x w4x w5x w6x w7x" in keys
    assert "w0x w1x w2x w3x w4x w5x w6x w7x w8x" not in keys
    assert max(len(k.split()) for k in keys) == 8


@pytest.mark.unit
def test_a_quoted_title_is_one_name() -> None:
    keys = query_name_keys('Who starred in "Rebel Without a Cause" with James Dean?')
    assert "rebel without a cause" in keys
    # Its parts are not names the question uses: no article called "Rebel" is looked up.
    assert not {"rebel", "cause", "rebel without", "without a cause", 'in "rebel'} & set(keys)
    assert 'who starred in "rebel without a cause' in keys  # a span may hold all of it
    assert {"james dean", "james", "dean"} <= set(keys)  # outside the quotes, as before
    assert "big stone gap" in query_name_keys("Who directed “Big Stone Gap”?")  # curly quotes too
    # Punctuation inside the quotes is not part of the title.
    assert "rebel without a cause" in query_name_keys('known for "Rebel Without a Cause," in 1955')
    # A stray quote mark pairs with the next: that is no title, and every name in it still counts.
    stray = query_name_keys('Is the 12" single of Stay by Shakespears Sister longer than "Hello"?')
    assert {"stay", "shakespears sister", "hello"} <= set(stray)


@pytest.mark.unit
def test_the_outermost_known_name_wins() -> None:
    spans = query_name_spans("Which city is Kirton End near, and is it in the National League North?")
    known = {"kirton", "kirton end", "national league", "national league north"}
    assert outermost_names(spans, known) == {"kirton end", "national league north"}
    # A shorter name counts where no longer one around it is known.
    assert outermost_names(spans, {"kirton", "national league"}) == {"kirton", "national league"}
    assert outermost_names(spans, set()) == set()


@pytest.mark.unit
def test_query_name_keys_normalises_like_entity_keys() -> None:
    assert "beatles" in query_name_keys("When did The  Beatles split?")
    assert query_name_keys("") == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dense": False, "bm25": False}, "no retriever"),
        ({"fusion": "max"}, "unknown fusion"),
        ({"dense": False, "feedback": True}, "needs dense"),
        ({"bm25": False, "graph": True, "adaptive": True}, "need both dense and bm25"),
    ],
)
def test_invalid_pipelines_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pipeline("p", **kwargs)  # type: ignore[arg-type]


@pytest.mark.unit
def test_pipeline_named() -> None:
    assert pipeline_named("hybrid-graph+feedback+rerank") == Pipeline(
        "hybrid-graph+feedback+rerank", feedback=True, graph=True, rerank=True
    )
    assert pipeline_named("bm25").dense is False
    with pytest.raises(ValueError, match="unknown pipeline 'nope'") as err:
        pipeline_named("nope")
    assert all(name in str(err.value) for name in PIPELINES)


@pytest.mark.unit
@pytest.mark.parametrize(
    "kwargs",
    [
        {"dense_k": 0},
        {"bm25_k": 0},
        {"graph_seeds": 0},
        {"graph_max_mentions": 0},
        {"rerank_depth": 0},
        {"limit": 0},
        {"rrf_k": -1},
        {"graph_k": -1},
        {"graph_weight": -0.1},
        {"dense_weight": 1.5},
        {"dense_weight": -0.1},
        {"graph_gate": -0.1},
        {"rerank_gate": 1.5},
    ],
)
def test_invalid_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrievalParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.unit
def test_edge_params_are_accepted() -> None:
    RetrievalParams(rrf_k=0, graph_k=0, graph_weight=0, dense_weight=0.0)
    RetrievalParams(dense_weight=1.0)
    RetrievalParams(graph_gate=GATE_ALWAYS, rerank_gate=0.0)


def _found(retriever: str, *document_ids: str) -> list[ScoredChunk]:
    return [
        ScoredChunk(f"{d}#0000", d, signals={retriever: 1.0 / (i + 1)}) for i, d in enumerate(document_ids)
    ]


@pytest.mark.unit
def test_agreement_is_the_share_of_dense_top_documents_bm25_tops_too() -> None:
    dense = _found("dense", "a", "b", "c", "d")
    assert agreement(dense + _found("bm25", "d", "x", "a"), depth=4) == 0.5
    assert agreement(dense + _found("bm25", "c", "a"), depth=2) == 0.5  # dense's top 2: a, b
    # Read from the signals: a chunk both found, and the order of the list, change nothing.
    both = [ScoredChunk(f"{d}#0000", d, signals={"dense": 1.0, "bm25": 1.0}) for d in "abcd"]
    assert agreement(both, depth=4) == 1.0
    assert agreement(list(reversed(dense + _found("bm25", "d", "x", "a"))), depth=4) == 0.5
    # Two chunks of one document count once; a retriever that found nothing agrees with nothing.
    two = [*_found("dense", "a"), ScoredChunk("a#0001", "a", signals={"dense": 0.5}), *_found("dense", "b")]
    assert agreement(two + _found("bm25", "b"), depth=2) == 0.5
    assert agreement(dense, depth=4) == agreement([], depth=4) == 0.0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("signals", "threshold", "ran"),
    [
        (QuerySignals(named=2, agreement=1.0), 0.0, True),  # a named document: always expanded
        (QuerySignals(named=0, agreement=0.2), 0.3, True),  # the retrievers disagree
        (QuerySignals(named=0, agreement=0.3), 0.3, False),
        (QuerySignals(named=0, agreement=0.0), 0.0, False),  # 0: only named documents open it
        (QuerySignals(named=0, agreement=1.0), GATE_ALWAYS, True),
    ],
)
def test_graph_gate(signals: QuerySignals, threshold: float, ran: bool) -> None:
    gate = graph_gate(signals, threshold)
    assert gate.ran is ran
    assert gate.why  # every decision says why, for the trace


@pytest.mark.unit
@pytest.mark.parametrize(
    ("share", "threshold", "ran"),
    [(0.2, 0.3, True), (0.3, 0.3, False), (0.0, 0.0, False), (1.0, GATE_ALWAYS, True)],
)
def test_rerank_gate(share: float, threshold: float, ran: bool) -> None:
    gate = rerank_gate(share, threshold)
    assert gate.ran is ran and gate.why


# --- the pipeline over a real index -------------------------------------------------------

TENANT = "t"
QUERY = "Who directed the film Big Stone Gap?"
BRIDGE = "trigiani"  # the director's article: shares no word with QUERY

DOCUMENTS = [
    SourceDocument(
        "bsg",
        "Big Stone Gap (film)",
        "Big Stone Gap is a 2014 American drama film. It was directed by Adriana Trigiani "
        "and shot in Virginia.",
    ),
    SourceDocument(
        BRIDGE,
        "Adriana Trigiani",
        "Adriana Trigiani grew up in Appalachia. She became a bestselling novelist and a "
        "television writer in New York.",
    ),
    SourceDocument(
        "stone-age",
        "Stone Age",
        "The Stone Age was a big prehistoric period in which stone was widely used to make tools. "
        "A gap in the record hides much of it.",
    ),
    SourceDocument(
        "gap-inc",
        "Gap Inc.",
        "Gap Inc. is an American clothing retailer. The first Gap store opened in San Francisco.",
    ),
    SourceDocument(
        "director",
        "Film director",
        "A film director directed the artistic side of a film. Big films have big crews.",
    ),
    SourceDocument(
        "virginia",
        "Virginia",
        "Virginia is a state in the Southeastern United States. Its capital is Richmond.",
    ),
]


@dataclass
class Index:
    vectors: QdrantEdgeStore
    graph: GraphStore
    dense: DenseEncoder
    sparse: SparseEncoder

    def retriever(self, **kwargs: object) -> Retriever:
        return Retriever(self.vectors, self.dense, self.sparse, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, falkordb_url: str) -> Iterator[Index]:
    dense, sparse = DenseEncoder(Settings().embedding_model_path()), SparseEncoder()
    vectors = QdrantEdgeStore(tmp_path_factory.mktemp("pipeline") / "qdrant")
    graph = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:12]}")
    try:
        # Entity linking over the corpus's own subjects, as keel/app/eval_index.py does.
        finder = NameFinder(alias for d in DOCUMENTS for alias in title_aliases(d.title))
        for doc in prepare_documents(TENANT, DOCUMENTS, dense, sparse, 400, 0, name_finder=finder):
            write_document(TENANT, doc, vectors, graph, replacing=False)
        yield Index(vectors, graph, dense, sparse)
    finally:
        graph.close()
        vectors.close()


def rank_of(document_id: str, chunks: Sequence[ScoredChunk]) -> int:
    return next(i for i, c in enumerate(chunks) if c.document_id == document_id)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "signals", "stages"),
    [
        ("bm25", {"bm25", "fused"}, {"encode_bm25", "bm25", "fuse"}),
        ("dense", {"dense", "fused"}, {"encode_dense", "dense", "fuse"}),
        (
            "hybrid-convex",
            {"dense", "bm25", "fused"},
            {"encode_dense", "dense", "encode_bm25", "bm25", "fuse"},
        ),
        (
            "hybrid-graph",
            {"dense", "bm25", "fused"},
            {"encode_dense", "dense", "encode_bm25", "bm25", "fuse", "graph"},
        ),
    ],
)
def test_candidates_carry_signals_and_stage_timings(
    index: Index, name: str, signals: set[str], stages: set[str]
) -> None:
    found = index.retriever(graph=index.graph).candidates(TENANT, QUERY, pipeline_named(name))
    assert set(found.stages_ms) == stages
    assert all(ms >= 0 for ms in found.stages_ms.values())
    assert found.chunks[0].document_id == "bsg"
    scores = [c.score for c in found.chunks]
    assert scores == sorted(scores, reverse=True)
    for chunk in found.chunks:
        if chunk.source == "graph":  # entered through the graph alone: no retriever score
            continue
        # bm25 only scores chunks sharing a word with the query; dense scores every chunk.
        assert {"fused"} <= set(chunk.signals) <= signals | {"graph"}
    top = found.chunks[0].signals
    assert signals <= set(top)
    if "dense" in signals:
        by_id = {c.chunk_id: c.score for c in found.hits["dense"]}
        assert top["dense"] == pytest.approx(by_id[found.chunks[0].chunk_id])
        assert found.query_vector is not None and len(found.query_vector) == 384
    else:
        assert found.query_vector is None
    if name in ("bm25", "dense"):  # one list: the fused score is the retriever's own
        assert top["fused"] == pytest.approx(top[name])


@pytest.mark.integration
def test_graph_expansion_raises_the_bridge_document(index: Index) -> None:
    retriever = index.retriever(graph=index.graph)
    plain = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex")).chunks
    expanded = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-graph"))
    bridge = expanded.chunks[rank_of(BRIDGE, expanded.chunks)]
    assert bridge.signals["graph"] > 0
    assert BRIDGE in {c.document_id for c in expanded.hits["graph"]}
    # Dense search scores every chunk of so small a corpus: the bridge was there, far down.
    assert rank_of(BRIDGE, expanded.chunks) < rank_of(BRIDGE, plain)
    before = plain[rank_of(BRIDGE, plain)]
    assert bridge.score == pytest.approx(before.score + bridge.signals["graph"])
    # The document the question names is boosted as if the question were a seed of score 1.
    assert expanded.chunks[0].document_id == "bsg"
    assert expanded.chunks[0].signals["graph"] == pytest.approx(RetrievalParams().graph_weight)
    # No lexical retriever finds it: nothing in it matches the question's words.
    assert BRIDGE not in {c.document_id for c in expanded.hits["bm25"]}
    # Unlinked, unnamed documents get no boost.
    assert "gap-inc" not in {c.document_id for c in expanded.hits["graph"]}


@pytest.mark.integration
def test_graph_expansion_raises_the_longest_name_the_question_uses(
    index: Index, tmp_path: Path, falkordb_url: str
) -> None:
    documents = [
        SourceDocument("kirton-suffolk", "Kirton, Suffolk", "Kirton is a village in Suffolk."),
        SourceDocument("kirton-end", "Kirton End", "Kirton End is a hamlet near Boston."),
    ]
    vectors = QdrantEdgeStore(tmp_path / "qdrant")
    graph = GraphStore(falkordb_url, prefix=f"t{uuid.uuid4().hex[:12]}")
    try:
        for doc in prepare_documents(TENANT, documents, index.dense, index.sparse, 400, 0):
            write_document(TENANT, doc, vectors, graph, replacing=False)
        retriever = Retriever(vectors, index.dense, index.sparse, graph)
        found = retriever.candidates(
            TENANT, "How far is Kirton End from the sea?", pipeline_named("hybrid-graph")
        )
        # Both articles are about a name the question contains; it names only Kirton End.
        assert [c.document_id for c in found.hits["graph"]] == ["kirton-end"]
        found = retriever.candidates(
            TENANT, "How far is Kirton from the sea?", pipeline_named("hybrid-graph")
        )
        assert [c.document_id for c in found.hits["graph"]] == ["kirton-suffolk"]
    finally:
        graph.close()
        vectors.close()


@pytest.mark.integration
def test_graph_expansion_adds_a_linked_document_no_retriever_found(index: Index) -> None:
    # BM25 alone never finds the bridge; the graph brings it in with its first chunk.
    bm25_graph = Pipeline("bm25-graph", dense=False, graph=True)
    retriever = index.retriever(graph=index.graph)
    assert BRIDGE not in {
        c.document_id for c in retriever.candidates(TENANT, QUERY, pipeline_named("bm25")).chunks
    }
    found = retriever.candidates(TENANT, QUERY, bm25_graph).chunks
    bridge = found[rank_of(BRIDGE, found)]
    assert bridge.source == "graph" and bridge.chunk_id == f"{BRIDGE}#0000"
    assert bridge.score == pytest.approx(bridge.signals["graph"]) and bridge.score > 0
    assert "Appalachia" in bridge.text


@pytest.mark.integration
def test_invalid_requests(index: Index) -> None:
    retriever = index.retriever()
    with pytest.raises(InvalidRequestError, match="empty"):
        retriever.candidates(TENANT, "  ", pipeline_named("hybrid-convex"))
    with pytest.raises(InvalidRequestError, match="graph store"):
        retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-graph"))
    with pytest.raises(InvalidRequestError, match="reranker"):
        retriever.retrieve(TENANT, QUERY, pipeline_named("hybrid-convex+rerank"))


@pytest.mark.integration
def test_retrieve_cuts_to_the_limit(index: Index) -> None:
    retriever = index.retriever().tuned(RetrievalParams(limit=2), None)
    everything = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex")).chunks
    assert len(everything) == len(DOCUMENTS)
    found = retriever.retrieve(TENANT, QUERY, pipeline_named("hybrid-convex"))
    assert [c.chunk_id for c in found.chunks] == [c.chunk_id for c in everything[:2]]


class RecordingReranker:
    """Reverses what it is given, and keeps it: the test is about what the pipeline hands over."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[ScoredChunk] = []

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]:
        self.seen = list(chunks)
        return [replace(c, source="rerank") for c in reversed(chunks)][:limit]


@pytest.mark.integration
def test_retrieve_reranks_then_cuts(index: Index) -> None:
    reranker = RecordingReranker()
    retriever = index.retriever(reranker=reranker, params=RetrievalParams(rerank_depth=3, limit=4))
    first = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex")).chunks
    found = retriever.retrieve(TENANT, QUERY, pipeline_named("hybrid-convex+rerank"))
    ids = [c.chunk_id for c in first]
    assert [c.chunk_id for c in found.chunks] == [ids[2], ids[1], ids[0], ids[3]]
    assert "rerank" in found.stages_ms
    assert all(c.dense is None for c in found.chunks)


@pytest.mark.integration
def test_rerank_keeps_the_tail_skips_deleted_chunks_and_fills_dense(index: Index) -> None:
    # A document written, found, then deleted before the reranking activity runs.
    (gone,) = prepare_documents(
        TENANT,
        [SourceDocument("gone", "Gone", "A passage about Big Stone Gap.")],
        index.dense,
        index.sparse,
        400,
        0,
    )
    index.vectors.upsert(gone.records)
    index.vectors.delete_document(TENANT, "gone")

    reranker = RecordingReranker()
    retriever = index.retriever(reranker=reranker, params=RetrievalParams(rerank_depth=4))
    pipeline = pipeline_named("hybrid-convex+rerank")
    ids = ["bsg#0000", "gone#0000", "director#0000", "stone-age#0000", "virginia#0000", "gap-inc#0000"]
    # As after a Temporal payload: no text, no vectors; one already knows its dense score.
    candidates = [ScoredChunk(cid, cid.split("#")[0], 1.0 - i / 10) for i, cid in enumerate(ids)]
    candidates[2] = replace(candidates[2], signals={"dense": 0.123, "fused": 0.8})
    query_vector = retriever.query_vector(QUERY, pipeline)

    ranked = retriever.rerank(TENANT, QUERY, candidates, pipeline, query_vector)

    assert [c.chunk_id for c in ranked] == [
        "stone-age#0000",
        "director#0000",
        "bsg#0000",
        "virginia#0000",  # beyond rerank_depth: below the head, in their order, untouched
        "gap-inc#0000",
    ]
    assert ranked[3:] == candidates[4:]
    seen = {c.chunk_id: c for c in reranker.seen}
    assert "gone#0000" not in seen
    assert seen["director#0000"].signals == {"dense": 0.123, "fused": 0.8}  # kept, not recomputed
    bsg = seen["bsg#0000"]
    assert bsg.text and bsg.dense is not None and bsg.score == pytest.approx(1.0)
    assert bsg.signals["dense"] == pytest.approx(float(np.dot(query_vector, bsg.dense)), abs=1e-5)
    # Without a vector the retriever encodes the query itself, to the same figure.
    again = retriever.rerank(TENANT, QUERY, candidates, pipeline)
    assert [c.chunk_id for c in again] == [c.chunk_id for c in ranked]
    assert {c.chunk_id: c.signals["dense"] for c in reranker.seen}["bsg#0000"] == pytest.approx(
        bsg.signals["dense"], abs=1e-5
    )
    assert retriever.rerank(TENANT, QUERY, [], pipeline) == []


@pytest.mark.integration
def test_feedback_without_an_adapter_changes_nothing(index: Index) -> None:
    retriever = index.retriever(adapter=None)
    plain = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex"))
    fed = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex+feedback"))
    assert [(c.chunk_id, c.score) for c in fed.chunks] == [(c.chunk_id, c.score) for c in plain.chunks]
    assert fed.query_vector == plain.query_vector == pytest.approx(index.dense.encode_query(QUERY))


@pytest.mark.integration
def test_feedback_moves_the_dense_query(index: Index) -> None:
    rng = np.random.default_rng(0)
    up, down = (rng.normal(size=(384, 2)).astype(np.float32) for _ in range(2))
    adapter = QueryAdapter(up=up, down=down, trained_on="test")
    retriever = index.retriever(adapter=adapter)
    plain = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex"))
    fed = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-convex+feedback"))
    assert plain.query_vector is not None and fed.query_vector is not None
    assert plain.query_vector == pytest.approx(index.dense.encode_query(QUERY))
    assert fed.query_vector == pytest.approx(adapter.apply(plain.query_vector))
    assert not np.allclose(fed.query_vector, plain.query_vector, atol=1e-3)
    # The dense scores are cosines with the moved query.
    fed_dense = {c.chunk_id: c.score for c in fed.hits["dense"]}
    plain_dense = {c.chunk_id: c.score for c in plain.hits["dense"]}
    assert fed_dense.keys() == plain_dense.keys()
    assert fed_dense != pytest.approx(plain_dense)


# --- the adaptive pipeline: stages gated per query --------------------------------------------

UNNAMED = "which director shot a drama in the appalachian mountains?"  # lower case: names nothing


@pytest.mark.integration
def test_adaptive_expands_a_query_that_names_a_document(index: Index) -> None:
    retriever = index.retriever(graph=index.graph)  # graph_gate 0: named documents only
    found = retriever.candidates(TENANT, QUERY, pipeline_named("adaptive"))
    assert found.signals is not None and found.signals.named >= 1  # "Big Stone Gap"
    assert found.gates["graph"].ran and "names" in found.gates["graph"].why
    assert {"gate", "graph"} <= set(found.stages_ms)
    expanded = retriever.candidates(TENANT, QUERY, pipeline_named("hybrid-graph"))
    assert [(c.chunk_id, c.score) for c in found.chunks] == [(c.chunk_id, c.score) for c in expanded.chunks]


@pytest.mark.integration
def test_adaptive_skips_the_graph_for_a_query_that_names_nothing(index: Index) -> None:
    retriever = index.retriever(graph=index.graph)
    found = retriever.candidates(TENANT, UNNAMED, pipeline_named("adaptive"))
    assert found.signals is not None and found.signals.named == 0
    assert not found.gates["graph"].ran
    assert "graph" not in found.stages_ms and "graph" not in found.hits
    plain = retriever.candidates(TENANT, UNNAMED, pipeline_named("hybrid-convex"))
    assert [(c.chunk_id, c.score) for c in found.chunks] == [(c.chunk_id, c.score) for c in plain.chunks]
    # A gate that opens whenever the retrievers agree on less than all of their top expands it.
    opened = retriever.tuned(RetrievalParams(graph_gate=GATE_ALWAYS), None)
    assert opened.candidates(TENANT, UNNAMED, pipeline_named("adaptive")).gates["graph"].ran


@pytest.mark.integration
@pytest.mark.parametrize(("threshold", "reranked"), [(0.0, False), (GATE_ALWAYS, True)])
def test_adaptive_reranks_only_past_its_gate(index: Index, threshold: float, reranked: bool) -> None:
    reranker = RecordingReranker()
    params = RetrievalParams(rerank_gate=threshold, rerank_depth=3)
    retriever = index.retriever(graph=index.graph, reranker=reranker, params=params)
    found = retriever.retrieve(TENANT, QUERY, pipeline_named("adaptive"))
    assert found.gates["rerank"].ran is reranked
    assert ("rerank" in found.stages_ms) is reranked
    assert (found.chunks[0].source == "rerank") is reranked
    assert bool(reranker.seen) is reranked


@pytest.mark.integration
@pytest.mark.parametrize(("threshold", "reranked"), [(0.0, False), (GATE_ALWAYS, True)])
def test_the_agents_rerank_step_reads_the_gate_from_its_candidates(
    index: Index, threshold: float, reranked: bool
) -> None:
    # The agent reranks in an activity of its own, given only the candidates' references.
    reranker = RecordingReranker()
    params = RetrievalParams(rerank_gate=threshold)
    retriever = index.retriever(graph=index.graph, reranker=reranker, params=params)
    adaptive = pipeline_named("adaptive")
    refs = [c.ref() for c in retriever.candidates(TENANT, QUERY, adaptive).chunks]
    assert (retriever.active_reranker(adaptive, refs) is reranker) is reranked
    assert retriever.active_reranker(adaptive) is reranker  # no candidates: the configured one
    ranked = retriever.ranked(TENANT, QUERY, refs, adaptive)
    assert (ranked[0].source == "rerank") is reranked and bool(reranker.seen) is reranked

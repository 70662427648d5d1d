"""The retrieval pipeline: encode, search, fuse, expand over the graph, rerank; timed per stage.

One code path serves the agent, `keel eval` and the benchmarks, so the figures
they print are the figures of what the agent runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from keel.core.chunks import ScoredChunk
from keel.core.pipelines import Pipeline, RetrievalParams
from retrieval.clean_text import clean_text
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.entity_names import entity_key
from retrieval.feedback import QueryAdapter
from retrieval.fusion import convex_fusion, reciprocal_rank_fusion
from retrieval.graph_store import GraphLink, GraphStore
from retrieval.rerank import Reranker
from retrieval.types import InvalidRequestError, chunk_id_for
from retrieval.vector_store import VectorStore

AGREEMENT_DEPTH = 10  # top documents of each retriever compared by `agreement`
NAMED_LOOKUP_FACTOR = 4  # links read for the question's names, per link kept (`Retriever._named`)


@dataclass(frozen=True)
class QuerySignals:
    """What a query's own first stage says about it, before any later stage runs."""

    named: int  # documents about an entity the query names (the graph's `documents_about`)
    agreement: float  # share of dense's top documents that BM25's top holds too (`agreement`)


@dataclass(frozen=True)
class Gate:
    """Whether an adaptive pipeline ran a stage for one query, and why (shown in traces)."""

    ran: bool
    why: str


def agreement(candidates: Sequence[ScoredChunk], depth: int = AGREEMENT_DEPTH) -> float:
    """Share of the dense retriever's top `depth` documents that are in BM25's top `depth`, read
    from the candidates' signals (0 when either found none).

    Read from signals, not from the retrievers' lists, so the agent's rerank step, which gets
    only the candidates, computes it as the first stage did.
    """
    tops = []
    for retriever in ("dense", "bm25"):
        found = sorted(
            (c for c in candidates if retriever in c.signals),
            key=lambda c: (-c.signals[retriever], c.chunk_id),
        )
        tops.append(list(dict.fromkeys(c.document_id for c in found))[:depth])
    top_dense, top_bm25 = tops
    return len(set(top_dense).intersection(top_bm25)) / depth if top_dense and top_bm25 else 0.0


def graph_gate(signals: QuerySignals, threshold: float) -> Gate:
    """Expand over the graph when the query names a document, or when the retrievers disagree.

    A named document is what expansion raises. Disagreement says neither retriever has the
    question covered, which is when a linked passage that shares no word with the question may
    be the missing one; how far to trust that is the tuned threshold (0: not at all).
    """
    if signals.named:
        return Gate(True, f"the query names {signals.named} document(s)")
    if signals.agreement < threshold:
        return Gate(True, f"the retrievers agree on {signals.agreement:.0%} of their top (< {threshold:.0%})")
    return Gate(False, f"names no document; the retrievers agree on {signals.agreement:.0%}")


def rerank_gate(agreement: float, threshold: float) -> Gate:
    """Rerank when the retrievers disagree: then the reranker's own features (how much of the
    question a passage's text and title cover) settle what fusion could only average."""
    if agreement < threshold:
        return Gate(True, f"the retrievers agree on {agreement:.0%} of their top (< {threshold:.0%})")
    return Gate(False, f"the retrievers agree on {agreement:.0%} of their top")


@dataclass
class Retrieval:
    """The ranked chunks, each retriever's own list (for traces) and milliseconds per stage.

    An adaptive pipeline also keeps the query's signals and, per gated stage, whether it ran.
    """

    chunks: list[ScoredChunk]
    hits: dict[str, list[ScoredChunk]] = field(default_factory=dict)
    stages_ms: dict[str, float] = field(default_factory=dict)
    query_vector: list[float] | None = None  # the dense query as searched (after feedback)
    signals: QuerySignals | None = None
    gates: dict[str, Gate] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages_ms[stage] = self.stages_ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000


class Retriever:
    """Runs a `Pipeline` over the stores. Thread-safe as far as its encoders and stores are."""

    def __init__(
        self,
        vectors: VectorStore,
        dense: DenseEncoder,
        sparse: SparseEncoder,
        graph: GraphStore | None = None,
        reranker: Reranker | None = None,
        params: RetrievalParams | None = None,
        adapter: QueryAdapter | None = None,
    ) -> None:
        self._vectors = vectors
        self._dense = dense
        self._sparse = sparse
        self._graph = graph
        self.reranker = reranker
        self.params = params or RetrievalParams()
        self.adapter = adapter

    def tuned(self, params: RetrievalParams, adapter: QueryAdapter | None) -> Retriever:
        """The same stores and models with other parameters or another adapter (per eval fold)."""
        return Retriever(
            self._vectors, self._dense, self._sparse, self._graph, self.reranker, params, adapter
        )

    def retrieve(self, tenant: str, query: str, pipeline: Pipeline) -> Retrieval:
        """First stage (with graph expansion when asked), then reranking when asked; best first."""
        if pipeline.rerank and self.reranker is None:  # refused whether or not a gate would open
            raise InvalidRequestError(f"pipeline {pipeline.name!r} needs a reranker")
        found = self.candidates(tenant, query, pipeline)
        rerank = pipeline.rerank
        if rerank and found.signals is not None:  # adaptive: only where its gate opens
            found.gates["rerank"] = rerank_gate(found.signals.agreement, self.params.rerank_gate)
            rerank = found.gates["rerank"].ran
        if rerank:
            with found.timed("rerank"):
                found.chunks = self.rerank(tenant, query, found.chunks, pipeline, found.query_vector)
        found.chunks = found.chunks[: self.params.limit]
        return found

    def candidates(self, tenant: str, query: str, pipeline: Pipeline) -> Retrieval:
        """Search with the pipeline's retrievers, fuse, and expand over the graph; all candidates.

        The query is cleaned first (`clean_text`): a NUL or a lone surrogate in a question
        would otherwise reach FalkorDB's entity lookups and be refused on every retry.
        """
        query = clean_text(query).text
        if not query.strip():
            raise InvalidRequestError("the query is empty")
        if pipeline.graph and self._graph is None:
            raise InvalidRequestError(f"pipeline {pipeline.name!r} needs a graph store")
        p = self.params
        found = Retrieval(chunks=[])
        lists: list[list[ScoredChunk]] = []
        if pipeline.dense:
            with found.timed("encode_dense"):
                vector = self.query_vector(query, pipeline)
            found.query_vector = vector
            with found.timed("dense"):
                hits = self._vectors.search_dense(tenant, vector, p.dense_k)
            found.hits["dense"] = hits
            lists.append(hits)
        if pipeline.bm25:
            hits = self._bm25(tenant, query, found)
            found.hits["bm25"] = hits
            lists.append(hits)
        with found.timed("fuse"):
            if len(lists) == 1:
                fused = [replace(c, signals={c.source: c.score, "fused": c.score}) for c in lists[0]]
            elif pipeline.fusion == "rrf":
                fused = reciprocal_rank_fusion(lists, k=p.rrf_k)
            else:
                fused = convex_fusion(lists, weights=[p.dense_weight, 1 - p.dense_weight])
        named: list[GraphLink] | None = None
        expand = pipeline.graph
        if pipeline.adaptive:
            with found.timed("gate"):
                named = self._named(tenant, query) if pipeline.graph else []
                found.signals = QuerySignals(len({link.document_id for link in named}), agreement(fused))
            if pipeline.graph:
                found.gates["graph"] = graph_gate(found.signals, p.graph_gate)
                expand = found.gates["graph"].ran
        if expand:
            with found.timed("graph"):
                fused = self._expand(tenant, query, fused, found, named)
        found.chunks = fused
        return found

    def _named(self, tenant: str, query: str) -> list[GraphLink]:
        """Links to the documents about an entity the query names (the outermost names only)."""
        assert self._graph is not None
        spans = query_name_spans(query)
        # Every candidate name's documents first: which names stand inside a longer one is
        # known only once both are found. The bound keeps a question of many names cheap.
        links = self._graph.documents_about(
            tenant, sorted({s.key for s in spans}), limit=NAMED_LOOKUP_FACTOR * self.params.graph_k
        )
        names = outermost_names(spans, {link.via for link in links})
        return [link for link in links if link.via in names][: self.params.graph_k]

    def merge_queries(self, per_query: Sequence[Sequence[ScoredChunk]]) -> list[ScoredChunk]:
        """One candidate list from several queries' (the question's, then a next hop's), cut to
        `rerank_depth`. RRF: a later query adds candidates without outvoting the question."""
        if len(per_query) == 1:
            merged = list(per_query[0])
        else:
            merged = reciprocal_rank_fusion(per_query, k=self.params.rrf_k)
        return merged[: self.params.rerank_depth]

    def active_reranker(
        self, pipeline: Pipeline, candidates: Sequence[ScoredChunk] | None = None
    ) -> Reranker | None:
        """The reranker `ranked` runs for this pipeline: none unless the pipeline reranks, nor,
        in an adaptive pipeline, when the candidates' retrievers agree past its gate."""
        if not pipeline.rerank:
            return None
        gated = pipeline.adaptive and candidates is not None
        if gated and not rerank_gate(agreement(candidates or []), self.params.rerank_gate).ran:
            return None
        return self.reranker

    def ranked(
        self, tenant: str, query: str, candidates: Sequence[ScoredChunk], pipeline: Pipeline
    ) -> list[ScoredChunk]:
        """The top `limit` candidates: reranked when the pipeline reranks and a reranker is set,
        else in score order."""
        if self.active_reranker(pipeline, candidates) is not None:
            ranked = self.rerank(tenant, query, candidates, pipeline)
        else:
            ranked = sorted(candidates, key=lambda c: (-c.score, c.chunk_id))
        return ranked[: self.params.limit]

    def _bm25(self, tenant: str, query: str, found: Retrieval) -> list[ScoredChunk]:
        with found.timed("encode_bm25"):
            terms = self._sparse.encode_query(query)
        with found.timed("bm25"):
            return self._vectors.search_sparse(tenant, terms, self.params.bm25_k)

    def _expand(
        self,
        tenant: str,
        query: str,
        fused: list[ScoredChunk],
        found: Retrieval,
        named: list[GraphLink] | None = None,
    ) -> list[ScoredChunk]:
        """Raise the documents the question names, and those the top passages link to.

        A bridge question ("the director of X was born where?") needs a passage that shares
        little with the question: the one about the entity the first passage names. Its
        score becomes its own plus graph_weight x its seed's: a two-step path score. A
        document about an entity the question names is scored as if the question were a
        seed of score 1. Fused scores must lie in [0, 1] (convex fusion) for this to balance.
        """
        assert self._graph is not None
        p = self.params
        if not fused or p.graph_k == 0 or p.graph_weight == 0:
            return fused
        seeds: list[ScoredChunk] = []
        for chunk in fused:  # the top passages of distinct documents
            if len(seeds) == p.graph_seeds:
                break
            if all(s.document_id != chunk.document_id for s in seeds):
                seeds.append(chunk)
        seed_score = {s.chunk_id: s.score for s in seeds}
        boost: dict[str, float] = {}
        links = list(named) if named is not None else self._named(tenant, query)
        links += self._graph.linked_documents(
            tenant, list(seed_score), limit=p.graph_k, max_mentions=p.graph_max_mentions
        )
        for link in links:
            weight = p.graph_weight * (seed_score[link.seed] if link.seed else 1.0)
            boost[link.document_id] = max(boost.get(link.document_id, 0.0), weight)
        found.hits["graph"] = [
            ScoredChunk(chunk_id_for(doc, 0), doc, score, source="graph") for doc, score in boost.items()
        ]
        if not boost:
            return fused
        present = {c.document_id for c in fused}
        # A linked document neither retriever found enters with its first chunk and own score 0.
        missing = [chunk_id_for(doc, 0) for doc in boost if doc not in present]
        added = [replace(c, score=0.0, source="graph") for c in self._vectors.get_chunks(tenant, missing)]
        expanded = [
            replace(
                c, score=c.score + boost[c.document_id], signals={**c.signals, "graph": boost[c.document_id]}
            )
            if c.document_id in boost
            else c
            for c in fused + added
        ]
        return sorted(expanded, key=lambda c: (-c.score, c.chunk_id))

    def rerank(
        self,
        tenant: str,
        query: str,
        candidates: Sequence[ScoredChunk],
        pipeline: Pipeline,
        query_vector: Sequence[float] | None = None,
    ) -> list[ScoredChunk]:
        """Rerank the top `rerank_depth` candidates; the rest keep their order below them.

        The agent calls this in its own activity, with candidates that crossed a Temporal
        payload: texts and vectors are fetched again here, from the store, by chunk id.
        """
        if self.reranker is None:
            raise InvalidRequestError(f"pipeline {pipeline.name!r} needs a reranker")
        head, tail = (
            list(candidates[: self.params.rerank_depth]),
            list(candidates[self.params.rerank_depth :]),
        )
        if not head:
            return []
        # Stored vectors: the reranker scores semantic closeness without re-encoding passages.
        ids = [c.chunk_id for c in head]
        stored = {c.chunk_id: c for c in self._vectors.get_chunks(tenant, ids, with_vectors=True)}
        q = np.asarray(
            query_vector if query_vector is not None else self.query_vector(query, pipeline), dtype=np.float32
        )
        complete = []
        for chunk in head:
            kept = stored.get(chunk.chunk_id)
            if kept is None:  # deleted since it was found: nothing left to cite
                continue
            signals = dict(chunk.signals)
            if kept.dense is not None and "dense" not in signals:
                signals["dense"] = float(np.dot(q, np.asarray(kept.dense, dtype=np.float32)))
            complete.append(replace(kept, score=chunk.score, source=chunk.source, signals=signals))
        reranked = self.reranker.rerank(query, complete, limit=len(complete))
        return [replace(c, dense=None) for c in reranked] + tail

    def query_vector(self, query: str, pipeline: Pipeline) -> list[float]:
        """The dense query as the pipeline searches it: moved by the feedback adapter when asked."""
        vector = self._dense.encode_query(query)
        if pipeline.feedback and self.adapter is not None:
            vector = self.adapter.apply(vector)
        return vector


_TOKEN = re.compile(r"\S+")
_EDGE_PUNCTUATION = "\"'“”‘’?!.,;:()[]"
MAX_NAME_TOKENS = 8  # longer spans are sentences, not names (titles longer than that are not linked)
# A quoted title: "Rebel Without a Cause", “Big Stone Gap”.
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')


@dataclass(frozen=True)
class NameSpan:
    """A word span of the query that could name an entity: where it stands, and its entity key."""

    start: int
    end: int
    key: str

    def inside(self, other: NameSpan) -> bool:
        """Strictly within `other`: "Kirton" in "Kirton End"."""
        return other.start <= self.start and self.end <= other.end and self.length < other.length

    def cuts(self, start: int, end: int) -> bool:
        """Overlaps the text from `start` to `end` without holding all of it."""
        return self.start < end and start < self.end and not (self.start <= start and end <= self.end)

    @property
    def length(self) -> int:
        return self.end - self.start


def query_name_spans(query: str) -> list[NameSpan]:
    """Every word span of the query that could be a name, in order of position.

    Looking spans up, rather than extracting names first, finds titles the capitalisation
    rules would cut differently, and needs no dictionary in the process. A quoted title is
    one name: a span holding only part of it is none, so in 'his role in "Rebel Without a
    Cause"' the question names the film, not an article called "Rebel".
    """
    tokens = [m.span() for m in _TOKEN.finditer(query)]
    quoted = _quoted_titles(query)
    spans: list[NameSpan] = []
    for i in range(len(tokens)):
        for j in range(i, min(i + MAX_NAME_TOKENS, len(tokens))):
            raw = query[tokens[i][0] : tokens[j][1]]
            span = raw.strip(_EDGE_PUNCTUATION)
            # Names start with a capital or a digit: "city" must not find the article "City".
            if len(span) < 3 or not (span[0].isupper() or span[0].isdigit()):
                continue
            start = tokens[i][0] + (len(raw) - len(raw.lstrip(_EDGE_PUNCTUATION)))
            found = NameSpan(start, start + len(span), entity_key(span))
            if not any(found.cuts(qs, qe) for qs, qe in quoted):
                spans.append(found)
    return spans


def _quoted_titles(query: str) -> list[tuple[int, int]]:
    """Where the query's quoted titles stand, without their edge punctuation ('"Rebel Without a
    Cause," air' -> "Rebel Without a Cause"). A "quote" that could not be a name is a stray
    quote mark paired with the next one ('the 12" single of …'), not a title."""
    titles = []
    for match in _QUOTED.finditer(query):
        group = 1 if match.group(1) is not None else 2
        text = match.group(group)
        title = text.strip(_EDGE_PUNCTUATION + " ")
        # As a name: opens with a capital or a digit, and is no longer than a name.
        if (title[:1].isupper() or title[:1].isdigit()) and len(title.split()) <= MAX_NAME_TOKENS:
            start = match.start(group) + text.index(title)
            titles.append((start, start + len(title)))
    return titles


def query_name_keys(query: str) -> list[str]:
    """Entity keys of every word span of the query that could be a name (`query_name_spans`)."""
    return sorted({span.key for span in query_name_spans(query)})


def outermost_names(spans: Sequence[NameSpan], known: Collection[str]) -> set[str]:
    """Keys of the spans some document is about (`known`), less those inside a longer such span.

    The longest name wins where names overlap, as in entity linking: a question about
    "Kirton End" names Kirton End, not the two villages called Kirton, and one about the
    "National League North" not the National League.
    """
    matched = [span for span in spans if span.key in known]
    return {span.key for span in matched if not any(span.inside(other) for other in matched)}

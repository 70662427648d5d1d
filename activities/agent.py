"""The agent's steps with I/O. Each emits one observation on the task's trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors
from ingestion.entities import entity_key, extract_entities
from keel.blobs import BlobStore
from keel.citations import stamp_versions
from keel.domain import (
    Candidate,
    Draft,
    FinalizeInput,
    GenerateInput,
    GradeInput,
    GradeOutput,
    PlanInput,
    PlanOutput,
    RerankInput,
    RerankOutput,
    RetrieveInput,
    RetrieveOutput,
    ReviewContextInput,
)
from keel.models import AnswerProvider, Citation, Generation, ModelError, Passage
from keel.models.base import is_multi_hop
from keel.models.grounding import assess
from keel.review_policy import review_plan, review_reasons
from keel.settings import Settings
from keel.tracing import StepTracer
from retrieval.encoders import DenseEncoder
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.graph_store import GraphStore
from retrieval.pipeline import Retriever, pipeline_named
from retrieval.types import ScoredChunk, chunk_id_for
from retrieval.vector_store import VectorStore


def _task_id() -> str:
    return activity.info().workflow_id or "unknown-task"


def _key(name: str) -> str:
    # Stable across retries of the same activity: a retry overwrites, never duplicates.
    return f"{activity.info().activity_id}/{name}"


def _ids(chunks: Sequence[ScoredChunk]) -> list[str]:
    return [c.chunk_id for c in chunks]


def _passages(chunks: Sequence[ScoredChunk]) -> list[Passage]:
    return [Passage(c.document_id, c.chunk_id, c.title, c.text) for c in chunks]


# Chunks shown per cited document on the reviewer page: a long document is cut, and says so.
REVIEW_CONTEXT_CHUNKS = 200


class AgentActivities:
    """Built once by the worker with its clients; methods run in the worker's thread pool."""

    def __init__(
        self,
        settings: Settings,
        vectors: VectorStore,
        graph: GraphStore,
        retriever: Retriever,
        dense: DenseEncoder,
        provider: AnswerProvider,
        tracer: StepTracer,
        blobs: BlobStore,
    ) -> None:
        self._blobs = blobs
        self._settings = settings
        self._vectors = vectors
        self._graph = graph
        self._retriever = retriever
        self._pipeline = pipeline_named(settings.retrieval.pipeline)
        self._dense = dense
        self._provider = provider
        self._tracer = tracer

    @activity.defn(name="agent.plan")
    def plan(self, inp: PlanInput) -> PlanOutput:
        with self._tracer.observe(_task_id(), _key("plan"), "plan", "chain", asdict(inp)) as obs:
            if not inp.question.strip():
                raise ApplicationError("the question is empty", type="InvalidInput", non_retryable=True)
            out = PlanOutput(queries=[inp.question], entities=extract_entities(inp.question))
            obs.update(output=asdict(out))
            return out

    @activity.defn(name="agent.retrieve")
    @permanent_errors()
    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        """The configured pipeline's first stage (and graph expansion) for every query; fused."""
        cfg = self._settings.retrieval
        pipeline = self._pipeline
        with self._tracer.observe(_task_id(), _key("retrieve"), "retrieve", "retriever", asdict(inp)) as obs:
            per_query: list[list[ScoredChunk]] = []
            for query in inp.queries:
                with obs.child("search", "retriever", {"query": query, "pipeline": pipeline.name}) as child:
                    found = self._retriever.candidates(inp.tenant, query, pipeline)
                    child.update(
                        output={
                            **{name: _ids(hits[:20]) for name, hits in found.hits.items()},
                            "stages_ms": {k: round(v, 2) for k, v in found.stages_ms.items()},
                        }
                    )
                    per_query.append(found.chunks)
            # A later query (the next hop) adds candidates; RRF keeps it from outvoting the question.
            fused = per_query[0] if len(per_query) == 1 else reciprocal_rank_fusion(per_query, k=cfg.rrf_k)
            fused = fused[: cfg.rerank_depth]
            out = RetrieveOutput(
                candidates=[
                    Candidate(
                        c.chunk_id,
                        c.document_id,
                        round(c.score, 6),
                        sorted(name for name in ("dense", "bm25", "graph") if name in c.signals),
                        {k: round(v, 6) for k, v in c.signals.items()},
                    )
                    for c in fused
                ]
            )
            obs.update(output=[asdict(c) for c in out.candidates])
            return out

    @activity.defn(name="agent.rerank")
    @permanent_errors()
    def rerank(self, inp: RerankInput) -> RerankOutput:
        cfg = self._settings.retrieval
        reranker = self._retriever.reranker
        with self._tracer.observe(_task_id(), _key("rerank"), "rerank", "retriever", asdict(inp)) as obs:
            candidates = [
                ScoredChunk(c.chunk_id, c.document_id, c.score, signals=dict(c.signals))
                for c in inp.candidates
            ]
            if self._pipeline.rerank and reranker is not None:
                ranked = self._retriever.rerank(inp.tenant, inp.question, candidates, self._pipeline)
            else:
                ranked = sorted(candidates, key=lambda c: (-c.score, c.chunk_id))
            prior = {c.chunk_id: c for c in inp.candidates}
            out = RerankOutput(
                passages=[
                    Candidate(s.chunk_id, s.document_id, round(s.score, 6), prior[s.chunk_id].sources)
                    for s in ranked[: cfg.rerank_k]
                ],
                reranker=reranker.name if self._pipeline.rerank and reranker is not None else "none",
            )
            obs.update(output=asdict(out))
            return out

    @activity.defn(name="agent.generate")
    @permanent_errors()
    def generate(self, inp: GenerateInput) -> Draft:
        with self._tracer.observe(_task_id(), _key("generate"), "generate", "generation", asdict(inp)) as obs:
            chunks = self._chunks(inp.tenant, inp.passages)
            passages = _passages(chunks)
            try:
                # A reviewer's instruction rides with the question: a model follows it, the
                # extractive answerer picks the sentences it asks about.
                asked = f"{inp.question}\n{inp.instruction}" if inp.instruction else inp.question
                gen = self._provider.generate(asked, passages)
            except ModelError as err:
                raise ApplicationError(
                    str(err), type="ModelRefused", non_retryable=not err.retryable
                ) from err
            models = self._settings.models
            cost = (
                gen.input_tokens * models.cost_per_1k_input_tokens
                + gen.output_tokens * models.cost_per_1k_output_tokens
            ) / 1000
            citations = self._stamped(inp.tenant, gen.citations, chunks)
            draft = Draft(
                gen.answer, citations, gen.model, gen.input_tokens, gen.output_tokens, round(cost, 6)
            )
            obs.update(
                output=asdict(draft),
                model=gen.model,
                usage={
                    "input": gen.input_tokens,
                    "output": gen.output_tokens,
                    "total": gen.input_tokens + gen.output_tokens,
                },
                cost=draft.cost,
            )
            return draft

    def _chunks(self, tenant: str, candidates: Sequence[Candidate]) -> list[ScoredChunk]:
        return self._vectors.get_chunks(tenant, [c.chunk_id for c in candidates])

    def _stamped(
        self, tenant: str, citations: Sequence[Citation], chunks: Sequence[ScoredChunk]
    ) -> list[Citation]:
        """The citations with the document version each quote was read from: one graph read."""
        if not citations:
            return []
        documents = self._graph.documents(tenant, [c.document_id for c in citations])
        return stamp_versions(citations, {c.chunk_id: c.version for c in chunks}, documents)

    @activity.defn(name="agent.grade")
    @permanent_errors()
    def grade(self, inp: GradeInput) -> GradeOutput:
        agent = self._settings.agent
        with self._tracer.observe(_task_id(), _key("grade"), "grade", "evaluator", asdict(inp)) as obs:
            passages = _passages(self._chunks(inp.tenant, inp.passages))
            draft = Generation(inp.draft.answer, inp.draft.citations, inp.draft.model)
            grounding = assess(inp.question, draft, passages, self._dense.encode_documents)
            weak = grounding.score < agent.grounding_threshold
            # The next hop: entities the passages name that the question did not.
            asked = {entity_key(e) for e in extract_entities(inp.question)}
            found = [e for p in passages for e in extract_entities(p.text) if entity_key(e) not in asked]
            new_entities = list(dict.fromkeys(found))[:5]
            want_hop = weak or (is_multi_hop(inp.question) and inp.round == 1)
            retry = want_hop and inp.round < agent.max_retrieval_rounds and bool(new_entities)
            policy = self._settings.review.policy(inp.tenant)
            reasons = review_reasons(
                inp.review,
                policy,
                inp.overrides,
                grounding=grounding.score,
                default_threshold=agent.grounding_threshold,
                cost=inp.cost,
                answer=inp.draft.answer,
            )
            if inp.reviewed:  # a reviewer asked for this draft: they see it again, whatever the checks
                reasons, retry = ["changes requested", *reasons], False
            needs_review = bool(reasons) and not retry
            out = GradeOutput(
                grounding=grounding.score,
                support=grounding.support,
                relevance=grounding.relevance,
                retry=retry,
                refined_query=" ".join([inp.question, *new_entities]),
                entities=new_entities,
                needs_review=needs_review,
                review_reason="; ".join(reasons),
                review_reasons=reasons,
                review_plan=review_plan(policy) if needs_review else None,
            )
            obs.update(output=asdict(out))
            return out

    @activity.defn(name="agent.review_context")
    def review_context(self, inp: ReviewContextInput) -> str:
        """The cited documents' chunks, in order, as a blob (its key): what the reviewer page
        shows to put each cited passage in its place. By reference: documents can be large."""
        documents = []
        for document_id in dict.fromkeys(c.document_id for c in inp.citations):
            stored = min(self._vectors.count(inp.tenant, document_id), REVIEW_CONTEXT_CHUNKS)
            ids = [chunk_id_for(document_id, position) for position in range(stored)]
            chunks = self._vectors.get_chunks(inp.tenant, ids)
            documents.append(
                {
                    "document_id": document_id,
                    "title": chunks[0].title if chunks else "",
                    "chunks": [{"chunk_id": c.chunk_id, "text": c.text} for c in chunks],
                    "truncated": stored == REVIEW_CONTEXT_CHUNKS,
                }
            )
        return self._blobs.put_json({"documents": documents})

    @activity.defn(name="agent.finalize")
    def finalize(self, inp: FinalizeInput) -> None:
        result = inp.result
        task_id = _task_id()
        review = result.review
        if review is not None:
            # The human step: its latency is the reviewer's real wait, not the time to record it.
            self._tracer.record_past(
                task_id,
                "review",
                "review",
                "guardrail",
                started=datetime.fromisoformat(review.requested_at),
                ended=datetime.fromisoformat(review.decided_at),
                input={"question": inp.question, "draft": review.original_answer},
                output=asdict(review),
            )
        with self._tracer.observe(
            task_id, _key("finalize"), "finalize", "span", {"question": inp.question}
        ) as obs:
            obs.update(output=asdict(result))

"""The agent's steps with I/O. Each emits one observation on the task's trace.

Chunks travel between the steps as references (`ScoredChunk.ref()`: ids, scores, signals); a
step that needs their text reads it from the vector store by chunk id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.errors import permanent_errors
from ingestion.entities import extract_entities
from keel.core.chunks import Citation, ScoredChunk
from keel.core.citations import stamp_versions
from keel.core.decisions import (
    needs_another_round,
    needs_review,
    next_hop_entities,
    refined_query,
    why_review,
)
from keel.core.domain import (
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
from keel.core.errors import FailureKind, failure
from keel.core.faults import pause_if_asked
from keel.core.injection import suspect_passages
from keel.core.models import AnswerProvider, Generation, ModelError
from keel.core.models.base import is_multi_hop
from keel.core.models.grounding import assess
from keel.core.pipelines import pipeline_named
from keel.core.review_policy import review_plan, review_reasons
from keel.core.settings import Settings
from keel.core.tracing import StepTracer
from keel.stores.blobs import BlobStore
from retrieval.encoders import DenseEncoder
from retrieval.entity_names import entity_key
from retrieval.graph_store import GraphStore
from retrieval.pipeline import Retriever
from retrieval.types import chunk_id_for
from retrieval.vector_store import VectorStore

# Chunks shown per cited document on the reviewer page: a long document is cut, and says so.
REVIEW_CONTEXT_CHUNKS = 200


def _task_id() -> str:
    return activity.info().workflow_id or "unknown-task"


def _key(name: str) -> str:
    # Stable across retries of the same activity: a retry overwrites, never duplicates.
    return f"{activity.info().activity_id}/{name}"


def _ids(chunks: Sequence[ScoredChunk]) -> list[str]:
    return [c.chunk_id for c in chunks]


def _shown(chunks: Sequence[ScoredChunk]) -> list[dict[str, Any]]:
    """Chunks as a trace shows them: what found each, and how it scored."""
    return [
        {
            "chunk_id": c.chunk_id,
            "document_id": c.document_id,
            "score": c.score,
            "found_by": c.found_by,
            "signals": c.signals,
        }
        for c in chunks
    ]


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
        pause_if_asked("plan", self._settings.faults)
        with self._tracer.observe(_task_id(), _key("plan"), "plan", "chain", asdict(inp)) as obs:
            if not inp.question.strip():
                raise failure(FailureKind.INVALID_INPUT, "the question is empty")
            out = PlanOutput(queries=[inp.question], entities=extract_entities(inp.question))
            obs.update(output=asdict(out))
            return out

    @activity.defn(name="agent.retrieve")
    @permanent_errors()
    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        """The configured pipeline's first stage (and graph expansion) for every query, merged."""
        pause_if_asked("retrieve", self._settings.faults)
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
            out = RetrieveOutput(candidates=[c.ref() for c in self._retriever.merge_queries(per_query)])
            obs.update(output=_shown(out.candidates))
            return out

    @activity.defn(name="agent.rerank")
    @permanent_errors()
    def rerank(self, inp: RerankInput) -> RerankOutput:
        pause_if_asked("rerank", self._settings.faults)
        reranker = self._retriever.active_reranker(self._pipeline)
        with self._tracer.observe(_task_id(), _key("rerank"), "rerank", "retriever", asdict(inp)) as obs:
            ranked = self._retriever.ranked(inp.tenant, inp.question, inp.candidates, self._pipeline)
            out = RerankOutput(
                passages=[c.ref() for c in ranked], reranker=reranker.name if reranker is not None else "none"
            )
            obs.update(output={"passages": _shown(out.passages), "reranker": out.reranker})
            return out

    @activity.defn(name="agent.generate")
    @permanent_errors()
    def generate(self, inp: GenerateInput) -> Draft:
        pause_if_asked("generate", self._settings.faults)
        with self._tracer.observe(_task_id(), _key("generate"), "generate", "generation", asdict(inp)) as obs:
            passages = self._texts(inp.tenant, inp.passages)
            try:
                # A reviewer's instruction rides with the question: a model follows it, the
                # extractive answerer picks the sentences it asks about.
                asked = f"{inp.question}\n{inp.instruction}" if inp.instruction else inp.question
                gen = self._provider.generate(asked, passages)
            except ModelError as err:
                kind = FailureKind.MODEL_UNAVAILABLE if err.retryable else FailureKind.MODEL_REFUSED
                raise failure(kind, str(err)) from err
            models = self._settings.models
            cost = (
                gen.input_tokens * models.cost_per_1k_input_tokens
                + gen.output_tokens * models.cost_per_1k_output_tokens
            ) / 1000
            citations = self._stamped(inp.tenant, gen.citations, passages)
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

    def _texts(self, tenant: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The chunks with their text, read from the store, in the order given."""
        return self._vectors.get_chunks(tenant, _ids(chunks))

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
        """Score the draft's grounding, then decide (keel/core/decisions.py): another round,
        a reviewer, or neither."""
        pause_if_asked("grade", self._settings.faults)
        agent = self._settings.agent
        with self._tracer.observe(_task_id(), _key("grade"), "grade", "evaluator", asdict(inp)) as obs:
            passages = self._texts(inp.tenant, inp.passages)
            # The passages the generator was given that read like instructions (LLM01): a review
            # reason under `auto`, named in this step's trace whatever the mode.
            suspects = suspect_passages(passages)
            draft = Generation(inp.draft.answer, inp.draft.citations, inp.draft.model)
            grounding = assess(inp.question, draft, passages, self._dense.encode_documents)
            policy = self._settings.review.policy(inp.tenant)
            entities = next_hop_entities(
                extract_entities(inp.question),
                (name for p in passages for name in extract_entities(p.text)),
                key=entity_key,
            )
            another_round = needs_another_round(
                grounding=grounding.score,
                threshold=agent.grounding_threshold,
                multi_hop=is_multi_hop(inp.question),
                round=inp.round,
                max_rounds=agent.max_retrieval_rounds,
                next_entities=entities,
                reviewed=inp.reviewed,
            )
            policy_reasons = review_reasons(
                inp.review,
                policy,
                inp.overrides,
                grounding=grounding.score,
                default_threshold=agent.grounding_threshold,
                cost=inp.cost,
                answer=inp.draft.answer,
                instructions_in=[s.chunk_id for s in suspects],
            )
            reasons = why_review(policy_reasons, reviewed=inp.reviewed)
            to_review = needs_review(reasons, another_round=another_round)
            out = GradeOutput(
                grounding=grounding.score,
                support=grounding.support,
                relevance=grounding.relevance,
                retry=another_round,
                refined_query=refined_query(inp.question, entities),
                entities=entities,
                needs_review=to_review,
                review_reason="; ".join(reasons),
                review_reasons=reasons,
                review_plan=review_plan(policy) if to_review else None,
            )
            obs.update(output={**asdict(out), "instructions_in_sources": [asdict(s) for s in suspects]})
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
        return self._blobs.put_json(inp.tenant, {"documents": documents})

    @activity.defn(name="agent.finalize")
    def finalize(self, inp: FinalizeInput) -> None:
        pause_if_asked("finalize", self._settings.faults)
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

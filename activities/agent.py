"""The agent's steps with I/O. Each emits one observation on the task's trace.

Chunks travel between the steps as references (`ScoredChunk.ref()`: ids, scores, signals); a
step that needs their text reads it from the vector store by chunk id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.converter import value_to_type

from activities.answer_memory import AnswerMemory
from activities.errors import permanent_errors
from activities.metering import Metering, Stopwatch
from activities.metrics import count_cache_lookup
from ingestion.entities import extract_entities
from keel.core.answer_cache import review_policy_digest
from keel.core.budgets import BudgetScope
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
    AccountInput,
    CacheInfo,
    CacheLookupInput,
    CacheLookupOutput,
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
    ReviewOverrides,
    TaskResult,
)
from keel.core.errors import FailureKind, failure
from keel.core.faults import pause_if_asked
from keel.core.injection import suspect_passages
from keel.core.models import AnswerProvider, Generation, ModelError
from keel.core.models.base import is_multi_hop
from keel.core.models.grounding import assess
from keel.core.pipelines import pipeline_named
from keel.core.review_policy import review_plan, review_reasons
from keel.core.routing import RouteSignals, choose_route
from keel.core.settings import ReviewPolicySettings, Settings
from keel.core.tracing import ObservationHandle, StepTracer
from keel.core.usage import StepUsage, TaskUsage
from keel.stores.blobs import BlobStore
from retrieval.encoders import DenseEncoder
from retrieval.entity_names import entity_key
from retrieval.graph_store import GraphStore
from retrieval.pipeline import Retriever
from retrieval.types import chunk_id_for
from retrieval.vector_store import VectorStore

log = logging.getLogger(__name__)

# The draft of a task whose model call a budget refused: what the reviewer sees, with the reason.
NO_DRAFT = "No answer: the model call was refused by a budget (see the review reason)."
# Chunks shown per cited document on the reviewer page: a long document is cut, and says so.
REVIEW_CONTEXT_CHUNKS = 200


def _task_id() -> str:
    return activity.info().workflow_id or "unknown-task"


def _key(name: str) -> str:
    # Stable across retries of the same activity: a retry overwrites, never duplicates.
    return f"{activity.info().activity_id}/{name}"


def _attempt_id() -> str:
    """This attempt of this step: a model call retried is made, and paid, again."""
    info = activity.info()
    return f"{info.workflow_id}/{info.activity_id}/{info.attempt}"


def _traced(obs: ObservationHandle, usage: StepUsage) -> None:
    """The step's usage on its observation (Langfuse reads usage and cost of generations)."""
    counts = {"input": usage.input_tokens, "output": usage.output_tokens, "texts": usage.texts}
    obs.update(
        usage={**counts, "total": usage.input_tokens + usage.output_tokens},
        cost=usage.cost,
        model=usage.model or None,
    )


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
        providers: dict[str, AnswerProvider],
        tracer: StepTracer,
        blobs: BlobStore,
        metering: Metering,
        pipeline_version: str,
        memory: AnswerMemory | None = None,
    ) -> None:
        self._blobs = blobs
        self._settings = settings
        self._vectors = vectors
        self._graph = graph
        self._retriever = retriever
        self._pipeline = pipeline_named(settings.retrieval.pipeline)
        self._dense = dense
        self._providers = providers
        self._tracer = tracer
        self._metering = metering
        self._pipeline_version = pipeline_version
        self.memory = memory  # the answer cache; None: off
        self._encoder_name = settings.embedding_model_name

    @activity.defn(name="agent.cache_lookup")
    @permanent_errors()
    def cache_lookup(self, inp: CacheLookupInput) -> CacheLookupOutput:
        """An earlier task's answer this question may reuse: asking the same, under the same review
        policy, approved if it needed approval, and citing documents that have not changed."""
        if self.memory is None:  # off in this worker: no step to trace or meter
            return CacheLookupOutput(CacheInfo(note="the answer cache is off"))
        with self._tracer.observe(_task_id(), _key("cache"), "cache", "retriever", asdict(inp)) as obs:
            watch = Stopwatch()
            policy = self._policy_digest(inp.tenant, inp.review, inp.overrides)
            found = self.memory.find(inp.tenant, inp.question, policy)
            count_cache_lookup(inp.tenant, "miss" if isinstance(found, str) else "hit")
            if isinstance(found, str):
                out = CacheLookupOutput(CacheInfo(note=found))
            else:
                entry, similarity = found
                info = CacheInfo(True, entry.task_id, round(similarity, 4), entry.approved_by)
                out = CacheLookupOutput(info, value_to_type(TaskResult, entry.result))
            out.usage = self._metering.encoder_usage(
                "cache", "embed", self._encoder_name, [inp.question], watch.stop()
            )
            obs.update(output={"cache": asdict(out.info), "policy": policy})
            _traced(obs, out.usage)
            return out

    @activity.defn(name="agent.plan")
    def plan(self, inp: PlanInput) -> PlanOutput:
        pause_if_asked("plan", self._settings.faults)
        with self._tracer.observe(_task_id(), _key("plan"), "plan", "chain", asdict(inp)) as obs:
            watch = Stopwatch()
            if not inp.question.strip():
                raise failure(FailureKind.INVALID_INPUT, "the question is empty")
            out = PlanOutput(
                queries=[inp.question],
                entities=extract_entities(inp.question),
                pipeline_version=self._pipeline_version,
            )
            out.usage = StepUsage("plan", latency_ms=watch.stop().latency_ms, cpu_ms=watch.cpu_ms)
            obs.update(output=asdict(out))
            return out

    @activity.defn(name="agent.retrieve")
    @permanent_errors()
    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        """The configured pipeline's first stage (and graph expansion) for every query, merged."""
        pause_if_asked("retrieve", self._settings.faults)
        pipeline = self._pipeline
        with self._tracer.observe(_task_id(), _key("retrieve"), "retrieve", "retriever", asdict(inp)) as obs:
            watch = Stopwatch()
            per_query: list[list[ScoredChunk]] = []
            for query in inp.queries:
                with obs.child("search", "retriever", {"query": query, "pipeline": pipeline.name}) as child:
                    found = self._retriever.candidates(inp.tenant, query, pipeline)
                    child.update(
                        output={
                            **{name: _ids(hits[:20]) for name, hits in found.hits.items()},
                            "stages_ms": {k: round(v, 2) for k, v in found.stages_ms.items()},
                            # An adaptive pipeline's stages, each with whether it ran and why.
                            "gates": {k: asdict(g) for k, g in found.gates.items()},
                        }
                    )
                    per_query.append(found.chunks)
            out = RetrieveOutput(candidates=[c.ref() for c in self._retriever.merge_queries(per_query)])
            # One query encoding per query (the dense retriever's); BM25 needs no model.
            out.usage = self._metering.encoder_usage(
                "retrieve", "embed", self._encoder_name, inp.queries, watch.stop()
            )
            obs.update(output=_shown(out.candidates))
            _traced(obs, out.usage)
            return out

    @activity.defn(name="agent.rerank")
    @permanent_errors()
    def rerank(self, inp: RerankInput) -> RerankOutput:
        pause_if_asked("rerank", self._settings.faults)
        reranker = self._retriever.active_reranker(self._pipeline, inp.candidates)
        with self._tracer.observe(_task_id(), _key("rerank"), "rerank", "retriever", asdict(inp)) as obs:
            watch = Stopwatch()
            ranked = self._retriever.ranked(inp.tenant, inp.question, inp.candidates, self._pipeline)
            out = RerankOutput(
                passages=[c.ref() for c in ranked], reranker=reranker.name if reranker is not None else "none"
            )
            scored = (
                0 if reranker is None else min(len(inp.candidates), self._settings.retrieval.rerank_depth)
            )
            out.usage = StepUsage(
                "rerank",
                "rerank" if scored else "none",
                out.reranker if scored else "",
                calls=1 if scored else 0,
                texts=scored,
                latency_ms=watch.stop().latency_ms,
                cpu_ms=watch.cpu_ms,
            )
            obs.update(output={"passages": _shown(out.passages), "reranker": out.reranker})
            _traced(obs, out.usage)
            return out

    @activity.defn(name="agent.generate")
    @permanent_errors()
    def generate(self, inp: GenerateInput) -> Draft:
        pause_if_asked("generate", self._settings.faults)
        with self._tracer.observe(_task_id(), _key("generate"), "generate", "generation", asdict(inp)) as obs:
            passages = self._texts(inp.tenant, self._with_draft_support(inp))
            route = choose_route(
                self._settings.models,
                RouteSignals(
                    multi_hop=is_multi_hop(inp.question),
                    round=inp.round,
                    passages=len(passages),
                    # The reranked references carry the stages' signals; the texts read back do not.
                    top_cosine=inp.passages[0].signals.get("dense") if inp.passages else None,
                    reviewer_instruction=bool(inp.instruction),
                ),
            )
            provider = self._providers[route.profile]
            # A reviewer's instruction rides with the question (the estimate counts both).
            asked = f"{inp.question}\n{inp.instruction}" if inp.instruction else inp.question
            scope = BudgetScope(inp.tenant, inp.key_id, _task_id())
            budget = self._metering.reserve(scope, _attempt_id(), provider, asked, passages)
            shown_route = {"profile": route.profile, "model": provider.model, "reason": route.reason}
            if not budget.reservation.granted:
                draft = self._refused(budget.reservation.refusal, provider.model, route.reason)
                obs.update(output={**asdict(draft), "route": shown_route}, model=provider.model)
                return draft
            watch = Stopwatch()
            try:
                gen = (
                    provider.revise(inp.question, inp.instruction, passages)
                    if inp.instruction
                    else provider.generate(inp.question, passages)
                )
            except ModelError as err:
                self._metering.settle(budget, None, watch.stop(), route.reason)  # releases the reservation
                kind = FailureKind.MODEL_UNAVAILABLE if err.retryable else FailureKind.MODEL_REFUSED
                raise failure(kind, str(err)) from err
            except BaseException:
                self._metering.settle(budget, None, watch.stop(), route.reason)
                raise
            usage = self._metering.settle(budget, gen, watch.stop(), route.reason)
            self._metering.record(_attempt_id(), inp.tenant, inp.key_id, self._pipeline_version, usage)
            citations = self._stamped(inp.tenant, gen.citations, passages)
            draft = Draft(
                gen.answer,
                citations,
                gen.model,
                usage.input_tokens,
                usage.output_tokens,
                usage.cost,
                usage=usage,
                budget_warnings=budget.reservation.soft_warnings,
            )
            obs.update(
                output={**asdict(draft), "route": shown_route, "reserved": budget.estimate},
            )
            _traced(obs, usage)
            return draft

    @staticmethod
    def _with_draft_support(inp: GenerateInput) -> list[ScoredChunk]:
        """The passages, after the chunks the reviewed draft cited: a request for changes keeps
        what was right, so the evidence for it stays in view whatever the new retrieval found."""
        if not inp.instruction or not inp.draft_citations:
            return list(inp.passages)
        cited = [ScoredChunk(c.chunk_id, c.document_id) for c in inp.draft_citations]
        seen = {c.chunk_id for c in cited}
        return list({c.chunk_id: c for c in cited}.values()) + [
            p for p in inp.passages if p.chunk_id not in seen
        ]

    def _refused(self, refusal: str, model: str, route: str) -> Draft:
        """No call: a hard budget refused it. Per `cost.on_hard_limit`, the task fails naming the
        budget, or goes to a reviewer with no draft and the reason."""
        if self._settings.cost.on_hard_limit == "fail":
            raise failure(FailureKind.BUDGET_EXCEEDED, f"model call refused: {refusal}")
        usage = StepUsage("generate", "model", model, route=route)
        return Draft(NO_DRAFT, [], model, usage=usage, budget_refusal=refusal)

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
            watch = Stopwatch()
            policy = self._settings.review.policy(inp.tenant)
            if inp.draft.budget_refusal:
                out = self._refused_to_review(inp.draft.budget_refusal, policy)
                obs.update(output=asdict(out))
                return out
            passages = self._texts(inp.tenant, inp.passages)
            # The passages the generator was given that read like instructions (LLM01): a review
            # reason under `auto`, named in this step's trace whatever the mode.
            suspects = suspect_passages(passages)
            draft = Generation(inp.draft.answer, inp.draft.citations, inp.draft.model)
            encoded: list[str] = []

            def encode(texts: Sequence[str]) -> list[list[float]]:
                encoded.extend(texts)
                return self._dense.encode_sentences(texts)

            grounding = assess(inp.question, draft, passages, encode)
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
            if inp.review != "never":  # a soft budget passed: an alert, and a person's look
                policy_reasons += [f"budget: {w}" for w in inp.draft.budget_warnings]
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
            out.usage = self._metering.encoder_usage(
                "grade", "embed", self._encoder_name, encoded, watch.stop()
            )
            obs.update(output={**asdict(out), "instructions_in_sources": [asdict(s) for s in suspects]})
            _traced(obs, out.usage)
            return out

    @staticmethod
    def _refused_to_review(refusal: str, policy: ReviewPolicySettings) -> GradeOutput:
        """A draft a budget refused goes to a person whatever the review mode: there is no answer."""
        reasons = [f"budget: {refusal}"]
        return GradeOutput(
            grounding=0.0,
            support=0.0,
            relevance=0.0,
            retry=False,  # another round would only ask the same budget again
            refined_query="",
            entities=[],
            needs_review=True,
            review_reason="; ".join(reasons),
            review_reasons=reasons,
            review_plan=review_plan(policy),
        )

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

    @activity.defn(name="agent.account")
    def account(self, inp: AccountInput) -> TaskUsage:
        """The task's usage complete: the reviewers' time priced, and every step rolled up per
        tenant, key, day, model, step and pipeline version (model calls were as they settled)."""
        steps = list(inp.steps)
        for review in inp.reviews:
            handled_s = (
                (
                    datetime.fromisoformat(review.decided_at) - datetime.fromisoformat(review.claimed_at)
                ).total_seconds()
                if review.claimed_at
                else None  # decided unclaimed: its wait in the queue was not work
            )
            steps.append(self._metering.review_usage(review.waited_s, handled_s))
        task_id = _task_id()
        for i, step in enumerate(steps):
            if step.kind != "model":  # a model call is rolled up as it settles, paid or not
                self._metering.record(f"{task_id}/{i}", inp.tenant, inp.key_id, inp.pipeline_version, step)
        finished = StepUsage("task")
        self._metering.record(
            f"{task_id}/task", inp.tenant, inp.key_id, inp.pipeline_version, finished, tasks=1
        )
        return TaskUsage.of(steps, inp.pipeline_version)

    @activity.defn(name="agent.finalize")
    def finalize(self, inp: FinalizeInput) -> None:
        pause_if_asked("finalize", self._settings.faults)
        result = inp.result
        task_id = _task_id()
        if not inp.cache:
            count_cache_lookup(inp.tenant, "bypass")
        review = result.review
        if review is not None and not result.cache.hit:
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
            kept = self._keep_answer(inp, task_id) if not result.cache.hit else "served from the cache"
            obs.update(output={**asdict(result), "cache_kept": kept or "kept"})

    def _policy_digest(self, tenant: str, mode: str, overrides: ReviewOverrides) -> str:
        """The review policy a task ran under: a cached answer is reused only under the same."""
        policy = self._settings.review.policy(tenant)
        return review_policy_digest(mode, policy, overrides, self._settings.agent.grounding_threshold)

    def _keep_answer(self, inp: FinalizeInput, task_id: str) -> str:
        """Keep the answer for later questions ("" when kept, else why not); never fails the task."""
        if self.memory is None:
            return "the answer cache is off"
        policy = self._policy_digest(inp.tenant, inp.review, inp.overrides)
        try:
            return self.memory.keep(inp.tenant, task_id, inp.question, inp.result, policy)
        except Exception as err:
            log.warning("answer cache: could not keep the answer of %s", task_id, exc_info=True)
            return f"not kept: {type(err).__name__}"

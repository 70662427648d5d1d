"""The agent as a LangGraph graph: cache? → plan → retrieve → rerank → generate → grade → review? → finalize.

Every node runs in the workflow (deterministic) and calls one activity for its I/O,
with one small dataclass in and out. The graph state holds plain JSON values only
(dataclasses go through `dataclasses.asdict` and `value_to_type`) so LangGraph's
checkpointer never needs to know Keel's types.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from temporalio import workflow
from temporalio.converter import value_to_type

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.audit import AuditActivities
    from keel.core.chunks import ScoredChunk, keeping_cited
    from keel.core.domain import (
        AccountInput,
        AuditEntry,
        CacheInfo,
        CacheLookupInput,
        CacheLookupOutput,
        Draft,
        FinalizeInput,
        GenerateInput,
        GradeInput,
        GradeOutput,
        PlanInput,
        RerankInput,
        RetrieveInput,
        ReviewContextInput,
        ReviewDecision,
        ReviewRecord,
        TaskRequest,
        TaskResult,
    )
    from keel.core.identity import SYSTEM_ACTOR
    from keel.core.usage import StepUsage, TaskUsage

AGENT_GRAPH = "keel-agent"
# Tasks started before these changes replay without them (workflow.patched).
ANSWER_CACHE_PATCH = "answer-cache"
TASK_USAGE_PATCH = "task-usage"
_T = TypeVar("_T")


class AgentState(TypedDict, total=False):
    request: dict[str, Any]
    queries: list[str]
    entities: list[str]
    round: int
    candidates: list[dict[str, Any]]
    passages: list[dict[str, Any]]
    reranker: str
    draft: dict[str, Any]
    grade: dict[str, Any]
    review: dict[str, Any] | None
    reviews: list[dict[str, Any]]  # every decided review round, oldest first
    instruction: str  # a reviewer's request for changes, while the agent works on it
    cost: float  # the task's model cost so far
    context_key: str  # blob of the cited documents, for the reviewer page
    result: dict[str, Any]
    cached: dict[str, Any] | None  # CacheLookupOutput of a hit; None: answered afresh
    cache_info: dict[str, Any]  # CacheInfo of the lookup (a miss says why)
    usage: list[dict[str, Any]]  # StepUsage of every step run, in order
    pipeline_version: str


def _load(cls: type[_T], value: Any) -> _T:
    result: _T = value_to_type(cls, value)
    return result


def _chunks(values: list[dict[str, Any]]) -> list[ScoredChunk]:
    return [_load(ScoredChunk, v) for v in values]


def _step(name: str) -> None:
    """Publish the current step (the API reads it from the memo, with no worker round trip)."""
    workflow.upsert_memo({"step": name})


def _used(state: AgentState, usage: StepUsage) -> list[dict[str, Any]]:
    return [*state.get("usage", []), asdict(usage)]


async def cache(state: AgentState) -> dict[str, Any]:
    """Look for an earlier answer this question may reuse (none when the request bypasses it)."""
    request = _load(TaskRequest, state["request"])
    if not workflow.patched(ANSWER_CACHE_PATCH):
        return {"cached": None}
    if not request.cache:
        return {"cached": None, "cache_info": {"note": "bypassed by the request"}}
    _step("cache")
    out = await workflow.execute_local_activity_method(
        AgentActivities.cache_lookup,
        CacheLookupInput(request.tenant, request.question, request.review, request.overrides),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    update: dict[str, Any] = {"cache_info": asdict(out.info)}
    if out.usage is not None:
        update["usage"] = _used(state, out.usage)
    if out.info.hit:
        await _audit_cache_hit(request, out)
        return {**update, "cached": asdict(out)}
    return {**update, "cached": None}


async def _audit_cache_hit(request: TaskRequest, out: CacheLookupOutput) -> None:
    """A reused answer goes out with no step of its own: the audit log says whose it is."""
    info = out.info
    approved = f", approved by {info.approved_by}" if info.approved_by else ""
    entry = AuditEntry(
        task_id=workflow.info().workflow_id,
        tenant=request.tenant,
        round=0,
        action="cache_hit",
        actor=SYSTEM_ACTOR,
        at=workflow.now().isoformat(),
        reason=f"answer of {info.source_task} (question similarity {info.similarity:.3f}{approved})",
    )
    await workflow.execute_local_activity_method(
        AuditActivities.record,
        entry,
        start_to_close_timeout=policies.AUDIT_TIMEOUT,
        retry_policy=policies.AUDIT_RETRY,
    )


async def route_after_cache(state: AgentState) -> str:
    return "finalize" if state.get("cached") else "plan"


async def plan(state: AgentState) -> dict[str, Any]:
    _step("plan")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.plan,
        PlanInput(tenant=request.tenant, question=request.question),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {
        "queries": out.queries,
        "entities": out.entities,
        "round": 1,
        "pipeline_version": out.pipeline_version,
        "usage": _used(state, out.usage),
    }


async def retrieve(state: AgentState) -> dict[str, Any]:
    _step("retrieve")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.retrieve,
        RetrieveInput(
            tenant=request.tenant, queries=state["queries"], entities=state["entities"], round=state["round"]
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {"candidates": [asdict(c) for c in out.candidates], "usage": _used(state, out.usage)}


def _rerank_query(state: AgentState) -> str:
    instruction = state.get("instruction", "")
    if instruction:
        return f"{_load(TaskRequest, state['request']).question} {instruction}"
    return state["queries"][-1]


async def rerank(state: AgentState) -> dict[str, Any]:
    _step("rerank")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.rerank,
        # In a later round the refined query (question + entities found) carries the next hop; after
        # a request for changes, the question and the instruction both (the draft answered one).
        RerankInput(
            tenant=request.tenant, question=_rerank_query(state), candidates=_chunks(state["candidates"])
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    passages = list(out.passages)
    if state["round"] > 1 and not state.get("instruction"):
        cited = {c.chunk_id for c in _load(Draft, state["draft"]).citations}
        passages = keeping_cited(passages, _chunks(state["passages"]), cited)
    return {
        "passages": [asdict(p) for p in passages],
        "reranker": out.reranker,
        "usage": _used(state, out.usage),
    }


async def generate(state: AgentState) -> dict[str, Any]:
    _step("generate")
    request = _load(TaskRequest, state["request"])
    draft = await workflow.execute_activity_method(
        AgentActivities.generate,
        GenerateInput(
            tenant=request.tenant,
            question=request.question,
            passages=_chunks(state["passages"]),
            instruction=state.get("instruction", ""),
            key_id=request.key_id,
            round=state["round"],
            draft_citations=_load(Draft, state["draft"]).citations if state.get("instruction") else [],
        ),
        start_to_close_timeout=policies.MODEL_CALL_TIMEOUT,
        retry_policy=policies.MODEL_CALL_RETRY,
    )
    return {
        "draft": asdict(draft),
        "cost": state.get("cost", 0.0) + draft.cost,
        "usage": _used(state, draft.usage),
    }


async def grade(state: AgentState) -> dict[str, Any]:
    _step("grade")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.grade,
        GradeInput(
            tenant=request.tenant,
            question=request.question,
            draft=_load(Draft, state["draft"]),
            passages=_chunks(state["passages"]),
            round=state["round"],
            review=request.review,
            overrides=request.overrides,
            cost=state.get("cost", 0.0),
            reviewed=bool(state.get("instruction")),
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    update: dict[str, Any] = {"grade": asdict(out), "usage": _used(state, out.usage)}
    if out.needs_review:
        draft = _load(Draft, state["draft"])
        update["context_key"] = await workflow.execute_local_activity_method(
            AgentActivities.review_context,
            ReviewContextInput(tenant=request.tenant, citations=draft.citations),
            start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
            retry_policy=policies.FAST_STEP_RETRY,
        )
    if out.retry:
        # The refined query and the entities found so far drive the next hop.
        update.update(
            queries=[request.question, out.refined_query],
            entities=sorted(set(state["entities"]) | set(out.entities)),
            round=state["round"] + 1,
        )
    return update


async def route_after_grade(state: AgentState) -> str:
    # Async on purpose: LangGraph runs sync routers in an executor, which workflows forbid.
    return "retrieve" if state["grade"]["retry"] else "review"


def review(state: AgentState) -> dict[str, Any]:
    """Wait for a reviewer when required: `interrupt` pauses the graph durably.

    AgentWorkflow runs the queue (claims, deadlines, escalation) and resumes the graph with
    the decision and the review's facts.
    """
    grade_out = _load(GradeOutput, state["grade"])
    if not grade_out.needs_review:
        return {"review": None, "instruction": ""}
    _step("review")
    draft = _load(Draft, state["draft"])
    resumed = interrupt(
        {
            "answer": draft.answer,
            "reasons": grade_out.review_reasons,
            "citations": [asdict(c) for c in draft.citations],
            "context_key": state.get("context_key", ""),
            "plan": asdict(grade_out.review_plan) if grade_out.review_plan else None,
        }
    )
    decision = _load(ReviewDecision, resumed["decision"])
    final = decision.answer if decision.decision == "edit" else draft.answer
    decided_at = workflow.now()
    requested_at = datetime.fromisoformat(resumed["requested_at"])
    record = ReviewRecord(
        decision=decision.decision,
        reviewer=decision.reviewer,
        decided_at=decided_at.isoformat(),
        requested_at=requested_at.isoformat(),
        waited_s=round((decided_at - requested_at).total_seconds(), 3),
        reason=decision.reason,
        original_answer=draft.answer,
        final_answer=final,
        changed=final != draft.answer,
        diff=answer_diff(draft.answer, final),
        round=resumed["round"],
        instruction=decision.instruction,
        group=resumed["group"],
        claimed_at=resumed.get("claimed_at", ""),
    )
    update: dict[str, Any] = {
        "review": asdict(record),
        "reviews": [*state.get("reviews", []), asdict(record)],
    }
    if decision.decision == "request_changes":
        request = _load(TaskRequest, state["request"])
        # Back to retrieval: the instruction may name what the draft missed.
        return {
            **update,
            "instruction": decision.instruction,
            "queries": [request.question, decision.instruction],
        }
    if decision.decision == "edit" and decision.citations is not None:
        update["draft"] = asdict(Draft(final, decision.citations, draft.model, draft.input_tokens,
                                       draft.output_tokens, draft.cost))  # fmt: skip
    return {**update, "instruction": ""}


def answer_diff(before: str, after: str) -> str:
    """A unified diff of an edited answer (empty when unchanged): what the audit shows."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "draft", "edited", lineterm="")
    return "\n".join(lines)


async def route_after_review(state: AgentState) -> str:
    review = state.get("review")
    return "retrieve" if review and review["decision"] == "request_changes" else "finalize"


async def finalize(state: AgentState) -> dict[str, Any]:
    _step("finalize")
    request = _load(TaskRequest, state["request"])
    result = _served(state) if state.get("cached") else _answered(state)
    if workflow.patched(TASK_USAGE_PATCH):
        result.usage = await workflow.execute_local_activity_method(
            AgentActivities.account,
            AccountInput(
                tenant=request.tenant,
                key_id=request.key_id,
                pipeline_version=state.get("pipeline_version", ""),
                steps=[_load(StepUsage, u) for u in state.get("usage", [])],
                reviews=[] if result.cache.hit else result.reviews,
            ),
            start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
            retry_policy=policies.FAST_STEP_RETRY,
        )
    await workflow.execute_local_activity_method(
        AgentActivities.finalize,
        FinalizeInput(
            tenant=request.tenant,
            question=request.question,
            result=result,
            key_id=request.key_id,
            review=request.review,
            overrides=request.overrides,
            cache=request.cache,
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {"result": asdict(result)}


def _answered(state: AgentState) -> TaskResult:
    """The result of the agent's own work: the draft, as the review left it."""
    draft = _load(Draft, state["draft"])
    grade_out = _load(GradeOutput, state["grade"])
    record = _load(ReviewRecord, state["review"]) if state.get("review") else None
    rejected = record is not None and record.decision == "reject"
    result = TaskResult(
        status="rejected" if rejected else "completed",
        answer=None if rejected else (record.final_answer if record else draft.answer),
        citations=[] if rejected else draft.citations,
        grounding=grade_out.grounding,
        rounds=state["round"],
        model=draft.model,
        review=record,
        review_reason=grade_out.review_reason,
        reviews=[_load(ReviewRecord, r) for r in state.get("reviews", [])],
    )
    if "cache_info" in state:
        result.cache = _load(CacheInfo, state["cache_info"])
    return result


def _served(state: AgentState) -> TaskResult:
    """An earlier task's result, served from the cache: its answer, citations and approval, with
    this task's own usage and where the answer came from."""
    hit = _load(CacheLookupOutput, state["cached"])
    assert hit.result is not None
    return replace(hit.result, usage=TaskUsage(), cache=hit.info)


def make_agent_graph() -> StateGraph:
    """The agent graph; every node runs in the workflow and calls its activity explicitly."""
    in_workflow = {"execute_in": "workflow"}
    g = StateGraph(AgentState)
    for name, node in (
        ("cache", cache),
        ("plan", plan),
        ("retrieve", retrieve),
        ("rerank", rerank),
        ("generate", generate),
        ("grade", grade),
        ("review", review),
        ("finalize", finalize),
    ):
        g.add_node(name, node, metadata=dict(in_workflow))
    g.add_edge(START, "cache")
    g.add_conditional_edges("cache", route_after_cache, {"plan": "plan", "finalize": "finalize"})
    g.add_edge("plan", "retrieve")
    g.add_edge("retrieve", "rerank")
    g.add_edge("rerank", "generate")
    g.add_edge("generate", "grade")
    g.add_conditional_edges("grade", route_after_grade, {"retrieve": "retrieve", "review": "review"})
    g.add_conditional_edges("review", route_after_review, {"retrieve": "retrieve", "finalize": "finalize"})
    g.add_edge("finalize", END)
    return g

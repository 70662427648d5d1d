"""The agent as a LangGraph graph: plan → retrieve → rerank → generate → grade → review? → finalize.

Every node runs in the workflow (deterministic) and calls one activity for its I/O,
with one small dataclass in and out. The graph state holds plain JSON values only
(dataclasses go through `dataclasses.asdict` and `value_to_type`) so LangGraph's
checkpointer never needs to know Keel's types.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from temporalio import workflow
from temporalio.converter import value_to_type

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from keel.domain import (
        Candidate,
        Draft,
        FinalizeInput,
        GenerateInput,
        GradeInput,
        GradeOutput,
        PlanInput,
        RerankInput,
        RetrieveInput,
        ReviewDecision,
        ReviewRecord,
        TaskRequest,
        TaskResult,
    )

AGENT_GRAPH = "keel-agent"
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
    result: dict[str, Any]


def _load(cls: type[_T], value: Any) -> _T:
    result: _T = value_to_type(cls, value)
    return result


def _candidates(values: list[dict[str, Any]]) -> list[Candidate]:
    return [_load(Candidate, v) for v in values]


def _step(name: str) -> None:
    """Publish the current step (the API reads it from the memo, with no worker round trip)."""
    workflow.upsert_memo({"step": name})


async def plan(state: AgentState) -> dict[str, Any]:
    _step("plan")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.plan,
        PlanInput(tenant=request.tenant, question=request.question),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {"queries": out.queries, "entities": out.entities, "round": 1}


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
    return {"candidates": [asdict(c) for c in out.candidates]}


async def rerank(state: AgentState) -> dict[str, Any]:
    _step("rerank")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.rerank,
        # In a later round the refined query (question + entities found) carries the next hop.
        RerankInput(
            tenant=request.tenant, question=state["queries"][-1], candidates=_candidates(state["candidates"])
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {"passages": [asdict(p) for p in out.passages], "reranker": out.reranker}


async def generate(state: AgentState) -> dict[str, Any]:
    _step("generate")
    request = _load(TaskRequest, state["request"])
    draft = await workflow.execute_activity_method(
        AgentActivities.generate,
        GenerateInput(
            tenant=request.tenant, question=request.question, passages=_candidates(state["passages"])
        ),
        start_to_close_timeout=policies.MODEL_CALL_TIMEOUT,
        retry_policy=policies.MODEL_CALL_RETRY,
    )
    return {"draft": asdict(draft)}


async def grade(state: AgentState) -> dict[str, Any]:
    _step("grade")
    request = _load(TaskRequest, state["request"])
    out = await workflow.execute_local_activity_method(
        AgentActivities.grade,
        GradeInput(
            tenant=request.tenant,
            question=request.question,
            draft=_load(Draft, state["draft"]),
            passages=_candidates(state["passages"]),
            round=state["round"],
            review=request.review,
        ),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    update: dict[str, Any] = {"grade": asdict(out)}
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
    """Wait for a reviewer when required: `interrupt` pauses the graph durably."""
    grade_out = _load(GradeOutput, state["grade"])
    if not grade_out.needs_review:
        return {"review": None}
    _step("review")
    draft = _load(Draft, state["draft"])
    resumed = interrupt({"answer": draft.answer, "reason": grade_out.review_reason})
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
        diff="\n".join(
            difflib.unified_diff(
                draft.answer.splitlines(), final.splitlines(), "draft", "edited", lineterm=""
            )
        ),
    )
    return {"review": asdict(record)}


async def finalize(state: AgentState) -> dict[str, Any]:
    _step("finalize")
    request = _load(TaskRequest, state["request"])
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
    )
    await workflow.execute_local_activity_method(
        AgentActivities.finalize,
        FinalizeInput(tenant=request.tenant, question=request.question, result=result),
        start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
        retry_policy=policies.FAST_STEP_RETRY,
    )
    return {"result": asdict(result)}


def make_agent_graph() -> StateGraph:
    """The agent graph; every node runs in the workflow and calls its activity explicitly."""
    in_workflow = {"execute_in": "workflow"}
    g = StateGraph(AgentState)
    for name, node in (
        ("plan", plan),
        ("retrieve", retrieve),
        ("rerank", rerank),
        ("generate", generate),
        ("grade", grade),
        ("review", review),
        ("finalize", finalize),
    ):
        g.add_node(name, node, metadata=dict(in_workflow))
    g.add_edge(START, "plan")
    g.add_edge("plan", "retrieve")
    g.add_edge("retrieve", "rerank")
    g.add_edge("rerank", "generate")
    g.add_edge("generate", "grade")
    g.add_conditional_edges("grade", route_after_grade, {"retrieve": "retrieve", "review": "review"})
    g.add_edge("review", "finalize")
    g.add_edge("finalize", END)
    return g

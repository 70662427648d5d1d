"""AgentWorkflow: one task, driven by the LangGraph agent, paused durably for review."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.converter import value_to_type
from temporalio.langgraph import graph

from workflows.agent_graph import AGENT_GRAPH

with workflow.unsafe.imports_passed_through():
    from keel.domain import ReviewAck, ReviewDecision, TaskRequest, TaskResult

# Registered on the Temporal server (`keel.temporal.SEARCH_ATTRIBUTES`); the queue lists by them.
KEEL_STATUS = SearchAttributeKey.for_keyword("KeelStatus")
KEEL_TENANT = SearchAttributeKey.for_keyword("KeelTenant")


@workflow.defn
class AgentWorkflow:
    def __init__(self) -> None:
        self._status = "running"
        self._decision: ReviewDecision | None = None

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        app = graph(AGENT_GRAPH).compile(checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": workflow.info().workflow_id}}
        state = await app.ainvoke({"request": asdict(request)}, config)
        while "__interrupt__" in state:
            payload = state["__interrupt__"][0].value
            self._set_status("awaiting_review", draft=payload["answer"], review_reason=payload["reason"])
            requested_at = workflow.now().isoformat()
            await workflow.wait_condition(lambda: self._decision is not None)
            decision, self._decision = self._decision, None
            assert decision is not None  # the wait condition guarantees it
            self._set_status("running")  # off the review queue as soon as someone decided
            resume = {"decision": asdict(decision), "requested_at": requested_at}
            state = await app.ainvoke(Command(resume=resume), config)
        result: TaskResult = value_to_type(TaskResult, state["result"])
        self._set_status(result.status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    def _set_status(self, status: str, **memo: Any) -> None:
        self._status = status
        workflow.upsert_search_attributes([KEEL_STATUS.value_set(status)])
        workflow.upsert_memo({"status": status, **memo})

    @workflow.update
    async def submit_review(self, decision: ReviewDecision) -> ReviewAck:
        # Taken at once, so a second concurrent decision fails validation.
        self._status = "deciding"
        self._decision = decision
        return ReviewAck(task_id=workflow.info().workflow_id, decision=decision.decision)

    @submit_review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if self._status != "awaiting_review":
            raise ValueError(f"task is not awaiting review (it is {self._status})")
        if not decision.reviewer.strip():
            raise ValueError("a decision needs the reviewer's name")
        if decision.decision == "reject" and not decision.reason.strip():
            raise ValueError("a rejection needs a reason")
        if decision.decision == "edit" and not decision.answer.strip():
            raise ValueError("an edit needs the edited answer")

    @workflow.query
    def status(self) -> str:
        return self._status

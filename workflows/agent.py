"""AgentWorkflow: one task, driven by the LangGraph agent, paused durably for review.

The review queue lives here: claims with leases, decisions as validated updates, the
deadline's escalation or rejection as durable timers. Every decision goes to the audit log.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from temporalio import workflow
from temporalio.converter import value_to_type
from temporalio.langgraph import graph

from workflows import policies
from workflows.agent_graph import AGENT_GRAPH, answer_diff

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from activities.review_queue import ReviewQueueActivities
    from keel.core.domain import (
        AuditEntry,
        Citation,
        ClaimAck,
        ReviewAck,
        ReviewClaim,
        ReviewDecision,
        ReviewDraft,
        ReviewPlan,
        ReviewQueueEntry,
        ReviewState,
        TaskRequest,
        TaskResult,
    )
    from keel.core.review_queue import claim_holder
    from keel.core.search_attributes import KEEL_STATUS

SYSTEM_ACTOR = "keel"  # who acts when a deadline passes
QUEUE_DRAFT_CHARS = 600  # of the draft in the queue's list; the item itself shows it whole


@workflow.defn
class AgentWorkflow:
    def __init__(self) -> None:
        self._status = "running"
        self._decision: ReviewDecision | None = None
        self._review: ReviewState | None = None
        self._plan: ReviewPlan | None = None
        self._tenant = ""
        self._draft: ReviewDraft | None = None  # the answer under review
        self._question = ""
        self._queue_stale = False  # a claim or release changed what the queue shows

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        self._tenant, self._question = request.tenant, request.question
        app = graph(AGENT_GRAPH).compile(checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": workflow.info().workflow_id}}
        state = await app.ainvoke({"request": asdict(request)}, config)
        review_round = 0
        while "__interrupt__" in state:
            payload = state["__interrupt__"][0].value
            review_round += 1
            self._plan = value_to_type(ReviewPlan, payload["plan"])
            self._draft = ReviewDraft(
                payload["answer"],
                [value_to_type(Citation, c) for c in payload["citations"]],
                payload.get("context_key", ""),
            )
            changes_used = review_round - 1
            now = workflow.now()
            self._review = ReviewState(
                round=review_round,
                group=self._plan.group,
                reasons=list(payload["reasons"]),
                requested_at=now.isoformat(),
                deadline=(now + timedelta(seconds=self._plan.deadline_s)).isoformat(),
                escalated=False,
                requester=request.requester,
                four_eyes=self._plan.four_eyes,
                changes_left=max(0, self._plan.max_change_rounds - changes_used),
            )
            self._set_status("awaiting_review")
            await self._publish_to_queue()
            try:
                decision = await self._decision_or_deadline()
            except asyncio.CancelledError:
                # A task cancelled while it waits must not stay in reviewers' queues.
                self._review = None
                await self._publish_to_queue()
                raise
            review = self._review
            self._review, self._draft = None, None
            self._set_status("running")  # off the review queue as soon as someone decided
            await self._publish_to_queue()
            resume = {
                "decision": asdict(decision),
                "requested_at": review.requested_at,
                "round": review.round,
                "group": review.group,
                # The decider's handling time starts at their claim (reviewer time is usage too).
                "claimed_at": review.claimed_at if review.claimed_by == decision.reviewer else "",
            }
            state = await app.ainvoke(Command(resume=resume), config)
        result: TaskResult = value_to_type(TaskResult, state["result"])
        self._set_status(result.status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _decision_or_deadline(self) -> ReviewDecision:
        """The reviewer's decision; at the deadline, escalation once (per policy), then rejection."""
        assert self._review is not None and self._plan is not None and self._draft is not None
        while True:
            left = datetime.fromisoformat(self._review.deadline) - workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None or self._queue_stale,
                    timeout=max(left, timedelta(milliseconds=1)),
                )
            except TimeoutError:
                if self._plan.on_deadline == "escalate" and not self._review.escalated:
                    await self._escalate()
                    continue
                reason = f"no decision by the deadline ({self._review.deadline})"
                await self._audit("expire", SYSTEM_ACTOR, reason=reason)
                return ReviewDecision(decision="reject", reviewer=SYSTEM_ACTOR, reason=reason)
            if self._decision is None:  # a claim or release: the queue shows it, then wait on
                await self._publish_to_queue()
                continue
            decision, self._decision = self._decision, None
            edit = decision.decision == "edit"
            kept = None if decision.citations is None else {c.chunk_id for c in decision.citations}
            await self._audit(
                decision.decision,
                decision.reviewer,
                reason=decision.reason,
                instruction=decision.instruction,
                diff=answer_diff(self._draft.answer, decision.answer) if edit else "",
                citations_removed=[c for c in self._cited() if kept is not None and c not in kept],
            )
            return decision

    async def _escalate(self) -> None:
        assert self._review is not None and self._plan is not None
        review, plan = self._review, self._plan
        previous = review.group
        review.escalated, review.group = True, plan.escalate_to
        review.claimed_by, review.lease_until, review.claimed_at = "", "", ""
        review.deadline = (workflow.now() + timedelta(seconds=plan.escalation_deadline_s)).isoformat()
        await self._publish_to_queue()
        await self._audit(
            "escalate", SYSTEM_ACTOR, reason=f"undecided by {previous} within {plan.deadline_s:g} s"
        )

    async def _publish_to_queue(self) -> None:
        """Write the task's line in the review queue's index (none when it is not under review).

        Only this coroutine writes it, in order: update handlers mark it stale and the wait
        loop publishes, so a late write can never bring a decided task's line back.
        """
        self._queue_stale = False
        entry = ReviewQueueEntry(
            tenant=self._tenant,
            task_id=workflow.info().workflow_id,
            question=self._question,
            draft=self._draft.answer[:QUEUE_DRAFT_CHARS] if self._draft else "",
            reason="; ".join(self._review.reasons) if self._review else "",
            review=self._review,
        )
        await workflow.execute_local_activity_method(
            ReviewQueueActivities.publish,
            entry,
            start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
            retry_policy=policies.AUDIT_RETRY,
        )

    async def _audit(self, action: str, actor: str, **details: Any) -> None:
        """Record a decision (or the deadline's action) in the audit log, outside Temporal."""
        assert self._review is not None
        entry = AuditEntry(
            task_id=workflow.info().workflow_id,
            tenant=self._tenant,
            round=self._review.round,
            action=action,
            actor=actor,
            at=workflow.now().isoformat(),
            group=self._review.group,
            review_reasons=list(self._review.reasons),
            **details,
        )
        await workflow.execute_activity_method(
            AuditActivities.record,
            entry,
            start_to_close_timeout=policies.AUDIT_TIMEOUT,
            retry_policy=policies.AUDIT_RETRY,
        )

    def _set_status(self, status: str) -> None:
        self._status = status
        workflow.upsert_search_attributes([KEEL_STATUS.value_set(status)])
        workflow.upsert_memo({"status": status})

    def _cited(self) -> list[str]:
        return [c.chunk_id for c in self._draft.citations] if self._draft else []

    def _holder(self) -> str:
        """Who holds an unexpired claim on the review ("" when nobody does)."""
        review = self._review
        return claim_holder(review.claimed_by, review.lease_until, workflow.now()) if review else ""

    def _check_open(self, reviewer: str) -> ReviewState:
        """The review a reviewer may act on, or ValueError saying why not (the API's 409)."""
        review = self._review
        if self._status != "awaiting_review" or review is None:
            raise ValueError(f"task is not awaiting review (it is {self._status})")
        if not reviewer.strip():
            raise ValueError("a decision needs the reviewer's name")
        holder = self._holder()
        if holder and holder != reviewer:
            raise ValueError(f"claimed by {holder} until {review.lease_until}")
        return review

    @workflow.update
    async def claim_review(self, claim: ReviewClaim) -> ClaimAck:
        """Hide the item from other reviewers for the policy's lease; claiming again renews it."""
        assert self._review is not None and self._plan is not None
        until = workflow.now() + timedelta(seconds=self._plan.lease_s)
        if self._review.claimed_by != claim.reviewer or not self._review.claimed_at:
            self._review.claimed_at = workflow.now().isoformat()  # a renewal keeps the first claim's time
        self._review.claimed_by, self._review.lease_until = claim.reviewer, until.isoformat()
        self._queue_stale = True
        task_id = workflow.info().workflow_id
        return ClaimAck(task_id, claim.reviewer, self._review.lease_until, self._review.round)

    @claim_review.validator
    def _validate_claim(self, claim: ReviewClaim) -> None:
        review = self._check_open(claim.reviewer)
        if review.four_eyes and review.requester and claim.reviewer == review.requester:
            raise ValueError(f"four-eyes: {claim.reviewer} requested this task and cannot review it")

    @workflow.update
    async def release_review(self, claim: ReviewClaim) -> ClaimAck:
        """Give a claimed item back to the queue before its lease ends."""
        assert self._review is not None
        self._review.claimed_by, self._review.lease_until, self._review.claimed_at = "", "", ""
        self._queue_stale = True
        return ClaimAck(workflow.info().workflow_id, claim.reviewer, "", self._review.round)

    @release_review.validator
    def _validate_release(self, claim: ReviewClaim) -> None:
        self._check_open(claim.reviewer)
        if self._holder() != claim.reviewer:
            raise ValueError(f"{claim.reviewer} holds no claim on this task")

    @workflow.update
    async def submit_review(self, decision: ReviewDecision) -> ReviewAck:
        # Taken at once, so a second concurrent decision fails validation.
        self._status = "deciding"
        self._decision = decision
        return ReviewAck(task_id=workflow.info().workflow_id, decision=decision.decision)

    @submit_review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        review = self._check_open(decision.reviewer)
        if decision.round and decision.round != review.round:
            raise ValueError(
                f"stale decision: it is for review round {decision.round}, "
                f"the task is at round {review.round}"
            )
        if review.four_eyes and review.requester and decision.reviewer == review.requester:
            raise ValueError(f"four-eyes: {decision.reviewer} requested this task and cannot decide on it")
        if decision.decision == "reject" and not decision.reason.strip():
            raise ValueError("a rejection needs a reason")
        if decision.decision == "edit" and not decision.answer.strip():
            raise ValueError("an edit needs the edited answer")
        if decision.decision == "request_changes":
            if not decision.instruction.strip():
                raise ValueError("a request for changes needs an instruction")
            if review.changes_left < 1:
                raise ValueError("no request-changes rounds left: approve, edit or reject")

    @workflow.query
    def status(self) -> str:
        return self._status

    @workflow.query
    def review_state(self) -> ReviewState | None:
        return self._review

    @workflow.query
    def review_draft(self) -> ReviewDraft | None:
        return self._draft

"""Workflow and activity payloads: one small dataclass in, one out, per activity.

They carry ids and scores, never whole passages or documents (those stay in the
stores or the blob store), so histories stay far below Temporal's limits: a chunk travels as
`ScoredChunk.ref()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from keel.core.chunks import Citation, ScoredChunk
from keel.core.usage import StepUsage, TaskUsage

ReviewMode = Literal["always", "never", "auto"]
# "request_changes" sends the task back to the agent with the reviewer's instruction.
Decision = Literal["approve", "reject", "edit", "request_changes"]
DeadlineAction = Literal["escalate", "reject"]
TaskStatus = Literal["running", "awaiting_review", "completed", "rejected", "failed", "cancelled"]

# --- the agent --------------------------------------------------------------------------


@dataclass
class ReviewOverrides:
    """A request's own review policy, over its tenant's (None: the tenant's value)."""

    grounding_threshold: float | None = None  # review an answer grounded below this
    max_cost: float | None = None  # review when the task's estimated model cost is over this
    sensitive_patterns: list[str] | None = None  # regexes; a match in the answer asks for review


@dataclass
class TaskRequest:
    question: str
    review: ReviewMode = "auto"
    tenant: str = "default"
    requester: str = ""  # who asked: with four-eyes on, they cannot approve the answer
    overrides: ReviewOverrides = field(default_factory=ReviewOverrides)
    key_id: str = ""  # the API key that submitted it: usage and budgets are kept per key
    cache: bool = True  # False: answer afresh, whatever the answer cache holds


@dataclass
class CacheLookupInput:
    tenant: str
    question: str
    review: ReviewMode
    overrides: ReviewOverrides = field(default_factory=ReviewOverrides)


@dataclass
class CacheInfo:
    """Whether a task's answer came from the answer cache, and from which task."""

    hit: bool = False
    source_task: str = ""  # the task that produced the answer
    similarity: float = 0.0  # of the two questions' embeddings
    approved_by: str = ""  # the reviewer who approved the source task's answer ("" if none needed)
    note: str = ""  # a miss's reason, or why the answer was not kept


@dataclass
class CacheLookupOutput:
    info: CacheInfo
    result: TaskResult | None = None  # the source task's result, on a hit
    usage: StepUsage | None = None  # None: the cache is off, nothing was looked up


@dataclass
class PlanInput:
    tenant: str
    question: str


@dataclass
class PlanOutput:
    queries: list[str]
    entities: list[str]
    pipeline_version: str = ""  # digest of the models, prompts and retrieval settings in force
    usage: StepUsage = field(default_factory=lambda: StepUsage("plan"))


@dataclass
class RetrieveInput:
    tenant: str
    queries: list[str]
    entities: list[str]
    round: int


@dataclass
class RetrieveOutput:
    candidates: list[ScoredChunk]
    usage: StepUsage = field(default_factory=lambda: StepUsage("retrieve"))


@dataclass
class RerankInput:
    tenant: str
    question: str
    candidates: list[ScoredChunk]


@dataclass
class RerankOutput:
    passages: list[ScoredChunk]
    reranker: str
    usage: StepUsage = field(default_factory=lambda: StepUsage("rerank"))


@dataclass
class GenerateInput:
    tenant: str
    question: str
    passages: list[ScoredChunk]
    instruction: str = ""  # a reviewer's request for changes to the last draft
    key_id: str = ""  # whose key budgets the call counts against
    round: int = 1  # retrieval round: the router reads it
    draft_citations: list[Citation] = field(default_factory=list)  # with `instruction`: the draft's


@dataclass
class Draft:
    answer: str
    citations: list[Citation]
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    usage: StepUsage = field(default_factory=lambda: StepUsage("generate"))
    # Why no model was called: a hard budget refused it (cost.on_hard_limit "review").
    budget_refusal: str = ""
    budget_warnings: list[str] = field(default_factory=list)  # soft budgets this call passed


@dataclass
class GradeInput:
    tenant: str
    question: str
    draft: Draft
    passages: list[ScoredChunk]
    round: int
    review: ReviewMode
    overrides: ReviewOverrides = field(default_factory=ReviewOverrides)
    cost: float = 0.0  # the task's model cost so far, this draft's included
    reviewed: bool = False  # a reviewer asked for changes: the new draft goes back to review


@dataclass
class ReviewContextInput:
    tenant: str
    citations: list[Citation]


@dataclass
class ReviewPlan:
    """How a review runs, resolved from the tenant's policy when the task needs one."""

    group: str  # the reviewers who see it first
    deadline_s: float  # undecided this long: `on_deadline`
    on_deadline: DeadlineAction
    escalate_to: str  # the group an escalated review goes to
    escalation_deadline_s: float  # after escalating, undecided this long: rejected
    four_eyes: bool  # the requester cannot approve or edit their own task's answer
    lease_s: float  # a claim hides the item from other reviewers this long
    max_change_rounds: int  # request-changes rounds allowed


@dataclass
class GradeOutput:
    grounding: float
    support: float
    relevance: float
    retry: bool  # retrieve again with `refined_query`
    refined_query: str
    entities: list[str]
    needs_review: bool
    review_reason: str  # the reasons joined, for lists and traces
    review_reasons: list[str] = field(default_factory=list)  # e.g. "weak grounding (0.31 < 0.50)"
    review_plan: ReviewPlan | None = None  # set when needs_review
    usage: StepUsage = field(default_factory=lambda: StepUsage("grade"))


@dataclass
class ReviewDecision:
    decision: Decision
    reviewer: str
    reason: str = ""
    answer: str = ""  # the edited answer, for `edit`
    citations: list[Citation] | None = None  # `edit`: the citations kept (None: all of the draft's)
    instruction: str = ""  # `request_changes`: what the agent should change
    round: int = 0  # the review round the reviewer saw (0: whichever is current); stale: 409


@dataclass
class ReviewDraft:
    """The answer under review and what it cites (the reviewer page's main content)."""

    answer: str
    citations: list[Citation]
    context_key: str = ""  # blob of the cited documents' chunks, to show the passages in place


@dataclass
class ReviewClaim:
    reviewer: str


@dataclass
class ClaimAck:
    task_id: str
    reviewer: str
    lease_until: str  # ISO time; after it the item is back in everyone's queue
    round: int


@dataclass
class ReviewState:
    """The review a task waits for, as the queue and the reviewer page show it."""

    round: int  # 1, then +1 per request-changes round
    group: str
    reasons: list[str]
    requested_at: str
    deadline: str
    escalated: bool
    requester: str
    four_eyes: bool
    claimed_by: str = ""
    lease_until: str = ""
    changes_left: int = 0
    claimed_at: str = ""  # when the current holder first claimed it: their handling time starts


@dataclass
class ReviewRecord:
    decision: Decision
    reviewer: str
    decided_at: str
    reason: str
    original_answer: str
    final_answer: str
    changed: bool
    diff: str
    requested_at: str = ""  # when the task started waiting for a reviewer
    waited_s: float = 0.0
    round: int = 1
    instruction: str = ""  # request_changes: what the reviewer asked for
    group: str = ""  # the reviewer group it was decided in (after an escalation: escalate_to)
    claimed_at: str = ""  # when the deciding reviewer claimed it ("" when they decided unclaimed)


@dataclass
class ReviewAck:
    task_id: str
    decision: Decision


@dataclass
class ReviewQueueEntry:
    """A task's line in the review queue; `review` None takes it off the queue."""

    tenant: str
    task_id: str
    question: str
    draft: str  # the start of the draft: enough for a list
    reason: str
    review: ReviewState | None


@dataclass
class AuditEntry:
    """One decision on a task's review: who, when, what changed, why. Kept outside Temporal."""

    task_id: str
    tenant: str
    round: int
    action: str  # a Decision, or "escalate" / "expire" (the deadline's, by "keel")
    actor: str  # the reviewer, or "keel"
    at: str  # ISO time, the workflow's clock
    reason: str = ""
    instruction: str = ""
    group: str = ""
    review_reasons: list[str] = field(default_factory=list)
    diff: str = ""  # unified diff of an edited answer
    citations_removed: list[str] = field(default_factory=list)  # chunk ids an edit dropped


@dataclass
class TaskResult:
    status: Literal["completed", "rejected"]
    answer: str | None
    citations: list[Citation]
    grounding: float
    rounds: int
    model: str
    review: ReviewRecord | None = None
    review_reason: str = ""
    reviews: list[ReviewRecord] = field(default_factory=list)  # every round, oldest first
    usage: TaskUsage = field(default_factory=TaskUsage)  # per step and total, with the pipeline version
    cache: CacheInfo = field(default_factory=CacheInfo)


@dataclass
class AccountInput:
    """A finished task's usage to complete (reviewers' time) and roll up."""

    tenant: str
    key_id: str
    pipeline_version: str
    steps: list[StepUsage]
    reviews: list[ReviewRecord] = field(default_factory=list)


@dataclass
class FinalizeInput:
    tenant: str
    question: str
    result: TaskResult
    key_id: str = ""
    review: ReviewMode = "auto"  # the task's review mode: an answer is cached under its policy
    overrides: ReviewOverrides = field(default_factory=ReviewOverrides)
    cache: bool = True  # False: the task bypassed the cache (its answer is still kept)


# --- ingestion --------------------------------------------------------------------------


@dataclass
class DocumentRef:
    """A document waiting to be indexed: its text sits in the blob store under `blob_key`."""

    tenant: str
    document_id: str
    title: str
    blob_key: str
    source: str = "upload"


@dataclass
class IndexedDocument:
    document_id: str
    version: str
    chunks: int
    entities: int
    removed_chunks: int
    embedded_chunks: int = 0  # chunks the encoder ran on; the rest reused stored vectors


@dataclass
class DeleteDocument:
    tenant: str
    document_id: str


@dataclass
class IngestBatchInput:
    tenant: str
    documents: list[DocumentRef]


@dataclass
class IngestBatchOutput:
    indexed: list[IndexedDocument]
    failed: dict[str, str]  # document id → reason


# --- Source syncs -------------------------------------------------------------------------

# Failure reasons a sync keeps (it counts them all): thousands must not bloat its payloads.
FAILURES_KEPT = 100


@dataclass
class SyncRequest:
    """Sync one registered source now. Its spec is read from the registry, not passed here."""

    tenant: str
    source_id: str


@dataclass
class SyncPlan:
    """What a scan found against what is indexed; the file lists travel as blobs."""

    scanned: int
    changed_key: str  # blob {"files": [SourceFile as dict, ...]}: new or changed files
    changed: int  # files
    unchanged: int  # documents of files whose hash is the one indexed
    deleted_key: str  # blob {"documents": [document id, ...]}: their files are gone
    deleted: int
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> why, the first FAILURES_KEPT
    oldest_unsynced_ns: int = 0
    unreadable_count: int = 0  # all of them


@dataclass
class FileBatch:
    """Files `start` to `end` (exclusive) of a plan's changed list."""

    tenant: str
    source_id: str
    changed_key: str
    start: int
    end: int
    run_id: str = ""  # the sync's run: its live progress is kept under it


@dataclass
class BatchResult:
    files: int = 0
    indexed: int = 0  # documents written
    unchanged: int = 0  # documents whose text had not changed (e.g. a file touched, or re-saved)
    removed: int = 0  # records gone from a JSON/JSONL file that was edited
    embedded_chunks: int = 0
    reused_chunks: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason


@dataclass
class RemoveDocuments:
    tenant: str
    documents_key: str  # blob {"documents": [...]}


@dataclass
class SyncRecord:
    """The latest sync of a source: when, by which run, and what it found and did."""

    run_id: str = ""
    status: str = "never"  # never | running | completed | failed
    started_at: str = ""
    finished_at: str = ""
    scanned: int = 0  # files; the counts below are documents (a JSON/JSONL file holds several)
    indexed: int = 0  # documents written (new or changed)
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    embedded_chunks: int = 0
    reused_chunks: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # path -> reason, the first FAILURES_KEPT
    # The oldest modification among files changed but not yet indexed when the sync started:
    # how far behind its source the index was.
    oldest_unsynced_ns: int = 0
    changed_files: int = 0  # new or changed files the plan found: what indexing works through
    files_done: int = 0  # of those, how many are indexed (or failed) so far

    def add_batch(self, batch: BatchProgress) -> None:
        """Add one batch's counts (the workflow: a finished batch; the live view: a running one)."""
        self.files_done += batch.files
        self.indexed += batch.indexed
        # A touched file whose text did not change counts as unchanged, like an unchanged file.
        self.unchanged += batch.unchanged
        self.deleted += batch.removed
        self.failed += batch.failed
        self.embedded_chunks += batch.embedded_chunks
        self.reused_chunks += batch.reused_chunks

    def keep_failures(self, failures: dict[str, str]) -> None:
        """Keep the first FAILURES_KEPT reasons (`failed` counts them all): thousands of failing
        files must not grow a workflow's payload past Temporal's limits."""
        for path, reason in failures.items():
            if len(self.failures) >= FAILURES_KEPT:
                break
            self.failures[path] = reason


@dataclass
class BatchProgress:
    """How far one batch of a running sync got: written after each group of files it indexes."""

    run_id: str
    files: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    embedded_chunks: int = 0
    reused_chunks: int = 0

    @classmethod
    def of(cls, result: BatchResult, run_id: str) -> BatchProgress:
        return cls(
            run_id,
            files=result.files,
            indexed=result.indexed,
            unchanged=result.unchanged,
            removed=result.removed,
            failed=len(result.failed),
            embedded_chunks=result.embedded_chunks,
            reused_chunks=result.reused_chunks,
        )


@dataclass
class RecordSync:
    tenant: str
    source_id: str
    record: SyncRecord

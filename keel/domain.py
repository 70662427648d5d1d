"""Workflow and activity payloads: one small dataclass in, one out, per activity.

They carry ids and scores, never whole passages or documents (those stay in the
stores or the blob store), so histories stay far below Temporal's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from keel.models.base import Citation

ReviewMode = Literal["always", "never", "auto"]
Decision = Literal["approve", "reject", "edit"]
TaskStatus = Literal["running", "awaiting_review", "completed", "rejected", "failed", "cancelled"]

__all__ = ["Citation"]


# --- the agent --------------------------------------------------------------------------


@dataclass
class TaskRequest:
    question: str
    review: ReviewMode = "auto"
    tenant: str = "default"


@dataclass
class Candidate:
    chunk_id: str
    document_id: str
    score: float
    sources: list[str] = field(default_factory=list)
    # What retrieval knew of it (dense cosine, BM25, fused, graph boost): the reranker's features.
    signals: dict[str, float] = field(default_factory=dict)


@dataclass
class PlanInput:
    tenant: str
    question: str


@dataclass
class PlanOutput:
    queries: list[str]
    entities: list[str]


@dataclass
class RetrieveInput:
    tenant: str
    queries: list[str]
    entities: list[str]
    round: int


@dataclass
class RetrieveOutput:
    candidates: list[Candidate]


@dataclass
class RerankInput:
    tenant: str
    question: str
    candidates: list[Candidate]


@dataclass
class RerankOutput:
    passages: list[Candidate]
    reranker: str


@dataclass
class GenerateInput:
    tenant: str
    question: str
    passages: list[Candidate]


@dataclass
class Draft:
    answer: str
    citations: list[Citation]
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass
class GradeInput:
    tenant: str
    question: str
    draft: Draft
    passages: list[Candidate]
    round: int
    review: ReviewMode


@dataclass
class GradeOutput:
    grounding: float
    support: float
    relevance: float
    retry: bool  # retrieve again with `refined_query`
    refined_query: str
    entities: list[str]
    needs_review: bool
    review_reason: str


@dataclass
class ReviewDecision:
    decision: Decision
    reviewer: str
    reason: str = ""
    answer: str = ""  # the edited answer, for `edit`


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


@dataclass
class ReviewAck:
    task_id: str
    decision: Decision


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


@dataclass
class FinalizeInput:
    tenant: str
    question: str
    result: TaskResult


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

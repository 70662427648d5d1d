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


@dataclass
class IngestBatchInput:
    tenant: str
    documents: list[DocumentRef]


@dataclass
class IngestBatchOutput:
    indexed: list[IndexedDocument]
    failed: dict[str, str]  # document id → reason

"""Request and response schemas of the REST contract; internal objects never leave as-is."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_DOCUMENT_CHARS = 2_000_000


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    return value


class DocumentIn(BaseModel):
    id: str | None = Field(
        default=None, pattern=DOCUMENT_ID_PATTERN, description="Omit to derive one from the content"
    )
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("title", "text")
    @classmethod
    def _no_blank(cls, value: str, info: Any) -> str:
        return _not_blank(value, info.field_name)


class DocumentAccepted(BaseModel):
    id: str
    ingestion_id: str


class DocumentOut(BaseModel):
    id: str
    status: Literal["pending", "indexed", "failed"]
    reason: str | None = None
    chunks: int | None = None
    version: str | None = None
    ingestion_id: str


class TaskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    review: Literal["always", "never", "auto"] = "auto"

    @field_validator("question")
    @classmethod
    def _no_blank(cls, value: str) -> str:
        return _not_blank(value, "question")


class TaskAccepted(BaseModel):
    id: str


TaskStatusLiteral = Literal["running", "awaiting_review", "completed", "rejected", "failed", "cancelled"]


class CitationOut(BaseModel):
    document_id: str
    chunk_id: str
    quote: str


class ReviewOut(BaseModel):
    decision: Literal["approve", "reject", "edit"]
    reviewer: str
    decided_at: str
    requested_at: str
    waited_s: float
    reason: str
    original_answer: str
    final_answer: str
    changed: bool
    diff: str


class TaskResultOut(BaseModel):
    answer: str | None
    citations: list[CitationOut]
    review: ReviewOut | None
    grounding: float
    rounds: int
    model: str


class TaskOut(BaseModel):
    id: str
    question: str | None = None
    status: TaskStatusLiteral
    step: str | None = None
    result: TaskResultOut | None = None
    reason: str | None = None


class TaskList(BaseModel):
    tasks: list[TaskOut]


class ReviewItem(BaseModel):
    task_id: str
    question: str | None
    draft: str | None
    reason: str | None


class ReviewQueue(BaseModel):
    items: list[ReviewItem]


class ReviewIn(BaseModel):
    decision: Literal["approve", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=4000)
    answer: str | None = Field(default=None, max_length=20_000)

    @model_validator(mode="after")
    def _decision_needs(self) -> ReviewIn:
        _not_blank(self.reviewer, "reviewer")
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a rejection needs a reason")
        if self.decision == "edit" and not (self.answer or "").strip():
            raise ValueError("an edit needs the edited answer")
        return self


class ReviewDone(BaseModel):
    task_id: str
    decision: str


class ObservationOut(BaseModel):
    id: str
    parent_id: str | None
    trace_id: str
    name: str
    type: str
    start_time: str
    end_time: str | None
    latency_ms: float | None
    input: Any
    output: Any
    model: str | None
    usage: dict[str, int]
    cost: float | None
    level: str
    status_message: str | None


class TraceOut(BaseModel):
    task_id: str
    trace_id: str
    observations: list[ObservationOut]

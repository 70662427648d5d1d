"""Request and response schemas of the REST contract; internal objects never leave as-is."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from api.validation import CheckedIn, check_path
from keel.core.review_queue import Show
from keel.core.settings import check_patterns

DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_DOCUMENT_CHARS = 2_000_000


class FieldErrorOut(BaseModel):
    loc: list[str | int] = Field(description='Where: "body", "query" or "path", then the field')
    msg: str
    type: str
    input: str | None = Field(default=None, description="A short excerpt of the refused value")


class ErrorOut(BaseModel):
    """The body of every non-2xx answer."""

    detail: str = Field(description="What went wrong, in words")
    errors: list[FieldErrorOut] = Field(
        default_factory=list, description="422: each failing field (the first 20); empty otherwise"
    )


# Long enough for any real one; short enough that a store, a log line or a path never gets a novel.
MAX_ID_CHARS = 128
MAX_PATH_CHARS = 4096
MAX_GLOB_CHARS = 512
MAX_GLOBS = 100
Glob = Annotated[str, Field(max_length=MAX_GLOB_CHARS)]


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    return value


class DocumentIn(CheckedIn):
    free_text: ClassVar[frozenset[str]] = frozenset({"text"})

    id: str | None = Field(
        default=None, pattern=DOCUMENT_ID_PATTERN, description="Omit to derive one from the content"
    )
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free labels: at most 200 items, 4 levels deep, strings of 2,000 characters",
    )

    @field_validator("title", "text")
    @classmethod
    def _no_blank(cls, value: str, info: Any) -> str:
        return _not_blank(value, info.field_name)


class DocumentAccepted(BaseModel):
    id: str
    ingestion_id: str


class DocumentDeleted(BaseModel):
    id: str
    deleted: bool


class DocumentOut(BaseModel):
    id: str
    status: Literal["pending", "indexed", "failed"]
    reason: str | None = None
    chunks: int | None = None
    version: str | None = None
    ingestion_id: str


# People's and groups' names: no quotes, backslashes or control characters (they are shown on
# pages and written into the audit trail as they are).
NAME_PATTERN = r"^[^'\\\x00-\x1f]{1,200}$"
_OPTIONAL_NAME = r"^[^'\\\x00-\x1f]{0,200}$"


def _person(value: str) -> str:
    return _not_blank(value, "reviewer").strip()


# A reviewer's name as every route takes it: the pattern, not blank, trimmed.
ReviewerName = Annotated[str, Field(pattern=NAME_PATTERN), AfterValidator(_person)]


class ReviewPolicyIn(CheckedIn):
    """This request's review checks, over the tenant's (omit a field: the tenant's value)."""

    grounding_threshold: float | None = Field(default=None, ge=0, le=1)
    max_cost: float | None = Field(default=None, ge=0, description="Review when the model cost is over this")
    sensitive_patterns: list[Annotated[str, Field(max_length=1000)]] | None = Field(
        default=None, max_length=50, description="Regexes; a match in the answer sends it to review"
    )

    @field_validator("sensitive_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str] | None) -> list[str] | None:
        return None if patterns is None else check_patterns(patterns)


class TaskIn(CheckedIn):
    free_text: ClassVar[frozenset[str]] = frozenset({"question"})

    question: str = Field(min_length=1, max_length=4000)
    review: Literal["always", "never", "auto"] = "auto"
    requester: Annotated[str, AfterValidator(str.strip)] = Field(
        default="",
        pattern=_OPTIONAL_NAME,
        description="Who asks is the key's principal: omit this, or give that same name",
    )
    review_policy: ReviewPolicyIn = Field(default_factory=ReviewPolicyIn)
    cache: bool = Field(
        default=True,
        description="false: answer afresh, bypassing the answer cache (the new answer is still kept)",
    )

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
    version: str = Field(description="Content version of the document the quote was read from")
    file_hash: str = Field(description="Hash of the file (or upload) of that version; empty if unknown")
    modified_at: str | None = Field(description="That file's modification time (ISO 8601, UTC)")
    stale: bool = Field(description="The document changed or was deleted since the task cited it")
    stale_reason: Literal["", "changed", "deleted"]
    current_version: str | None = Field(description="The document's version now; null once deleted")


class ReviewOut(BaseModel):
    decision: Literal["approve", "reject", "edit", "request_changes"]
    reviewer: str
    decided_at: str
    requested_at: str
    waited_s: float
    reason: str
    original_answer: str
    final_answer: str
    changed: bool
    diff: str
    round: int = 1
    instruction: str = ""
    group: str = ""


class StepUsageOut(BaseModel):
    step: str = Field(description="plan, retrieve, rerank, generate, grade, review or cache")
    kind: Literal["model", "embed", "rerank", "review", "none"]
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    texts: int = Field(description="Texts encoded, or (question, passage) pairs scored")
    latency_ms: float = Field(description="A review's: the reviewer's handling time (claim to decision)")
    cpu_ms: float
    cost: float
    priced: bool = Field(description="false: no price in the table matched the model")
    tokens_counted: bool = Field(description="true: the provider reported no usage; Keel counted tokens")
    route: str = Field(description="generate: which model the router chose, and why")
    waited_ms: float = Field(description="review: from the request for review to the decision")


class TaskUsageOut(BaseModel):
    pipeline_version: str = Field(description="Digest of the models, prompts and retrieval settings in force")
    steps: list[StepUsageOut]
    cost: float
    input_tokens: int
    output_tokens: int
    latency_ms: float


class CacheOut(BaseModel):
    hit: bool
    source_task: str = Field(description="On a hit: the task whose answer this is")
    similarity: float
    approved_by: str = Field(description="The reviewer who approved the source answer, if it needed one")
    note: str = Field(description="On a miss: why no earlier answer was used")


class TaskResultOut(BaseModel):
    answer: str | None
    citations: list[CitationOut]
    stale: bool = Field(description="Any citation is stale: checked when the task is read")
    review: ReviewOut | None
    reviews: list[ReviewOut] = Field(default_factory=list, description="Every review round, oldest first")
    grounding: float
    rounds: int
    model: str
    usage: TaskUsageOut
    cache: CacheOut


class TaskOut(BaseModel):
    id: str
    question: str | None = None
    status: TaskStatusLiteral
    step: str | None = None
    result: TaskResultOut | None = None
    reason: str | None = None


class TaskList(BaseModel):
    tasks: list[TaskOut]


ReviewFilter = Show


class ReviewStateOut(BaseModel):
    round: int
    group: str
    reasons: list[str]
    requested_at: str
    deadline: str
    escalated: bool
    requester: str
    four_eyes: bool
    claimed_by: str = Field(description="Who holds the claim; empty when unclaimed or the lease ended")
    lease_until: str
    changes_left: int


class ReviewItem(BaseModel):
    task_id: str
    question: str | None
    draft: str | None
    reason: str | None
    age_s: float = Field(description="Seconds since the task started waiting")
    review: ReviewStateOut


class ReviewQueue(BaseModel):
    items: list[ReviewItem]


class ReviewDetail(BaseModel):
    """One item as a reviewer sees it: the question, the draft, what it cites, where to dig."""

    task_id: str
    question: str | None
    draft: str
    citations: list[CitationOut]
    review: ReviewStateOut
    trace_url: str = Field(description="The task's trace: Langfuse when configured, else Keel's own")
    temporal_url: str = Field(description="The run in the Temporal UI")
    context_key: str = Field(description="Blob of the cited documents' text, for the reviewer page")


class ClaimIn(CheckedIn):
    reviewer: ReviewerName | None = Field(
        default=None, description="The reviewer is the key's principal: omit this, or give that same name"
    )


class ClaimOut(BaseModel):
    task_id: str
    reviewer: str
    lease_until: str
    round: int


class ReviewIn(CheckedIn):
    free_text: ClassVar[frozenset[str]] = frozenset({"reason", "answer", "instruction"})

    decision: Literal["approve", "reject", "edit", "request_changes"]
    reviewer: ReviewerName | None = Field(
        default=None, description="The reviewer is the key's principal: omit this, or give that same name"
    )
    reason: str | None = Field(default=None, max_length=4000)
    answer: str | None = Field(default=None, max_length=20_000)
    citations: list[Annotated[str, Field(max_length=300)]] | None = Field(
        default=None,
        max_length=200,
        description="edit: chunk ids of the draft's citations to keep (omit: all)",
    )
    instruction: str | None = Field(
        default=None, max_length=4000, description="request_changes: what the agent should change"
    )
    round: int = Field(default=0, ge=0, description="The review round decided on (0: the current one)")

    @model_validator(mode="after")
    def _decision_needs(self) -> ReviewIn:
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a rejection needs a reason")
        if self.decision == "edit" and not (self.answer or "").strip():
            raise ValueError("an edit needs the edited answer")
        if self.decision == "request_changes" and not (self.instruction or "").strip():
            raise ValueError("a request for changes needs an instruction")
        return self


class ReviewDone(BaseModel):
    task_id: str
    decision: str


class AuditEntryOut(BaseModel):
    task_id: str
    round: int
    action: str = Field(
        description="approve, reject, edit, request_changes; escalate, expire or cache_hit by keel"
    )
    actor: str
    at: str
    reason: str
    instruction: str
    group: str
    review_reasons: list[str]
    diff: str = Field(description="Unified diff of an edited answer")
    citations_removed: list[str]


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]


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


# --- sources ------------------------------------------------------------------------------


class SourceIn(CheckedIn):
    path: str = Field(
        min_length=1, max_length=MAX_PATH_CHARS, description="A folder on the machine the workers run on"
    )
    id: str = Field(default="", max_length=MAX_ID_CHARS, description="Omit to use the folder's name")
    every: str = Field(
        default="", max_length=32, description='Sync interval like "10m"; omit to sync only on demand'
    )
    include: list[Glob] = Field(
        default_factory=list, max_length=MAX_GLOBS, description="Globs of files to index; omit for all"
    )
    exclude: list[Glob] = Field(default_factory=list, max_length=MAX_GLOBS)
    json_text_field: str = Field(default="text", max_length=200)

    @field_validator("path")
    @classmethod
    def _path_fits(cls, path: str) -> str:
        return check_path(path)


class SyncOut(BaseModel):
    """A source's last (or running) sync: its counts, live while it runs, and its pace."""

    run_id: str
    status: Literal["never", "running", "completed", "failed"]
    started_at: str
    finished_at: str
    scanned: int
    changed_files: int
    files_done: int
    indexed: int
    unchanged: int
    deleted: int
    failed: int
    embedded_chunks: int
    reused_chunks: int
    failures: dict[str, str] = Field(description="path -> reason, the first 100")
    index_lag_s: float | None = Field(description="Age, when the sync started, of the oldest change it found")
    elapsed_s: float
    chunks_per_s: float
    documents_per_s: float
    eta_s: float | None


class SourceOut(BaseModel):
    id: str
    root: str
    include: list[str]
    exclude: list[str]
    every_s: int
    json_text_field: str
    last_sync: SyncOut


class SyncStarted(BaseModel):
    source_id: str
    workflow_id: str
    run_id: str


RoleName = Literal["submitter", "reviewer", "ingester", "auditor", "admin"]


class MeOut(BaseModel):
    """The caller as their key makes them."""

    tenant: str
    name: str
    roles: list[str]
    key_id: str


class KeyIn(CheckedIn):
    name: str = Field(
        min_length=1, max_length=64, description="The principal: lower-case letters, digits, . _ @ -"
    )
    roles: list[Literal["submitter", "reviewer", "ingester", "auditor", "admin"]] = Field(
        min_length=1, max_length=5
    )


class KeyOut(BaseModel):
    id: str
    tenant: str
    name: str
    roles: list[str]
    created_at: str
    revoked_at: str | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


class KeyList(BaseModel):
    keys: list[KeyOut]


class UsageRowOut(BaseModel):
    """Usage summed over one combination of the grouped dimensions; the others are ""."""

    tenant: str = ""
    key: str = Field(default="", description="The API key id that submitted the work")
    day: str = Field(default="", description="UTC day, ISO 8601")
    model: str = Field(default="", description='The model that did the work; "human" for a review')
    step: str = Field(
        default="", description='plan, retrieve, rerank, generate, grade, review, cache; "task" counts tasks'
    )
    pipeline: str = ""
    tasks: int = Field(default=0, description="Tasks finished")
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    texts: int = Field(default=0, description="Texts encoded, or (query, passage) pairs scored")
    latency_ms: float = 0.0
    cpu_ms: float = 0.0
    waited_ms: float = Field(default=0.0, description="Review: from the request for review to the decision")
    cost: float = Field(default=0.0, description="In `currency`; a review's is the reviewer's time")


class UsageOut(BaseModel):
    """Who spent what over a range of UTC days (inclusive), largest cost first."""

    model_config = ConfigDict(populate_by_name=True)

    currency: str
    from_: str = Field(alias="from", description="First UTC day, ISO 8601")
    to: str = Field(description="Last UTC day, ISO 8601 (inclusive)")
    group_by: list[str]
    rows: list[UsageRowOut]
    total: UsageRowOut = Field(description="Every row summed")

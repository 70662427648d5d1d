"""Interactive tasks while a bulk ingestion runs: p50 latency against a quiet baseline, one run.

Starts FalkorDB, the Temporal dev server and one worker process's two workers (agent queue and
ingest queue, as `keel worker` runs them) in this process, indexes the demo corpus, then times
`--tasks` demo questions one at a time (review never, the extractive answerer) on a quiet system;
then starts an ingestion of `--documents` synthetic documents (2-5 KB each) and times as many
questions again while it runs. Goal: the loaded p50 at most 1.5x the quiet one.

    .venv/bin/python bench/interactive_under_ingest.py [--tasks 20] [--documents 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

from harness import NOISY_SHARE, Usage, start_platform, verdict
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR, demo_questions
from keel.control.documents import start_batch
from keel.control.tasks import start_task
from keel.core.domain import TaskRequest, TaskResult
from keel.core.settings import Settings

GOAL_RATIO = 1.5
WARMUP_TASKS = 3
WORDS = [
    *("shipment", "carrier", "warehouse", "route", "manifest", "customs", "pallet", "freight"),
    *("invoice", "depot", "schedule", "driver", "dispatch", "inventory", "tracking", "delivery"),
    *("consignee", "tariff", "container", "harbour", "ledger"),
]


def synthetic_documents(count: int, seed: int = 15) -> list[tuple[str, str, str]]:
    """(id, title, text) of `count` documents of 2-5 KB of plausible prose, a few names each."""
    rng = random.Random(seed)
    documents = []
    for i in range(count):
        size = rng.randint(2000, 5000)
        sentences: list[str] = []
        while sum(len(s) + 1 for s in sentences) < size:
            words = rng.choices(WORDS, k=rng.randint(8, 18))
            sentences.append(f"Depot {rng.randint(1, 400)} {' '.join(words)}.")
        documents.append((f"bulk-{i:04d}", f"Bulk report {i}", " ".join(sentences)))
    return documents


async def one_task(client: Client, settings: Settings, question: str) -> float:
    """Seconds from the start request to the task's result."""
    started = time.perf_counter()
    request = TaskRequest(question, review="never", tenant=settings.tenant)
    task_id = await start_task(client, request, settings.temporal.task_queue)
    result = await client.get_workflow_handle(task_id, result_type=TaskResult).result()
    if not result.answer:
        raise RuntimeError(f"task {task_id} gave no answer")
    return time.perf_counter() - started


async def timed_tasks(client: Client, settings: Settings, count: int) -> list[float]:
    questions = [q["question"] for q in demo_questions()]
    return [await one_task(client, settings, questions[i % len(questions)]) for i in range(count)]


async def index_demo_corpus(client: Client, settings: Settings) -> None:
    documents = load_documents(CORPUS_DIR, {".md"})
    handle = await start_batch(client, settings, documents, batch_id=f"bench-demo-{uuid.uuid4().hex[:8]}")
    result = await handle.result()
    if result.failed:
        raise RuntimeError(f"demo corpus: {result.failed}")


async def measure(tasks: int, documents: int, finish: bool, directory: Path) -> int:
    usage = Usage()
    async with AsyncExitStack() as stack:
        platform = await start_platform(stack, directory, "interactive")
        client, settings = platform.client, platform.settings
        print(
            f"agent queue {settings.temporal.task_queue}, ingest queue {settings.temporal.ingest_queue}",
            flush=True,
        )
        await usage.step("index demo corpus", index_demo_corpus(client, settings))
        await timed_tasks(client, settings, WARMUP_TASKS)
        quiet = await usage.step("quiet tasks", timed_tasks(client, settings, tasks))
        bulk = synthetic_documents(documents)
        batch = await start_batch(client, settings, bulk, batch_id=f"bench-bulk-{uuid.uuid4().hex[:8]}")
        ingest_started = time.perf_counter()
        print(f"ingesting {documents} documents; timing {tasks} tasks meanwhile", flush=True)
        dense = platform.components.dense  # counts the texts encoded, ingestion's among them
        encoded_before = dense.encode_calls
        loaded = await usage.step("tasks under ingestion", timed_tasks(client, settings, tasks))
        encoded_meanwhile = dense.encode_calls - encoded_before
        loaded_s = time.perf_counter() - ingest_started
        still_running = not await _finished(batch)
        indexed = await _indexed_documents(client)
        if finish:
            await usage.step("rest of ingestion", batch.result())
    report(
        quiet,
        loaded,
        still_running,
        encoded_meanwhile,
        indexed,
        documents,
        loaded_s,
    )
    usage.print()
    if usage.others_share() > NOISY_SHARE:
        print(f"NOISY: other processes took up to {usage.others_share():.0%} of the machine in a step")
    return 0


async def _indexed_documents(client: Client) -> int:
    """Documents whose ingestion completed so far (Temporal's visibility: may lag a moment)."""
    query = "WorkflowType='IngestDocumentWorkflow' AND ExecutionStatus='Completed'"
    return (await client.count_workflows(query)).count


async def _finished(handle: WorkflowHandle) -> bool:
    return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING


def report(
    quiet: list[float],
    loaded: list[float],
    still_running: bool,
    encoded: int,
    indexed: int,
    documents: int,
    ingest_s: float,
) -> None:
    quiet_p50, loaded_p50 = statistics.median(quiet), statistics.median(loaded)
    ratio = loaded_p50 / quiet_p50
    print(
        f"ingestion: {indexed} documents indexed (demo corpus included) {ingest_s:.1f}s after the "
        f"{documents}-document batch started; {encoded} texts encoded while the loaded tasks ran; "
        f"the batch was {'still running' if still_running else 'FINISHED'} when the last loaded task ended"
    )
    for name, latencies, p50 in (("quiet", quiet, quiet_p50), ("under ingestion", loaded, loaded_p50)):
        print(
            f"{name + ':':<17} {len(latencies)} tasks, p50 {p50:.3f}s "
            f"(min {min(latencies):.3f}, max {max(latencies):.3f})"
        )
    print(f"ratio {ratio:.2f}x (goal <= {GOAL_RATIO}x): {verdict(ratio <= GOAL_RATIO and still_running)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument(
        "--finish", action="store_true", help="Wait for the whole ingestion (else stop once measured)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as directory:
        return asyncio.run(measure(args.tasks, args.documents, args.finish, Path(directory)))


if __name__ == "__main__":
    sys.exit(main())

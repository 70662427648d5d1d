"""Tasks under concurrent load against a running Keel (`make up`): throughput and latency.

Submits `--tasks` demo questions over REST, `--concurrency` at a time (review "never"),
and prints tasks/s with end-to-end latency p50/p95 beside a one-at-a-time baseline
measured in the same run (ratios, since these machines are shared and noisy).

    .venv/bin/python bench/concurrent_tasks.py [--tasks 48] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import httpx
from harness import BenchError, add_api_key_argument, api_key_headers, submitted_task

from keel.app.demo import demo_questions


async def one(client: httpx.AsyncClient, question: str) -> float:
    started = time.perf_counter()
    task_id = submitted_task(await client.post("/v1/tasks", json={"question": question, "review": "never"}))
    while True:
        view = (await client.get(f"/v1/tasks/{task_id}")).json()
        if view["status"] not in ("running", "awaiting_review"):
            if view["status"] != "completed":
                raise RuntimeError(f"task {task_id} ended {view['status']}")
            return time.perf_counter() - started
        await asyncio.sleep(0.1)  # gentle polling: the benchmark shares the 2 cores with Keel


async def run(base: str, headers: dict[str, str], tasks: int, concurrency: int) -> tuple[float, list[float]]:
    questions = [q["question"] for q in demo_questions()]
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:

        async def bounded(i: int) -> float:
            async with slots:
                return await one(client, questions[i % len(questions)])

        started = time.perf_counter()
        latencies = await asyncio.gather(*(bounded(i) for i in range(tasks)))
        return time.perf_counter() - started, list(latencies)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    add_api_key_argument(parser)
    parser.add_argument("--tasks", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    try:
        headers = api_key_headers(args.api_key)
        for concurrency in (1, args.concurrency):
            count = args.tasks if concurrency > 1 else max(8, args.tasks // 4)
            elapsed, latencies = asyncio.run(run(args.base, headers, count, concurrency))
            print(
                f"concurrency {concurrency:>3}: {count} tasks in {elapsed:.1f}s = "
                f"{count / elapsed:.2f} tasks/s; "
                f"latency p50 {statistics.median(latencies):.2f}s p95 {p95(latencies):.2f}s"
            )
    except BenchError as err:
        print(f"concurrent_tasks: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A cache hit against a miss, end to end through REST (issue 16: a hit returns in a fraction of
a miss's time).

Starts FalkorDB, the Temporal dev server, one worker (in this process, the answer cache on, as by
default) and `keel api` (a process of its own), indexes the demo corpus, then for each demo
question, interleaved so both see the same machine:
  - a miss: the question with `"cache": false` (answered afresh; its answer is kept);
  - a hit: the same question reworded as a person retyping it would (lower case, "?" dropped),
    with the cache on.
Each is timed from POST /v1/tasks to the completed result read by GET, polling every 10 ms.

    .venv/bin/python bench/answer_cache_latency.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from harness import start_platform, verdict

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR, demo_questions
from keel.app.embedded import free_port, stop_process
from keel.control.documents import start_batch
from keel.core.identity import Role
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

# "a fraction of a miss's time": a hit at most a quarter of a miss, at the median.
TARGET_RATIO = 0.25


def reworded(question: str) -> str:
    return question.rstrip("?").lower()


def ask(client: httpx.Client, question: str, cache: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post("/v1/tasks", json={"question": question, "review": "never", "cache": cache})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    while True:
        view = client.get(f"/v1/tasks/{task_id}").json()
        if view["status"] not in ("running", "awaiting_review"):
            return (time.perf_counter() - started) * 1000, view
        time.sleep(0.01)


def measure(
    base: str, secret: str, questions: list[str], rounds: int
) -> tuple[list[float], list[float], list[str]]:
    """Miss and hit latencies (ms), interleaved, and why any reworded question missed."""
    misses: list[float] = []
    hits: list[float] = []
    not_served: list[str] = []
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {secret}"}) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(rounds):
            for question in questions:
                miss_ms, _ = ask(client, question, cache=False)
                misses.append(miss_ms)
                hit_ms, view = ask(client, reworded(question), cache=True)
                cache = (view.get("result") or {}).get("cache") or {}
                if cache.get("hit"):
                    hits.append(hit_ms)
                else:
                    not_served.append(f"{question}: {cache.get('note') or view.get('status')}")
    return misses, hits, not_served


async def main(rounds: int) -> int:
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-cache-bench-")))
        platform = await start_platform(stack, directory, "cache")
        settings = platform.settings
        documents = load_documents(CORPUS_DIR, {".md"})
        batch = await start_batch(
            platform.client, settings, documents, batch_id=f"bench-{uuid.uuid4().hex[:8]}"
        )
        await batch.result()
        api_port = free_port()
        env = {
            **os.environ,
            "KEEL_DATA_DIR": str(settings.data_dir),
            "KEEL_FALKORDB__URL": settings.falkordb_url,
            "KEEL_FALKORDB__GRAPH_PREFIX": settings.falkordb.graph_prefix,
            "KEEL_TEMPORAL__ADDRESS": settings.temporal_address,
            "KEEL_TEMPORAL__TASK_QUEUE": settings.temporal.task_queue,
            "KEEL_API__PORT": str(api_port),
            # The bench asks far more than a person does: no per-key rate limit in the way.
            "KEEL_LIMITS__SUBMITS_PER_MINUTE": "100000",
        }
        log = (directory / "api.log").open("wb")
        api = subprocess.Popen(
            [str(Path(sys.executable).with_name("keel")), "api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop_process, api, 10)
        redis_client = make_redis(settings.falkordb_url)
        stack.callback(redis_client.close)
        _, secret = KeyStore(redis_client).create(settings.tenant, "bench", frozenset({Role.SUBMITTER}))
        questions = [q["question"] for q in demo_questions()]
        # The client blocks: it runs in a thread, so the worker on this event loop runs meanwhile.
        misses, hits, not_served = await asyncio.to_thread(
            measure, f"http://127.0.0.1:{api_port}", secret, questions, rounds
        )
    p50_miss, p50_hit = statistics.median(misses), statistics.median(hits) if hits else float("nan")
    print(f"\n{len(questions)} demo questions x {rounds} rounds, through REST ({os.cpu_count()} cores)")
    print(f"  miss (answered afresh): p50 {p50_miss:7.1f} ms   n={len(misses)}")
    print(f"  hit (served from cache): p50 {p50_hit:7.1f} ms   n={len(hits)}")
    for line in dict.fromkeys(not_served):
        print(f"  not served from the cache: {line}")
    ratio = p50_hit / p50_miss
    print(
        f"hit / miss at the median: {ratio:.2f} (target <= {TARGET_RATIO}): {verdict(ratio <= TARGET_RATIO)}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    raise SystemExit(asyncio.run(main(parser.parse_args().rounds)))

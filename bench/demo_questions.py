"""Every demo question over REST against a running Keel (`make up`): quality and latency.

Prints, per question, whether the expected answer appears, which expected documents are
cited, the rounds taken and the end-to-end latency; then the totals and p50/p95.

    .venv/bin/python bench/demo_questions.py [--base http://127.0.0.1:8000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
from harness import BenchError, add_api_key_argument, api_key_headers, submitted_task

from keel.app.demo import demo_questions


def ask(client: httpx.Client, question: str, timeout_s: float = 120) -> tuple[dict, float]:
    started = time.perf_counter()
    task_id = submitted_task(client.post("/v1/tasks", json={"question": question, "review": "never"}))
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        view = client.get(f"/v1/tasks/{task_id}").json()
        if view["status"] not in ("running", "awaiting_review"):
            return view, time.perf_counter() - started
        time.sleep(0.02)
    raise TimeoutError(f"task {task_id} did not finish in {timeout_s} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    add_api_key_argument(parser)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    latencies, answered, fully_cited, doc_recall = [], 0, 0, []
    try:  # a missing or refused key is one line, not a traceback
        headers = api_key_headers(args.api_key)
        with httpx.Client(base_url=args.base, headers=headers, timeout=30) as client:
            questions = demo_questions()
            for q in questions:
                for _ in range(args.repeat):
                    view, latency = ask(client, q["question"])
                    latencies.append(latency)
                result = view.get("result") or {}
                answer = result.get("answer") or ""
                cited = {c["document_id"] for c in result.get("citations", [])}
                expected = set(q["documents"])
                hit = q["answer"].lower() in answer.lower()
                answered += hit
                fully_cited += expected <= cited
                doc_recall.append(len(expected & cited) / len(expected))
                print(
                    f"{q['id']} hops={q['hops']} answer={'yes' if hit else 'NO '} "
                    f"cited {len(expected & cited)}/{len(expected)} rounds={result.get('rounds')} "
                    f"{latency:.2f}s  {q['question']}"
                )
    except BenchError as err:
        print(f"demo_questions: {err}", file=sys.stderr)
        return 1
    n = len(questions)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"\n{n} questions: expected answer in text {answered}/{n}; "
        f"all expected documents cited {fully_cited}/{n}; "
        f"mean document recall {statistics.mean(doc_recall):.2f}; "
        f"latency p50 {statistics.median(latencies):.2f}s p95 {p95:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

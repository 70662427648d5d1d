"""`keel up`: start the embedded servers, a worker and the API as children, and supervise them.

The embedded servers listen on loopback only (Temporal and its UI have no sign-in); FalkorDB wants
the password kept in the data dir, which the worker and the API get in their environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from keel.app.bootstrap import ADMIN_TENANT, AdminKey, demo_key, ensure_admin_key
from keel.app.cli_common import with_falkordb_password
from keel.app.embedded import (
    dev_server_flags,
    ensure_falkordb_password,
    spawn,
    start_falkordb,
    start_temporal,
    stop_process,
    wait_for_falkordb,
    wait_for_temporal,
)
from keel.core.settings import Settings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 240.0  # the first worker start loads the embedding model


class LaunchError(Exception):
    """`keel up` cannot start as configured; the message names the setting to change."""


class PortInUseError(LaunchError):
    """A port an embedded service needs is taken; the message names the setting that moves it."""


class NotLoopbackError(LaunchError):
    """An embedded server was asked to listen beyond this machine."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


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


def check_loopback(settings: Settings) -> None:
    """Refuse to start an embedded Temporal or FalkorDB that would listen beyond this machine."""
    embedded = []
    if not settings.temporal.address:
        embedded.append(
            (settings.temporal.host, "Temporal (and its UI)", "TEMPORAL__HOST", "TEMPORAL__ADDRESS")
        )
    if not settings.falkordb.url:
        embedded.append((settings.falkordb.host, "FalkorDB", "FALKORDB__HOST", "FALKORDB__URL"))
    for host, name, setting, external in embedded:
        if not is_loopback(host):
            raise NotLoopbackError(
                f"KEEL_{setting}={host}: the embedded {name} listens on this machine only; "
                f"to share one, run it as a server of its own and set KEEL_{external}"
            )


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
    from keel.app.demo import ask_demo_question, ingest_demo_corpus

    check_loopback(settings)
    check_ports(settings)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KEEL_DATA_DIR": str(data_dir)}
    password = None
    if not settings.falkordb.url:
        # A data dir from before passwords gets one now; the server starts with it below.
        secret = settings.falkordb.password
        password = secret.get_secret_value() if secret else ensure_falkordb_password(data_dir)
        settings = with_falkordb_password(settings, password)
        env["KEEL_FALKORDB__PASSWORD"] = password
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    supervisor = Supervisor()
    client = make_redis(settings.falkordb_url)  # connects on first use, once FalkorDB is up
    keys = KeyStore(client)
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
            supervisor.add(
                "falkordb",
                lambda: start_falkordb(data_dir / "falkordb", f.port, f.host, password=password),
            )
            wait_for_falkordb(f.host, f.port, timeout_s=30)
        cli = [sys.executable, "-m", "keel.app.cli"]
        supervisor.add("worker", lambda: spawn([*cli, "worker"], data_dir / "logs" / "worker.log", env))
        supervisor.add("api", lambda: spawn([*cli, "api"], data_dir / "logs" / "api.log", env))
        base = f"http://{settings.api.host}:{settings.api.port}"
        wait_until_ready(f"{base}/readyz", supervisor, READY_TIMEOUT_S)
        if demo:
            ingest_demo_corpus(settings)
            with demo_key(keys, settings.tenant) as key:
                ask_demo_question(base, key)
        # Last before the ready message: a key generated now is shown there, or never.
        _print_ready(settings, base, ensure_admin_key(keys, settings))
        while not stop.is_set():
            supervisor.check()
            stop.wait(0.5)
        return 0
    except (TimeoutError, RuntimeError) as err:
        log.error("%s", err)
        return 1
    except redis.RedisError as err:
        log.error("FalkorDB at %s is unavailable: %s", settings.falkordb_address, err)
        return 1
    finally:
        client.close()
        supervisor.stop_all()


def _print_ready(settings: Settings, base: str, admin: AdminKey) -> None:
    lines = [
        "Keel is ready.",
        f"  API docs:      {base}/docs",
        f"  Temporal UI:   http://{settings.temporal.host}:{settings.temporal.ui_port}"
        if not settings.temporal.address
        else f"  Temporal:      {settings.temporal.address}",
        f"  Reviewer page: {base}/review  (JSON: {base}/v1/reviews)",
        f"  Data dir:      {settings.data_dir.resolve()}",
        *key_lines(admin, base),
        "Ctrl-C stops every service.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def key_lines(admin: AdminKey, base: str) -> list[str]:
    """What the ready message says about API keys: a key generated now, boxed (the one place it
    is ever shown); otherwise where keys come from."""
    if admin.from_bootstrap:
        stored = "stored now" if admin.stored_now else "already stored"
        return [
            f"  API keys:      KEEL_AUTH__BOOTSTRAP_KEY is the admin key of tenant {ADMIN_TENANT} ({stored})"
        ]
    if admin.secret is None:
        return ["  API keys:      create them with `keel keys create` (list: `keel keys list`)"]
    body = [
        f"Admin API key of tenant {ADMIN_TENANT} (shown once, store it now):",
        f"    {admin.secret}",
        "Use it:",
        f"    export KEEL_API_KEY={admin.secret}",
        f'    curl -H "Authorization: Bearer $KEEL_API_KEY" {base}/v1/me',
        "More keys: keel keys create --name NAME --role ROLE",
    ]
    width = max(map(len, body))
    rule = "  +" + "-" * (width + 2) + "+"
    return [rule, *(f"  | {line.ljust(width)} |" for line in body), rule]

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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

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


@dataclass(frozen=True)
class RestartDecision:
    """What to do about one crash: restart at `restart_at` (a clock reading); `crash_loop` when the
    service crashed `crashes` times within the policy's window."""

    restart_at: float
    delay_s: float
    crashes: int
    crash_loop: bool


@dataclass
class RestartPolicy:
    """When to restart a crashed service: exponential backoff, and a crash loop counted in a sliding
    window. Pure: the caller passes the clock's reading, so tests need no processes and no waiting."""

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    # Up this long, a service is healthy again: its next crash restarts after `first_delay_s`.
    stable_after_s: float = 120.0
    # This many crashes within the window is a loop: retried at `max_delay_s` and reported loudly.
    loop_crashes: int = 5
    loop_window_s: float = 600.0
    _next_delay_s: float | None = None
    _started_at: float = 0.0
    _crashes: deque[float] = field(default_factory=deque)

    def started(self, now: float) -> None:
        self._started_at = now

    def crashed(self, now: float) -> RestartDecision:
        if self._next_delay_s is None or now - self._started_at >= self.stable_after_s:
            self._next_delay_s = self.first_delay_s
        self._crashes.append(now)
        while self._crashes[0] <= now - self.loop_window_s:
            self._crashes.popleft()
        crash_loop = len(self._crashes) >= self.loop_crashes
        delay = self.max_delay_s if crash_loop else self._next_delay_s
        self._next_delay_s = min(delay * 2, self.max_delay_s)
        return RestartDecision(now + delay, delay, len(self._crashes), crash_loop)


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    log_path: Path | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    # Set while the child waits out its backoff after a crash.
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Starts children in order, restarts each one that dies after its backoff (a flapping child
    never stops the others), stops all in reverse order."""

    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    make_policy: Callable[[], RestartPolicy] = RestartPolicy
    clock: Callable[[], float] = time.monotonic

    def add(
        self, name: str, start: Callable[[], subprocess.Popen[bytes]], log_path: Path | None = None
    ) -> Child:
        child = Child(name, start, log_path, self.make_policy())
        self._start(child)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Note children that exited on their own and restart those whose backoff is over."""
        if self.stopping:
            return
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._start(child)
            elif child.proc is not None and child.proc.poll() is not None:
                self._crashed(child, child.policy.crashed(now))

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.proc is not None:
                log.info("stopping %s", child.name)
                stop_process(child.proc)

    def _start(self, child: Child) -> None:
        child.restart_at = None
        child.proc = child.start()
        child.policy.started(self.clock())
        log.info("started %s (pid %s)", child.name, child.proc.pid)

    def _crashed(self, child: Child, decision: RestartDecision) -> None:
        child.restart_at = decision.restart_at
        code = child.proc.returncode if child.proc else None
        if not decision.crash_loop:
            log.warning("%s exited with code %s; restarting in %.3g s", child.name, code, decision.delay_s)
            return
        window_min = child.policy.loop_window_s / 60
        log.error(
            "%s is in a crash loop: %d crashes in the last %.0f min, last exit code %s; "
            "the other services keep running, %s is retried every %.3g s. Last lines of %s:\n%s",
            child.name, decision.crashes, window_min, code, child.name, decision.delay_s,
            child.log_path or "its log", log_tail(child.log_path),
        )  # fmt: skip


def log_tail(path: Path | None, lines: int = 20, max_bytes: int = 16_384) -> str:
    """The last `lines` lines of a log file (reading at most its last `max_bytes`), indented."""
    if path is None:
        return "    (no log file)"
    try:
        with path.open("rb") as log_file:
            log_file.seek(max(0, path.stat().st_size - max_bytes))
            text = log_file.read().decode("utf-8", errors="replace")
    except OSError as err:
        return f"    (unreadable: {err})"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty)"


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


class StopRequested(Exception):
    """Ctrl-C or SIGTERM: `keel up` stops every service, whatever it was waiting for."""


def _stop_now(stop: threading.Event, *_: object) -> None:
    """The first signal ends whatever the launcher is doing: raised in the main thread, it cuts
    short a wait of up to READY_TIMEOUT_S for the API, or the Temporal and FalkorDB waits, which
    poll without looking at `stop`. A second signal while stopping only lets the stop finish."""
    if stop.is_set():
        return
    stop.set()
    raise StopRequested


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
    supervisor = Supervisor()
    client = make_redis(settings.falkordb_url)  # connects on first use, once FalkorDB is up
    keys = KeyStore(client)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, partial(_stop_now, stop))
        if not settings.temporal.address:
            t = settings.temporal
            supervisor.add(
                "temporal",
                lambda: start_temporal(data_dir / "temporal", t.host, t.port, t.ui_port, dev_server_flags()),
                data_dir / "temporal" / "temporal.log",
            )
            wait_for_temporal(settings.temporal_address, timeout_s=60)
        # An external Temporal gets Keel's search attributes from the worker when it connects.
        if not settings.falkordb.url:
            f = settings.falkordb
            supervisor.add(
                "falkordb",
                lambda: start_falkordb(data_dir / "falkordb", f.port, f.host, password=password),
                data_dir / "falkordb" / "falkordb.log",
            )
            wait_for_falkordb(f.host, f.port, timeout_s=30)
        cli = [sys.executable, "-m", "keel.app.cli"]
        for name in ("worker", "api"):
            log_path = data_dir / "logs" / f"{name}.log"
            supervisor.add(name, partial(spawn, [*cli, name], log_path, env), log_path)
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
    except StopRequested:
        return 0
    except TimeoutError as err:
        log.error("%s", err)
        return 1
    except redis.RedisError as err:
        log.error("FalkorDB at %s is unavailable: %s", settings.falkordb_address, err)
        return 1
    finally:
        stop.set()  # from here a signal no longer raises: the stop below must run to its end
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

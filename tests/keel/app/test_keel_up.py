"""`keel up` itself, on a fresh data dir and again: the admin key shown once beside the URLs,
FalkorDB behind the data dir's password (the worker and the API get it), nothing secret logged."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from keel.app.embedded import PASSWORD_FILE, free_port, stop_process
from keel.core.settings import FalkorDBSettings, Settings, url_with_password
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY = "Ctrl-C stops every service."
KEY_LINE = re.compile(r"export KEEL_API_KEY=(keel_\S+)")


def _env(data_dir: Path, settings: Mapping[str, object]) -> dict[str, str]:
    """This process's environment without its KEEL_ settings, plus the data dir and `settings`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEEL_")},
        "HF_HUB_OFFLINE": "1",
        "KEEL_DATA_DIR": str(data_dir),
        **{f"KEEL_{name}": str(value) for name, value in settings.items()},
    }


@contextmanager
def keel_up(data_dir: Path, ports: dict[str, int], logs: Path) -> Iterator[tuple[str, Path]]:
    """Run `keel up --no-demo` until it says it is ready; its stdout then, and its stderr file."""
    env = _env(data_dir, ports)
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout", logs / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "keel.app.cli", "up", "--no-demo"],
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while READY not in out.read_text():
            assert process.poll() is None, f"keel up exited: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"keel up not ready: {err.read_text()[-3000:]}"
            time.sleep(0.5)
        yield out.read_text(), err
    finally:
        stop_process(process, grace_s=30)


def test_keel_up_shows_the_admin_key_once_and_guards_falkordb(tmp_path: Path) -> None:
    ports = {
        "API__PORT": free_port(),
        "TEMPORAL__PORT": free_port(),
        "TEMPORAL__UI_PORT": free_port(),
        "FALKORDB__PORT": free_port(),
    }
    data_dir = tmp_path / "data"
    address = f"redis://127.0.0.1:{ports['FALKORDB__PORT']}"

    with keel_up(data_dir, ports, tmp_path / "first") as (out, err):
        (secret,) = KEY_LINE.findall(out)
        assert "Admin API key of tenant default (shown once, store it now):" in out
        assert out.index("API docs:") < out.index(secret) < out.index(READY)
        password = (data_dir / PASSWORD_FILE).read_text().strip()
        with pytest.raises(redis.AuthenticationError):
            make_redis(address).ping()
        client = make_redis(url_with_password(address, password))
        principal = KeyStore(client).verify(secret)
        client.close()
        assert principal is not None and (principal.tenant, principal.name) == ("default", "admin")
    logged = err.read_text() + "".join(p.read_text() for p in (data_dir / "logs").glob("*.log"))
    assert secret not in logged and password not in logged

    # An older data dir (no password file): the server comes back with a new password, and the
    # admin key made before is still there, so no key is shown.
    (data_dir / PASSWORD_FILE).unlink()
    with keel_up(data_dir, ports, tmp_path / "second") as (out, _):
        assert secret not in out and not KEY_LINE.search(out) and "Admin API key" not in out
        assert "create them with `keel keys create`" in out
        new_password = (data_dir / PASSWORD_FILE).read_text().strip()
        assert new_password != password
        settings = Settings(
            falkordb=FalkorDBSettings(port=ports["FALKORDB__PORT"], password=SecretStr(new_password))
        )
        client = make_redis(settings.falkordb_url)
        assert KeyStore(client).verify(secret) is not None
        client.close()


def test_keel_up_stops_at_once_while_it_waits_for_the_services(tmp_path: Path) -> None:
    # An external Temporal address where nothing listens keeps /readyz at 503, so the launcher is
    # held in its readiness wait (up to READY_TIMEOUT_S, 240 s) when SIGTERM arrives.
    api_port, falkordb_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    env = _env(
        data_dir,
        {
            "API__PORT": api_port,
            "FALKORDB__PORT": falkordb_port,
            "TEMPORAL__ADDRESS": f"127.0.0.1:{free_port()}",
        },
    )
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "keel.app.cli", "up", "--no-demo"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (data_dir / "logs" / "api.log").exists():  # the API is spawned: the wait is on
            assert process.poll() is None, f"keel up exited: {stderr.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "keel up never started the API"
            time.sleep(0.2)
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, stderr.read_text()[-3000:]
        assert "Traceback" not in stderr.read_text()
        with pytest.raises(redis.ConnectionError):  # FalkorDB, its child, was stopped too
            make_redis(f"redis://127.0.0.1:{falkordb_port}").ping()
    finally:
        stop_process(process, grace_s=10)

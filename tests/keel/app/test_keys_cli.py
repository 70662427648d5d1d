"""`keel keys`: create prints the key alone on stdout, list never shows a secret, revoke takes
effect at once, and bad input is named in one line (exit 2), never a stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.cli import app
from keel.app.embedded import free_port
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = pytest.mark.integration

KEEL = [sys.executable, "-m", "keel.app.cli"]


@pytest.fixture
def env(tmp_path: Path, falkordb_url: str) -> dict[str, str]:
    return {"KEEL_FALKORDB__URL": falkordb_url, "KEEL_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def store(falkordb_url: str) -> Iterator[KeyStore]:
    client = make_redis(falkordb_url)
    yield KeyStore(client)
    client.close()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _keel(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["keys", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_only_the_key_on_stdout_and_it_verifies(
    env: dict[str, str], store: KeyStore, tenant: str
) -> None:
    # A real process: what `KEY=$(keel keys create …)` captures is exactly its stdout.
    done = subprocess.run(
        [
            *KEEL,
            "keys",
            "create",
            "--tenant",
            tenant,
            "--name",
            "Rita",
            "--role",
            "reviewer",
            "--role",
            "submitter",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0] == done.stdout.strip()
    principal = store.verify(lines[0])
    assert principal is not None
    assert (principal.tenant, principal.name) == (tenant, "rita")
    assert {r.value for r in principal.roles} == {"reviewer", "submitter"}
    assert lines[0] not in done.stderr and principal.key_id in done.stderr


def test_list_shows_every_column_and_no_secret(env: dict[str, str], store: KeyStore, tenant: str) -> None:
    code, secret, _ = _keel("create", "--tenant", tenant, "--name", "ann", "--role", "auditor", env=env)
    assert code == 0
    code, out, _ = _keel("list", "--tenant", tenant, env=env)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "TENANT", "NAME", "ROLES", "CREATED", "REVOKED"]
    (record,) = store.list(tenant)
    assert row.split() == [record.key_id, tenant, "ann", "auditor", record.created_at, "-"]
    assert secret.strip() not in out and record.digest not in out


def test_revoke_makes_the_key_fail_verification(env: dict[str, str], store: KeyStore, tenant: str) -> None:
    code, out, _ = _keel("create", "--tenant", tenant, "--name", "bob", "--role", "submitter", env=env)
    secret = out.strip()
    principal = store.verify(secret)
    assert code == 0 and principal is not None
    code, out, _ = _keel("revoke", principal.key_id, env=env)
    assert code == 0 and principal.key_id in out
    assert store.verify(secret) is None
    _, listed, _ = _keel("list", "--tenant", tenant, env=env)
    assert listed.splitlines()[1].split()[-1] != "-"  # the revocation time


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--name", "rita", "--role", "boss"], "no role 'boss': roles are admin, auditor"),
        (["--name", "rita"], "a key needs at least one role"),
        (["--name", "Rita Smith", "--role", "reviewer"], "not a principal name: 'Rita Smith'"),
        (["--name", "keel", "--role", "reviewer"], "'keel' is the name of Keel's own actions"),
        (["--name", "rita", "--role", "reviewer", "--tenant", "a b"], "not a tenant id: 'a b'"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(env: dict[str, str], args: list[str], problem: str) -> None:
    code, out, err = _keel("create", *args, env=env)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("keel keys create: ") and problem in err


def test_revoking_an_unknown_key_exits_2(env: dict[str, str]) -> None:
    code, _, err = _keel("revoke", "0123456789abcdef", env=env)
    assert code == 2 and "no key with id 0123456789abcdef" in err
    code, _, err = _keel("revoke", "not-an-id", env=env)
    assert code == 2 and "not a key id: 'not-an-id'" in err


def test_unreachable_falkordb_exits_1_naming_it_without_the_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}"
    env = {"KEEL_FALKORDB__URL": url, "KEEL_DATA_DIR": str(tmp_path)}
    for args in (["create", "--name", "rita", "--role", "reviewer"], ["list"], ["revoke", "0" * 16]):
        code, out, err = _keel(*args, env=env)
        assert code == 1 and out == "", args
        assert "FalkorDB at redis://127.0.0.1:" in err and "is unavailable" in err, err
        assert "hunter2" not in err and "Traceback" not in err

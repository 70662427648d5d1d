"""The first key: a fresh store gets one admin key of tenant `default`, shown once; later starts
make none; a configured bootstrap key is the admin key and nothing is generated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from keel.app.bootstrap import AdminKey, demo_key, ensure_admin_key
from keel.app.launcher import key_lines
from keel.core.identity import Role
from keel.core.settings import AuthSettings, Settings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis
from tests.support.servers import falkordb_server

pytestmark = pytest.mark.integration

BOOTSTRAP = "ci-bootstrap-key-0123456789abcdef-xyz"
PLAIN = Settings(auth=AuthSettings())  # no bootstrap key, whatever the environment says


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    """A key store on a FalkorDB of its own: "fresh" means no key at all, of any test."""
    with falkordb_server(tmp_path / "falkordb") as url:
        client = make_redis(url)
        yield KeyStore(client)
        client.close()


def test_a_fresh_store_gets_one_admin_key_whose_secret_is_returned_once(store: KeyStore) -> None:
    first = ensure_admin_key(store, PLAIN)
    assert first.secret is not None and first.stored_now and not first.from_bootstrap
    principal = store.verify(first.secret)
    assert principal is not None
    assert (principal.tenant, principal.name, principal.roles) == ("default", "admin", {Role.ADMIN})

    again = ensure_admin_key(store, PLAIN)
    assert again == AdminKey()
    assert len(store.list("default")) == 1


def test_a_revoked_admin_key_is_replaced_on_the_next_start(store: KeyStore) -> None:
    first = ensure_admin_key(store, PLAIN)
    assert first.secret is not None
    store.revoke(store.list("default")[0].key_id)
    second = ensure_admin_key(store, PLAIN)
    assert second.secret is not None and store.verify(second.secret) is not None


def test_the_bootstrap_key_is_ensured_and_nothing_is_generated(store: KeyStore) -> None:
    settings = Settings(auth=AuthSettings(bootstrap_key=SecretStr(BOOTSTRAP)))
    first = ensure_admin_key(store, settings)
    assert first == AdminKey(from_bootstrap=True, stored_now=True)
    principal = store.verify(BOOTSTRAP)
    assert principal is not None and principal.has(Role.ADMIN) and principal.tenant == "default"

    again = ensure_admin_key(store, settings)
    assert again == AdminKey(from_bootstrap=True, stored_now=False)
    assert [r.name for r in store.list()] == ["admin"]


def test_a_bootstrap_key_wins_over_an_existing_admin(store: KeyStore) -> None:
    ensure_admin_key(store, PLAIN)
    settings = Settings(auth=AuthSettings(bootstrap_key=SecretStr(BOOTSTRAP)))
    assert ensure_admin_key(store, settings).secret is None
    assert store.verify(BOOTSTRAP) is not None


def test_the_demo_key_works_only_while_the_demo_asks(store: KeyStore) -> None:
    with demo_key(store, "default") as secret:
        principal = store.verify(secret)
        assert principal is not None and principal.roles == {Role.SUBMITTER}
    assert store.verify(secret) is None


def test_the_ready_message_boxes_a_new_key_and_only_hints_otherwise() -> None:
    secret = "keel_" + "x" * 43
    boxed = key_lines(AdminKey(secret=secret, stored_now=True), "http://127.0.0.1:8000")
    assert "Admin API key of tenant default (shown once, store it now):" in "\n".join(boxed)
    assert any(line.strip("| ").endswith(f"export KEEL_API_KEY={secret}") for line in boxed)
    assert boxed[0] == boxed[-1] and len({len(line) for line in boxed}) == 1  # a closed box
    for later in (AdminKey(), AdminKey(from_bootstrap=True), AdminKey(from_bootstrap=True, stored_now=True)):
        lines = key_lines(later, "http://127.0.0.1:8000")
        assert len(lines) == 1 and "keel_" not in lines[0]
    assert "keel keys create" in key_lines(AdminKey(), "http://127.0.0.1:8000")[0]
    assert "KEEL_AUTH__BOOTSTRAP_KEY" in key_lines(AdminKey(from_bootstrap=True), "")[0]

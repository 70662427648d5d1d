"""The first key: `keel up` makes sure tenant `default` has an admin, so the API can be used at all.

A fresh data dir gets a generated admin key, shown once by `keel up` and stored only as its hash.
With `auth.bootstrap_key` set (automation, CI), that secret is the admin key instead and nothing
is generated. Either way no secret is logged: the caller prints the one generated, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from keel.core.identity import Role
from keel.core.settings import Settings
from keel.stores.keys import KeyStore

ADMIN_TENANT = "default"
ADMIN_NAME = "admin"
DEMO_NAME = "demo"


@dataclass(frozen=True)
class AdminKey:
    """What `keel up` did about the admin key of tenant `default`."""

    # A key generated now: to be shown once, then it is kept nowhere.
    secret: str | None = None
    # The admin key is `auth.bootstrap_key`.
    from_bootstrap: bool = False
    # A key was stored now (generated, or the bootstrap key new or revoked before).
    stored_now: bool = False


def ensure_admin_key(store: KeyStore, settings: Settings) -> AdminKey:
    """The bootstrap key stored as an admin key when configured; else a new admin key when the
    tenant has no live one; else nothing."""
    roles = frozenset({Role.ADMIN})
    if settings.auth.bootstrap_key is not None:
        secret = settings.auth.bootstrap_key.get_secret_value()
        _, stored = store.ensure(secret, ADMIN_TENANT, ADMIN_NAME, roles)
        return AdminKey(from_bootstrap=True, stored_now=stored)
    if store.has_admin(ADMIN_TENANT):
        return AdminKey()
    _, secret = store.create(ADMIN_TENANT, ADMIN_NAME, roles)
    return AdminKey(secret=secret, stored_now=True)


@contextmanager
def demo_key(store: KeyStore, tenant: str) -> Iterator[str]:
    """A submitter key of `tenant` for the demo question, revoked as soon as it has been asked."""
    record, secret = store.create(tenant, DEMO_NAME, frozenset({Role.SUBMITTER}))
    try:
        yield secret
    finally:
        store.revoke(record.key_id)

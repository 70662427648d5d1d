"""API keys, sign-in sessions and rate counts in Redis, on a real FalkorDB server."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from keel.core.identity import Role
from keel.stores.keys import KeyNotFoundError, KeyStore, digest_of
from keel.stores.rate_limits import WINDOW_S, RateLimiter
from keel.stores.redis import make_redis
from keel.stores.sessions import SessionStore

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_client(falkordb_url: str):
    client = make_redis(falkordb_url)
    yield client
    client.close()


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_a_key_is_random_stored_as_a_hash_and_verified_in_one_read(redis_client) -> None:
    keys, acme = KeyStore(redis_client), tenant()
    record, secret = keys.create(acme, "  Rita@Example.com ", frozenset({Role.REVIEWER}))
    assert secret.startswith("keel_") and len(secret) >= 5 + 43  # 32 random bytes, base64url
    assert record.name == "rita@example.com" and record.roles == ["reviewer"]
    stored = b"".join(
        redis_client.get(k) if redis_client.type(k) == b"string" else b"".join(redis_client.smembers(k))
        for k in redis_client.keys("keel:auth:*")
    )
    assert secret.encode() not in stored and digest_of(secret).encode() in stored
    principal = keys.verify(secret)
    assert principal is not None and (principal.tenant, principal.name) == (acme, "rita@example.com")
    assert principal.has(Role.REVIEWER) and not principal.has(Role.SUBMITTER)
    assert keys.verify(secret + "x") is None and keys.verify("") is None and keys.verify("k" * 513) is None
    other, _ = keys.create(acme, "sam", frozenset({Role.SUBMITTER}))
    assert other.key_id != record.key_id


def test_admin_implies_every_role_of_its_tenant(redis_client) -> None:
    _, secret = KeyStore(redis_client).create(tenant(), "boss", frozenset({Role.ADMIN}))
    principal = KeyStore(redis_client).verify(secret)
    assert principal is not None and all(principal.has(role) for role in Role)


def test_revoked_keys_stop_at_once_and_only_their_tenant_revokes_them(redis_client) -> None:
    keys, acme = KeyStore(redis_client), tenant()
    record, secret = keys.create(acme, "sam", frozenset({Role.SUBMITTER}))
    with pytest.raises(KeyNotFoundError):
        keys.revoke(record.key_id, tenant="globex")
    assert keys.verify(secret) is not None
    revoked = keys.revoke(record.key_id, tenant=acme)
    assert revoked.revoked_at and keys.verify(secret) is None and keys.principal(record.key_id) is None
    assert [r.key_id for r in keys.list(acme)] == [record.key_id]  # still listed, as revoked


@pytest.mark.parametrize(
    ("tenant_id", "name", "reason"),
    [
        ("bad tenant", "sam", "tenant"),
        ("acme", "it's me", "principal name"),
        ("acme", "keel", "Keel's own"),
        ("acme", "", "principal name"),
    ],
)
def test_bad_tenants_and_names_are_refused(redis_client, tenant_id: str, name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        KeyStore(redis_client).create(tenant_id, name, frozenset({Role.AUDITOR}))


def test_ensure_keeps_one_key_for_a_given_secret(redis_client) -> None:
    keys, acme, secret = KeyStore(redis_client), tenant(), "s" * 40
    first, created = keys.ensure(secret, acme, "admin", frozenset({Role.ADMIN}))
    again, created_again = keys.ensure(secret, acme, "admin", frozenset({Role.ADMIN}))
    assert created and not created_again and first.key_id == again.key_id
    assert len(keys.list(acme)) == 1 and keys.has_admin(acme)


def test_a_session_holds_the_key_id_and_a_csrf_token_never_the_id_in_clear(redis_client) -> None:
    sessions = SessionStore(redis_client, ttl_s=60)
    session_id, session = sessions.open("0123456789abcdef")
    assert sessions.get(session_id) == session and session.csrf and session.csrf != session_id
    assert not any(session_id in k.decode() for k in redis_client.keys("keel:auth:session:*"))
    stored_under = f"keel:auth:session:{hashlib.sha256(session_id.encode()).hexdigest()}"
    assert 0 < redis_client.ttl(stored_under) <= 60
    sessions.close(session_id)
    assert sessions.get(session_id) is None


def test_rates_are_counted_per_key_and_window_and_say_when_to_retry(redis_client) -> None:
    limiter, key_a, key_b = RateLimiter(redis_client), uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    now = 1_000_000 * WINDOW_S + 15.0  # 15 s into a window
    assert [limiter.hit("submit", key_a, 2, now).allowed for _ in range(3)] == [True, True, False]
    refused = limiter.hit("submit", key_a, 2, now)
    assert refused.retry_after_s == 45
    assert limiter.hit("submit", key_b, 2, now).allowed  # another key has its own count
    assert limiter.hit("upload", key_a, 2, now).allowed  # and another action
    assert limiter.hit("submit", key_a, 2, now + WINDOW_S).allowed  # the next window starts afresh

"""API keys in Redis: the secret is shown once and stored only as its SHA-256.

A key's record lives under an id taken from that hash, so verifying a key is one read and
needs no scan. SHA-256 (not a slow password hash) is right here: a generated key carries 256
random bits, and a bootstrap key must be at least 32 characters; a slow hash would add
milliseconds to every request and protect nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keel.core.identity import Principal, Role, check_tenant, principal_name

if TYPE_CHECKING:
    import redis

_RECORD = "keel:auth:key:{key_id}"  # JSON of KeyRecord
_BY_TENANT = "keel:auth:tenant-keys:{tenant}"  # set of key ids
_TENANTS = "keel:auth:tenants"  # set of tenants that have keys
SECRET_PREFIX = "keel_"
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
# A generated key is 48 characters; anything far longer is no key, and is neither hashed nor read.
MAX_SECRET_CHARS = 512


class KeyNotFoundError(KeyError):
    pass


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant: str
    name: str
    roles: list[str]
    created_at: str
    digest: str  # SHA-256 of the secret, hex
    revoked_at: str = ""

    def principal(self) -> Principal:
        return Principal(self.tenant, self.name, frozenset(Role(r) for r in self.roles), self.key_id)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def key_id_of(digest: str) -> str:
    # 64 bits of the hash: enough to never collide among one deployment's keys, and the full
    # digest is still compared on every verification.
    return digest[:16]


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def create(self, tenant: str, name: str, roles: frozenset[Role]) -> tuple[KeyRecord, str]:
        """A new key: its record and its secret (which is not kept anywhere)."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        return self._store(secret, tenant, name, roles), secret

    def ensure(self, secret: str, tenant: str, name: str, roles: frozenset[Role]) -> tuple[KeyRecord, bool]:
        """A key with exactly this secret, stored if it was not (or revoked); True when stored now."""
        record = self._record(key_id_of(digest_of(secret)))
        if (
            record is not None
            and not record.revoked_at
            and hmac.compare_digest(record.digest, digest_of(secret))
        ):
            return record, False
        return self._store(secret, tenant, name, roles), True

    def verify(self, secret: str) -> Principal | None:
        """The key's principal, or None for an unknown or revoked key (one Redis read)."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            return None
        digest = digest_of(secret)
        record = self._record(key_id_of(digest))
        if record is None or record.revoked_at or not hmac.compare_digest(record.digest, digest):
            return None
        return record.principal()

    def principal(self, key_id: str) -> Principal | None:
        """The principal of a live key by its id (a sign-in session holds the id, not the key)."""
        record = self._record(key_id)
        return None if record is None or record.revoked_at else record.principal()

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        """Keys (revoked too) of one tenant or of all, oldest first."""
        tenants = [tenant] if tenant else sorted(_text(t) for t in self._client.smembers(_TENANTS))
        records: list[KeyRecord] = []
        for one in tenants:
            ids = sorted(_text(i) for i in self._client.smembers(_BY_TENANT.format(tenant=one)))
            records += [r for r in map(self._record, ids) if r is not None]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def revoke(self, key_id: str, tenant: str | None = None) -> KeyRecord:
        """Revoke the key (of this tenant, when given); KeyNotFoundError otherwise."""
        record = self._record(key_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise KeyNotFoundError(key_id)
        if not record.revoked_at:
            record = KeyRecord(**{**asdict(record), "revoked_at": _now()})
            self._client.set(_RECORD.format(key_id=key_id), json.dumps(asdict(record)))
        return record

    def has_admin(self, tenant: str) -> bool:
        return any(Role.ADMIN in r.roles and not r.revoked_at for r in self.list(tenant))

    def _store(self, secret: str, tenant: str, name: str, roles: frozenset[Role]) -> KeyRecord:
        digest = digest_of(secret)
        record = KeyRecord(
            key_id=key_id_of(digest),
            tenant=check_tenant(tenant),
            name=principal_name(name),
            roles=sorted(role.value for role in roles),
            created_at=_now(),
            digest=digest,
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.set(_RECORD.format(key_id=record.key_id), json.dumps(asdict(record)))
        pipe.sadd(_BY_TENANT.format(tenant=tenant), record.key_id)
        pipe.sadd(_TENANTS, tenant)
        pipe.execute()
        return record

    def _record(self, key_id: str) -> KeyRecord | None:
        raw = self._client.get(_RECORD.format(key_id=key_id))
        return None if raw is None else KeyRecord(**json.loads(raw))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

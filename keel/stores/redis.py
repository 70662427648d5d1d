"""The Redis client Keel's own records use (the FalkorDB server's keyspace)."""

from __future__ import annotations

import re

import redis

from keel.core.identity import TENANT_PATTERN


def make_redis(url: str) -> redis.Redis:
    """A Redis client with its own retries off: Temporal owns retries."""
    return redis.Redis.from_url(url, retry=None, socket_timeout=5, socket_connect_timeout=5)


def tenants_of(client: redis.Redis, pattern: str) -> list[str]:
    """The tenants that have a key of `pattern` ("keel:reviews:{tenant}"): found by a SCAN."""
    prefix, _, suffix = pattern.partition("{tenant}")
    found = set()
    for raw in client.scan_iter(match=f"{prefix}*{suffix}", count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        tenant = key.removeprefix(prefix).removesuffix(suffix) if suffix else key.removeprefix(prefix)
        if re.fullmatch(TENANT_PATTERN, tenant):  # another record under the same prefix is no tenant
            found.add(tenant)
    return sorted(found)

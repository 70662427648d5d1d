"""The Redis client Keel's own records use (the FalkorDB server's keyspace)."""

from __future__ import annotations

import redis


def make_redis(url: str) -> redis.Redis:
    """A Redis client with its own retries off: Temporal owns retries."""
    return redis.Redis.from_url(url, retry=None, socket_timeout=5, socket_connect_timeout=5)

"""Reviewer-page sign-ins: a random session id in an HttpOnly cookie, its record in Redis.

The cookie never holds the key. The record holds the key's id (so revoking the key ends the
session on its next request) and the session's CSRF token; it expires by itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

_SESSION = "keel:auth:session:{digest}"  # by the id's hash: a Redis dump holds no live session id


@dataclass(frozen=True)
class Session:
    key_id: str
    csrf: str


def _key(session_id: str) -> str:
    return _SESSION.format(digest=hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest())


class SessionStore:
    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._client = client
        self._ttl_s = max(1, int(ttl_s))

    def open(self, key_id: str) -> tuple[str, Session]:
        """A new session for the key: its id (for the cookie) and its record."""
        session_id = secrets.token_urlsafe(32)
        session = Session(key_id=key_id, csrf=secrets.token_urlsafe(32))
        self._client.set(_key(session_id), json.dumps(asdict(session)), ex=self._ttl_s)
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        raw = self._client.get(_key(session_id))
        return None if raw is None else Session(**json.loads(raw))

    def close(self, session_id: str) -> None:
        self._client.delete(_key(session_id))

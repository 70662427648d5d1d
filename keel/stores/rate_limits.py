"""Per-key request rates, counted in Redis so every API process shares one count.

A fixed one-minute window per key and action: one INCR and one EXPIRE in a single round trip.
A burst at a window's edge may pass up to twice the rate over two minutes; in exchange the
check costs one round trip and nothing else to keep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

_COUNT = "keel:rate:{action}:{key_id}:{window}"
WINDOW_S = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int  # seconds until the window ends (when refused)


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def hit(self, action: str, key_id: str, per_minute: int, now_s: float | None = None) -> RateDecision:
        """Count one request; refused when it is over `per_minute` in this window."""
        now_s = time.time() if now_s is None else now_s
        window = int(now_s // WINDOW_S)
        key = _COUNT.format(action=action, key_id=key_id, window=window)
        pipe = self._client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count, _ = pipe.execute()
        retry_after = max(1, int((window + 1) * WINDOW_S - now_s + 0.999))
        return RateDecision(allowed=int(count) <= per_minute, retry_after_s=retry_after)

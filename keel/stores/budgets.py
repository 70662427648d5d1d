"""Budget counters in Redis: reserve before a model call, settle after it, in one script each.

Each budget line keeps, under its key K: a hash K {spent, reserved} (integer nanos), a sorted set
K:r of open reservations scored by when they expire, and a hash K:a of their amounts. Reserving
first releases the expired reservations of every line (a worker killed mid-call), then checks
spent + reserved + this call against every hard limit and adds the reservation to all lines, or to
none: Redis runs a script alone, so fifty concurrent calls are checked one after another against
the same counters, never all against the same old figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keel.core.budgets import BudgetLine, LineState, Reservation

if TYPE_CHECKING:
    import redis

# Release the expired reservations of every line (KEYS), then return each line's spent, reserved.
_PURGE = """
local function purge(k, now)
  local expired = redis.call('ZRANGEBYSCORE', k .. ':r', '-inf', now)
  for _, rid in ipairs(expired) do
    local amount = tonumber(redis.call('HGET', k .. ':a', rid) or '0')
    redis.call('HINCRBY', k, 'reserved', -amount)
    redis.call('HDEL', k .. ':a', rid)
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', k .. ':r', '-inf', now) end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function figures(k)
  return tonumber(redis.call('HGET', k, 'spent') or '0'), tonumber(redis.call('HGET', k, 'reserved') or '0')
end
"""

# ARGV: id, amount, ttl_ms, then per line: limit, hard (1/0), counter ttl s.
# Returns {1, soft line indexes and figures...} granted, or {0, line index, spent, reserved} refused.
_RESERVE = (
    _PURGE
    + """
local id, amount, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local soft = {}
for i, k in ipairs(KEYS) do
  purge(k, now)
  if redis.call('HEXISTS', k .. ':a', id) == 1 then return {1} end  -- this call reserved already
  local spent, reserved = figures(k)
  local limit, hard = tonumber(ARGV[3 * i + 1]), ARGV[3 * i + 2]
  if spent + reserved + amount > limit then
    if hard == '1' then return {0, i, spent, reserved} end
    table.insert(soft, i); table.insert(soft, spent); table.insert(soft, reserved)
  end
end
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k .. ':r', now + ttl, id)
  redis.call('HSET', k .. ':a', id, amount)
  redis.call('HINCRBY', k, 'reserved', amount)
  local keep = tonumber(ARGV[3 * i + 3])
  for _, key in ipairs({k, k .. ':r', k .. ':a'}) do redis.call('EXPIRE', key, keep) end
end
local out = {1}
for _, v in ipairs(soft) do table.insert(out, v) end
return out
"""
)

# KEYS: the lines, then the settle marker. ARGV: id, actual, marker ttl s.
# Once per reservation id: a retried settle (the activity retried after it) adds nothing twice.
_SETTLE = (
    _PURGE
    + """
local marker = KEYS[#KEYS]
if not redis.call('SET', marker, '1', 'NX', 'EX', tonumber(ARGV[3])) then return 0 end
local id, actual = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS - 1 do
  local k = KEYS[i]
  local amount = redis.call('HGET', k .. ':a', id)
  if amount then
    redis.call('HINCRBY', k, 'reserved', -tonumber(amount))
    redis.call('HDEL', k .. ':a', id)
    redis.call('ZREM', k .. ':r', id)
  end
  redis.call('HINCRBY', k, 'spent', actual)
end
return 1
"""
)

# Release what has expired and return {spent, reserved} per line.
_STATE = (
    _PURGE
    + """
local now = now_ms()
local out = {}
for _, k in ipairs(KEYS) do
  purge(k, now)
  local spent, reserved = figures(k)
  table.insert(out, spent); table.insert(out, reserved)
end
return out
"""
)

_SETTLED_TTL_S = 7 * 86_400


class BudgetLedger:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._state = client.register_script(_STATE)

    def reserve(
        self, reservation_id: str, lines: Sequence[BudgetLine], amount_nanos: int, ttl_s: float
    ) -> Reservation:
        """Reserve `amount_nanos` on every line, or on none when a hard line would pass its limit."""
        if not lines:
            return Reservation(reservation_id, amount_nanos, granted=True)
        args: list[Any] = [reservation_id, amount_nanos, int(ttl_s * 1000)]
        for line in lines:
            args += [line.limit_nanos, 1 if line.hard else 0, line.ttl_s]
        reply = [int(v) for v in self._reserve(keys=[line.key for line in lines], args=args)]
        if reply[0] == 0:
            refused = LineState(lines[reply[1] - 1], reply[2], reply[3])
            return Reservation(reservation_id, amount_nanos, granted=False, refused_by=refused)
        soft = tuple(
            LineState(lines[reply[i] - 1], reply[i + 1], reply[i + 2]) for i in range(1, len(reply), 3)
        )
        return Reservation(reservation_id, amount_nanos, granted=True, soft_exceeded=soft)

    def settle(self, reservation_id: str, lines: Sequence[BudgetLine], actual_nanos: int) -> bool:
        """Record the call's actual cost and release its reservation; False when settled already."""
        if not lines:
            return True
        marker = f"{lines[0].key}:settled:{reservation_id}"
        keys = [line.key for line in lines] + [marker]
        return bool(self._settle(keys=keys, args=[reservation_id, actual_nanos, _SETTLED_TTL_S]))

    def state(self, lines: Sequence[BudgetLine]) -> list[LineState]:
        """Each line's spent and reserved now, expired reservations released first."""
        if not lines:
            return []
        reply = [int(v) for v in self._state(keys=[line.key for line in lines])]
        return [LineState(line, reply[2 * i], reply[2 * i + 1]) for i, line in enumerate(lines)]

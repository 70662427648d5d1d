"""Usage rolled up in Redis: per tenant and UTC day, one hash whose fields name the key, model,
step and pipeline version of what they sum.

Each step's usage is recorded once, under an idempotency id (workflow, activity, attempt): a
retried record adds nothing, while a retried step that did its work again is recorded again,
because that work was paid for again. Sums are integers (nanos of cost, microseconds of time), so
workers recording in any order reach the same totals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from keel.core.usage import METRICS, StepUsage, UsageRow, from_nanos, to_nanos

if TYPE_CHECKING:
    import redis

_DAY = "keel:usage:{{{tenant}}}:{day}"  # hash: "key|model|step|pipeline|metric" -> int
# hash: "model|step|metric" -> int, since the start: what Prometheus counters read.
_TOTAL = "keel:usage:{{{tenant}}}:total"
_TENANTS = "keel:usage:tenants"
_RECORDED = "keel:usage:{{{tenant}}}:recorded:{id}"
_RECORDED_TTL_S = 7 * 86_400
# Usage is kept 400 days: a year's showback and the same month a year before.
_KEEP_S = 400 * 86_400
_SEP = "|"

# KEYS: the day's hash, the recorded marker, the tenants set, the totals hash. ARGV: tenant, ttl s,
# marker ttl s, then (day field, total field, increment) triples. Adds nothing when the marker
# exists (recorded already).
_RECORD = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then return 0 end
for i = 4, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 2])
  redis.call('HINCRBY', KEYS[4], ARGV[i + 1], ARGV[i + 2])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# Stored integers per metric: counts as they are, time in microseconds, cost in nanos.
_SCALE = {"latency_ms": 1000, "cpu_ms": 1000, "waited_ms": 1000}


def _field(key_id: str, model: str, step: str, pipeline: str, metric: str) -> str:
    return _SEP.join((key_id, model, step, pipeline, metric))


def _stored(metric: str, value: float) -> int:
    if metric == "cost":
        return to_nanos(value)
    return round(value * _SCALE.get(metric, 1))


def _read(metric: str, stored: int) -> float:
    if metric == "cost":
        return from_nanos(stored)
    return stored / _SCALE[metric] if metric in _SCALE else stored


class UsageLedger:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._record = client.register_script(_RECORD)

    def record(
        self,
        record_id: str,
        tenant: str,
        key_id: str,
        day: date,
        pipeline: str,
        usage: StepUsage,
        tasks: int = 0,
    ) -> bool:
        """Add one step's usage (and `tasks` finished tasks); False when `record_id` was recorded."""
        values = {
            "tasks": tasks,
            "calls": usage.calls,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "texts": usage.texts,
            "latency_ms": usage.latency_ms,
            "cpu_ms": usage.cpu_ms,
            "waited_ms": usage.waited_ms,
            "cost": usage.cost,
        }
        args: list[str | int] = [tenant, _KEEP_S, _RECORDED_TTL_S]
        for metric, value in values.items():
            stored = _stored(metric, value)
            if stored:
                total_field = _SEP.join((usage.model, usage.step, metric))
                args += [_field(key_id, usage.model, usage.step, pipeline, metric), total_field, stored]
        keys = [
            _DAY.format(tenant=tenant, day=day.isoformat()),
            _RECORDED.format(tenant=tenant, id=record_id),
            _TENANTS,
            _TOTAL.format(tenant=tenant),
        ]
        return bool(self._record(keys=keys, args=args))

    def tenants(self) -> list[str]:
        return sorted(t.decode() if isinstance(t, bytes) else t for t in self._client.smembers(_TENANTS))

    def totals(self, tenant: str) -> dict[tuple[str, str, str], float]:
        """The tenant's usage since the start by (model, step, metric): monotonic, for counters."""
        stored: dict[Any, Any] = self._client.hgetall(_TOTAL.format(tenant=tenant))
        totals = {}
        for raw_field, raw_value in stored.items():
            model, step, metric = raw_field.decode().split(_SEP)
            totals[(model, step, metric)] = _read(metric, int(raw_value))
        return totals

    def rows(self, tenants: list[str], start: date, end: date) -> list[UsageRow]:
        """Every recorded combination of the tenants' usage from `start` to `end` (inclusive)."""
        days = list(_days(start, end))
        pipe = self._client.pipeline(transaction=False)
        for tenant in tenants:
            for day in days:
                pipe.hgetall(_DAY.format(tenant=tenant, day=day.isoformat()))
        replies = iter(pipe.execute())
        rows: list[UsageRow] = []
        for tenant in tenants:
            for day in days:
                rows += _rows_of(tenant, day, next(replies))
        return rows


def _rows_of(tenant: str, day: date, stored: dict[bytes, bytes]) -> list[UsageRow]:
    by_line: dict[tuple[str, ...], UsageRow] = {}
    for raw_field, raw_value in stored.items():
        key_id, model, step, pipeline, metric = raw_field.decode().split(_SEP)
        if metric not in METRICS:
            continue
        row = by_line.setdefault(
            (key_id, model, step, pipeline),
            UsageRow(
                tenant=tenant, key=key_id, day=day.isoformat(), model=model, step=step, pipeline=pipeline
            ),
        )
        setattr(row, metric, _read(metric, int(raw_value)))
    return list(by_line.values())


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)

"""The semantic answer cache in Redis: per tenant, invalidated by document, looked up in memory.

Under `keel:cache:{tenant}:` (braces: a Redis Cluster hash tag, one slot per tenant) each tenant
keeps a hash `entries` (task id -> the CachedAnswer as JSON), `vectors` (task id -> float32
question embedding), `policies` (task id -> review policy digest), `cites` (task id -> JSON list
of cited document ids), a sorted set `order` (task id by creation time, for eviction), a set
`doc:<document id>` per cited document (the task ids citing it), a generation counter `gen`
bumped by every change, and `log`: the last changes, one line per generation.

Every change is one Lua script, so a reader never sees an entry half written or half removed.
Each script is given the tenant's `gen` key, which routes it in a cluster; the other keys it
touches share that key's hash tag, so they are on the same node.

A lookup keeps the tenant's vectors in this process as a matrix, tagged with the generation it
was read at: when `gen` has not moved, a lookup is one GET and a matrix-vector product (and an
HMGET of the entry on a hit); when it has, the mirror replays the log's few changes, and reads
everything again only when it fell further behind than the log keeps.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import redis

# A question's embedding: what the encoder returns (a list), or a numpy row.
Vector = Sequence[float] | np.ndarray
# Changes the log keeps: a mirror further behind than this reads the tenant again.
LOG_KEPT = 512
# Log lines a catching-up mirror reads beyond those it knows it needs (changes made meanwhile).
REPLAY_MARGIN = 16
# Tenants whose vectors one process keeps in memory; the least recently looked up go first.
MIRRORED_TENANTS = 64
# Entries over the threshold a lookup offers to `accept`, best first, before it calls it a miss.
CANDIDATES = 5

_DROP = """
local function drop(p, id)
  local cites = redis.call('HGET', p .. 'cites', id)
  if not cites then return 0 end
  for _, doc in ipairs(cjson.decode(cites)) do redis.call('SREM', p .. 'doc:' .. doc, id) end
  redis.call('HDEL', p .. 'entries', id)
  redis.call('HDEL', p .. 'vectors', id)
  redis.call('HDEL', p .. 'policies', id)
  redis.call('HDEL', p .. 'cites', id)
  redis.call('ZREM', p .. 'order', id)
  return 1
end
local function bump(p, added, removed, kept)
  local gen = redis.call('INCR', p .. 'gen')
  redis.call('RPUSH', p .. 'log', cjson.encode({g = gen, add = added, del = removed}))
  redis.call('LTRIM', p .. 'log', -kept, -1)
  return gen
end
"""

# ARGV: prefix, task id, entry JSON, vector bytes, policy, cites JSON, created (score), max, kept.
# Returns the task ids evicted. A log line's ids are added first, then removed (evictions come
# after the add, and may evict the entry just added when it is the oldest).
_REMEMBER = (
    _DROP
    + """
local p, id = ARGV[1], ARGV[2]
drop(p, id)  -- the same task remembered again: its new entry replaces the old one
redis.call('HSET', p .. 'entries', id, ARGV[3])
redis.call('HSET', p .. 'vectors', id, ARGV[4])
redis.call('HSET', p .. 'policies', id, ARGV[5])
redis.call('HSET', p .. 'cites', id, ARGV[6])
redis.call('ZADD', p .. 'order', tonumber(ARGV[7]), id)
for _, doc in ipairs(cjson.decode(ARGV[6])) do redis.call('SADD', p .. 'doc:' .. doc, id) end
local excess = redis.call('ZCARD', p .. 'order') - tonumber(ARGV[8])
local evicted = {}
if excess > 0 then
  for _, old in ipairs(redis.call('ZRANGE', p .. 'order', 0, excess - 1)) do
    drop(p, old)
    table.insert(evicted, old)
  end
end
bump(p, {id}, evicted, tonumber(ARGV[9]))
return evicted
"""
)

# ARGV: prefix, log kept, then the document ids. Returns how many entries were removed.
_INVALIDATE = (
    _DROP
    + """
local p = ARGV[1]
local removed = {}
for i = 3, #ARGV do
  for _, id in ipairs(redis.call('SMEMBERS', p .. 'doc:' .. ARGV[i])) do
    if drop(p, id) == 1 then table.insert(removed, id) end
  end
  redis.call('DEL', p .. 'doc:' .. ARGV[i])
end
if #removed > 0 then bump(p, {}, removed, tonumber(ARGV[2])) end
return #removed
"""
)

# ARGV: prefix, log kept, task id. Returns 1 when there was such an entry.
_FORGET = (
    _DROP
    + """
local p = ARGV[1]
if drop(p, ARGV[3]) == 0 then return 0 end
bump(p, {}, {ARGV[3]}, tonumber(ARGV[2]))
return 1
"""
)


@dataclass
class CachedAnswer:
    """An answered task the cache may serve again, with what makes it still right."""

    tenant: str
    task_id: str
    question: str
    result: dict[str, Any]  # the TaskResult, as JSON
    versions: dict[str, str]  # cited document id -> the version its quotes were read from
    policy: str  # review_policy_digest of the request it answered
    approved_by: str  # who approved it; "" when it needed no review
    created_at: str  # ISO time

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedAnswer:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class _Mirror:
    """One tenant's vectors as read at generation `gen`; never changed in place (lock-free reads)."""

    gen: int
    ids: tuple[str, ...]
    policies: np.ndarray  # one review policy digest per id (a numpy array: compared at once)
    matrix: np.ndarray  # one float32 row per id, L2-normalised

    def without(self, gone: set[str]) -> _Mirror:
        keep = [i for i, task_id in enumerate(self.ids) if task_id not in gone]
        if len(keep) == len(self.ids):
            return self
        return _Mirror(self.gen, tuple(self.ids[i] for i in keep), self.policies[keep], self.matrix[keep])

    def plus(self, ids: list[str], policies: list[str], rows: list[np.ndarray]) -> _Mirror:
        """With more rows; one of another dimension than the rest (another model's) is left out."""
        dimension = self.matrix.shape[1] if self.ids else len(rows[0]) if rows else 0
        kept = [(i, p, r) for i, p, r in zip(ids, policies, rows, strict=True) if len(r) == dimension]
        if not kept:
            return self
        return _Mirror(
            self.gen,
            self.ids + tuple(i for i, _, _ in kept),
            np.concatenate([self.policies, np.array([p for _, p, _ in kept], dtype=str)]),
            np.vstack([self.matrix.reshape(-1, dimension), *(r for _, _, r in kept)]),
        )

    def at(self, gen: int) -> _Mirror:
        return _Mirror(gen, self.ids, self.policies, self.matrix)


def _empty(gen: int) -> _Mirror:
    return _Mirror(gen, (), np.array([], dtype=str), np.zeros((0, 0), dtype=np.float32))


def _unit(vector: Vector) -> np.ndarray:
    """As float32, L2-normalised (encoders normalise already; a dot product is then the cosine)."""
    row = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(row))
    return row / norm if norm > 0 else row


class AnswerCache:
    """Per-tenant cached answers, with their question embeddings (L2-normalised)."""

    def __init__(self, client: redis.Redis, max_entries_per_tenant: int) -> None:
        if max_entries_per_tenant < 1:
            raise ValueError(f"max_entries_per_tenant must be at least 1, got {max_entries_per_tenant}")
        self._client = client
        self._max = max_entries_per_tenant
        self._remember = client.register_script(_REMEMBER)
        self._invalidate = client.register_script(_INVALIDATE)
        self._forget = client.register_script(_FORGET)
        self._lock = threading.Lock()
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()

    @staticmethod
    def prefix(tenant: str) -> str:
        return f"keel:cache:{{{tenant}}}:"

    def remember(self, entry: CachedAnswer, vector: Vector) -> None:
        """Keep `entry` (replacing one of the same task id), evicting the tenant's oldest beyond the limit."""
        row = _unit(vector)
        created = datetime.fromisoformat(entry.created_at).timestamp()
        cites = json.dumps(sorted(entry.versions))
        self._remember(
            keys=[self._gen_key(entry.tenant)],
            args=[
                self.prefix(entry.tenant), entry.task_id, entry.to_json(), row.tobytes(),
                entry.policy, cites, created, self._max, LOG_KEPT,
            ]
        )  # fmt: skip

    def lookup(
        self,
        tenant: str,
        vector: Vector,
        policy: str,
        threshold: float,
        accept: Callable[[CachedAnswer], bool] | None = None,
    ) -> tuple[CachedAnswer, float] | None:
        """The entry most similar to `vector` among those answered under `policy`, with its cosine,
        when that is at least `threshold`; None otherwise. With `accept` (a guard on the entry,
        e.g. that its question names the same things): the most similar entry it accepts, among
        the CANDIDATES most similar over the threshold."""
        mirror = self._current(tenant)
        query = _unit(vector)
        if not mirror.ids or mirror.matrix.shape[1] != query.shape[0]:
            return None
        # einsum, not `@`: numpy's own loop on one core. BLAS's threads made the same product 10x
        # slower (3.8 vs 0.34 ms, 5,000 x 384) on 2 busy cores, where the workers' other threads run.
        scores = np.einsum("ij,j->i", mirror.matrix, query)
        scores[mirror.policies != policy] = -np.inf
        over = np.flatnonzero(scores >= threshold)
        if not len(over):
            return None
        ranked = over[np.argsort(-scores[over], kind="stable")][: CANDIDATES if accept else 1]
        raws = self._client.hmget(f"{self.prefix(tenant)}entries", [mirror.ids[i] for i in ranked])
        for i, raw in zip(ranked, raws, strict=True):
            if raw is None:  # removed since the mirror was read: a miss is always safe
                continue
            found = CachedAnswer.from_json(raw)
            if accept is None or accept(found):
                return found, float(scores[i])
        return None

    def invalidate_documents(self, tenant: str, document_ids: Sequence[str]) -> int:
        """Remove every entry citing any of `document_ids`, at once; how many were removed."""
        if not document_ids:
            return 0
        keys = [self._gen_key(tenant)]
        return int(self._invalidate(keys=keys, args=[self.prefix(tenant), LOG_KEPT, *document_ids]))

    def forget(self, tenant: str, task_id: str) -> bool:
        """Remove one entry; whether there was one."""
        return bool(self._forget(keys=[self._gen_key(tenant)], args=[self.prefix(tenant), LOG_KEPT, task_id]))

    def _gen_key(self, tenant: str) -> str:
        return f"{self.prefix(tenant)}gen"

    def count(self, tenant: str) -> int:
        return int(self._client.zcard(f"{self.prefix(tenant)}order"))

    def _current(self, tenant: str) -> _Mirror:
        """The tenant's mirror at the generation Redis holds now, brought up to date if it moved."""
        prefix = self.prefix(tenant)
        gen = int(self._client.get(self._gen_key(tenant)) or 0)
        with self._lock:
            mirror = self._mirrors.get(tenant)
            if mirror is not None:
                self._mirrors.move_to_end(tenant)
        if mirror is None or mirror.gen != gen:
            # Outside the lock: two threads may both catch up, and the later generation wins
            # (unless the generation went backwards: the tenant's keys were dropped).
            mirror = (mirror and self._replay(prefix, mirror, gen)) or self._read(prefix)
            with self._lock:
                installed = self._mirrors.get(tenant)
                if installed is None or installed.gen < mirror.gen or gen < installed.gen:
                    self._mirrors[tenant] = mirror
                    self._mirrors.move_to_end(tenant)
                    while len(self._mirrors) > MIRRORED_TENANTS:
                        self._mirrors.popitem(last=False)
        return mirror

    def _read(self, prefix: str) -> _Mirror:
        """Everything, as of one generation (MULTI: no change lands between the reads)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(f"{prefix}gen")
        pipe.hgetall(f"{prefix}vectors")
        pipe.hgetall(f"{prefix}policies")
        raw_gen, vectors, policies = pipe.execute()
        ids = [task_id.decode() for task_id in vectors]
        rows = [_unit(np.frombuffer(vectors[task_id.encode()], dtype=np.float32)) for task_id in ids]
        labels = [_text(policies.get(task_id.encode(), b"")) for task_id in ids]
        return _empty(int(raw_gen or 0)).plus(ids, labels, rows)

    def _replay(self, prefix: str, mirror: _Mirror, seen: int) -> _Mirror | None:
        """The mirror with the log's changes since its generation applied; None when the log no
        longer reaches back that far (or the generation went backwards: the keys were dropped).
        `seen`: the generation just read; one line per generation, so only the last few lines are
        read (with a margin for changes made since)."""
        behind = seen - mirror.gen + REPLAY_MARGIN
        if seen < mirror.gen or behind > LOG_KEPT:
            return None
        pipe = self._client.pipeline(transaction=True)
        pipe.get(f"{prefix}gen")
        pipe.lrange(f"{prefix}log", -behind, -1)
        raw_gen, lines = pipe.execute()
        gen = int(raw_gen or 0)
        changes = [json.loads(line) for line in lines]
        newer = [c for c in changes if c["g"] > mirror.gen]
        if gen < mirror.gen or [c["g"] for c in newer] != list(range(mirror.gen + 1, gen + 1)):
            return None
        added: dict[str, None] = {}  # to read: present at `gen`, as far as the log says
        gone: set[str] = set()  # to drop from the mirror
        for change in newer:
            for task_id in _ids(change["add"]):
                added[task_id] = None
            for task_id in _ids(change["del"]):
                gone.add(task_id)
                added.pop(task_id, None)
        ids = list(added)
        updated = mirror.without(gone | set(ids))
        if ids:
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(f"{prefix}vectors", ids)
            pipe.hmget(f"{prefix}policies", ids)
            vectors, policies = pipe.execute()
            # One removed again since the log was read has no vector: the log's next line drops it.
            present = [(i, v, p) for i, v, p in zip(ids, vectors, policies, strict=True) if v is not None]
            updated = updated.plus(
                [i for i, _, _ in present],
                [_text(p or b"") for _, _, p in present],
                [_unit(np.frombuffer(v, dtype=np.float32)) for _, v, _ in present],
            )
        return updated.at(gen)


def _ids(value: Any) -> list[str]:
    # cjson encodes an empty Lua table as {}, not [].
    return [str(v) for v in value] if isinstance(value, list) else []


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw

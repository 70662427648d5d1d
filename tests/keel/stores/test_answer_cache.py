"""The answer cache on a real FalkorDB server: hits, misses, invalidation, eviction, other workers."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from keel.stores.answer_cache import LOG_KEPT, AnswerCache, CachedAnswer
from keel.stores.redis import make_redis

pytestmark = pytest.mark.integration

DIMENSION = 384
POLICY = "policy-a"
START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, cosine: float, seed: int = 99) -> np.ndarray:
    """A unit vector at exactly `cosine` to `vector`."""
    other = unit(seed)
    orthogonal = other - (other @ vector) * vector
    orthogonal /= np.linalg.norm(orthogonal)
    return cosine * vector + np.sqrt(1 - cosine**2) * orthogonal


def entry(
    tenant: str, task_id: str, documents: dict[str, str], minute: int = 0, policy: str = POLICY
) -> CachedAnswer:
    return CachedAnswer(
        tenant=tenant,
        task_id=task_id,
        question=f"question of {task_id}",
        result={"status": "completed", "answer": f"answer of {task_id}", "citations": []},
        versions=documents,
        policy=policy,
        approved_by="",
        created_at=(START + timedelta(minutes=minute)).isoformat(),
    )


@pytest.fixture
def cache(falkordb_url: str) -> AnswerCache:
    return AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=100)


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_a_similar_question_hits_and_a_dissimilar_one_misses(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "task-1", {"doc-a": "v1"}), unit(1))
    cache.remember(entry(tenant, "task-2", {"doc-b": "v1"}), unit(2))
    hit = cache.lookup(tenant, near(unit(1), 0.97), POLICY, threshold=0.95)
    assert hit is not None
    found, similarity = hit
    assert found.task_id == "task-1" and found.versions == {"doc-a": "v1"}
    assert found.result["answer"] == "answer of task-1"
    assert similarity == pytest.approx(0.97, abs=1e-4)
    assert cache.lookup(tenant, near(unit(1), 0.90), POLICY, threshold=0.95) is None
    assert cache.count(tenant) == 2


def test_another_review_policy_or_tenant_never_hits(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "task-1", {"doc-a": "v1"}), unit(1))
    assert cache.lookup(tenant, unit(1), "policy-b", threshold=0.5) is None
    assert cache.lookup(f"{tenant}-other", unit(1), POLICY, threshold=0.5) is None
    # The best match under the request's policy is served, not a closer one under another.
    cache.remember(entry(tenant, "task-2", {"doc-a": "v1"}, policy="policy-b"), near(unit(1), 0.99))
    hit = cache.lookup(tenant, near(unit(1), 0.99), "policy-b", threshold=0.9)
    assert hit is not None and hit[0].task_id == "task-2"


def test_a_changed_cited_document_removes_every_answer_citing_it(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "cites-a", {"doc-a": "v1"}), unit(1))
    cache.remember(entry(tenant, "cites-a-and-b", {"doc-a": "v1", "doc-b": "v3"}), unit(2))
    cache.remember(entry(tenant, "cites-b", {"doc-b": "v3"}), unit(3))
    assert cache.lookup(tenant, unit(1), POLICY, 0.95) is not None  # the mirror is now loaded
    assert cache.invalidate_documents(tenant, ["doc-a"]) == 2
    assert cache.lookup(tenant, unit(1), POLICY, 0.95) is None
    assert cache.lookup(tenant, unit(2), POLICY, 0.95) is None
    assert cache.lookup(tenant, unit(3), POLICY, 0.95) is not None
    assert cache.count(tenant) == 1
    # The removed entries left no reverse-index membership behind: doc-b now holds only its own.
    client = cache._client
    assert client.smembers(f"{AnswerCache.prefix(tenant)}doc:doc-b") == {b"cites-b"}
    assert not client.exists(f"{AnswerCache.prefix(tenant)}doc:doc-a")
    assert cache.invalidate_documents(tenant, ["doc-a", "never-cited"]) == 0


def test_forget_removes_one_entry(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "task-1", {"doc-a": "v1"}), unit(1))
    assert cache.forget(tenant, "task-1")
    assert not cache.forget(tenant, "task-1")
    assert cache.lookup(tenant, unit(1), POLICY, 0.5) is None
    assert cache.count(tenant) == 0


def test_the_oldest_entries_go_beyond_the_limit(falkordb_url: str, tenant: str) -> None:
    cache = AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=3)
    for n in range(5):
        cache.remember(entry(tenant, f"task-{n}", {f"doc-{n}": "v1"}, minute=n), unit(n))
    assert cache.count(tenant) == 3
    assert cache.lookup(tenant, unit(0), POLICY, 0.95) is None
    assert cache.lookup(tenant, unit(1), POLICY, 0.95) is None
    assert all(cache.lookup(tenant, unit(n), POLICY, 0.95) is not None for n in (2, 3, 4))
    assert not cache._client.exists(f"{AnswerCache.prefix(tenant)}doc:doc-0")


def test_a_change_made_by_another_worker_is_seen_at_once(falkordb_url: str, tenant: str) -> None:
    mine = AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=100)
    theirs = AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=100)
    assert mine.lookup(tenant, unit(1), POLICY, 0.95) is None  # mirrored while empty
    theirs.remember(entry(tenant, "task-1", {"doc-a": "v1"}), unit(1))
    hit = mine.lookup(tenant, unit(1), POLICY, 0.95)
    assert hit is not None and hit[0].task_id == "task-1"
    theirs.invalidate_documents(tenant, ["doc-a"])
    assert mine.lookup(tenant, unit(1), POLICY, 0.95) is None
    # Further behind than the log reaches: the mirror reads the tenant again.
    for n in range(LOG_KEPT + 5):
        theirs.remember(entry(tenant, f"bulk-{n}", {"doc-b": "v1"}, minute=n), unit(1000 + n))
    hit = mine.lookup(tenant, unit(1000 + LOG_KEPT), POLICY, 0.95)
    assert hit is not None and hit[0].task_id == f"bulk-{LOG_KEPT}"
    assert len(mine._mirrors[tenant].ids) == 100  # the limit, after eviction


def test_concurrent_remembers_lookups_and_invalidations_stay_consistent(
    falkordb_url: str, tenant: str
) -> None:
    workers = [AnswerCache(make_redis(falkordb_url), max_entries_per_tenant=1000) for _ in range(2)]

    def work(n: int) -> None:
        cache = workers[n % 2]
        cache.remember(entry(tenant, f"task-{n}", {f"doc-{n % 5}": "v1"}, minute=n), unit(n))
        cache.lookup(tenant, unit(n), POLICY, 0.95)
        if n % 10 == 9:
            cache.invalidate_documents(tenant, ["doc-4"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(200)))
    workers[0].invalidate_documents(tenant, ["doc-4"])
    # Whatever the interleaving: every entry left is in the mirror, none citing doc-4 is left.
    survivors = {n for n in range(200) if workers[0].lookup(tenant, unit(n), POLICY, 0.99) is not None}
    assert survivors == {n for n in range(200) if n % 5 != 4}
    assert workers[1].count(tenant) == len(survivors)
    assert set(workers[1]._current(tenant).ids) == {f"task-{n}" for n in survivors}


def test_a_lookup_over_thousands_of_entries_takes_milliseconds(cache: AnswerCache, tenant: str) -> None:
    big = AnswerCache(cache._client, max_entries_per_tenant=5000)
    pipe_entries = [(entry(tenant, f"task-{n}", {f"doc-{n}": "v1"}, minute=n), unit(n)) for n in range(3000)]
    for made, vector in pipe_entries:
        big.remember(made, vector)
    big.lookup(tenant, unit(0), POLICY, 0.95)  # loads the mirror
    started = time.perf_counter()
    for n in range(100):
        assert big.lookup(tenant, unit(n), POLICY, 0.95) is not None
    per_lookup_ms = (time.perf_counter() - started) * 1000 / 100
    assert per_lookup_ms < 20  # a few ms on a quiet machine; generous for a shared one


def test_a_guard_passes_over_a_closer_entry_it_refuses(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "closest", {"doc-a": "v1"}), near(unit(1), 0.99))
    cache.remember(entry(tenant, "second", {"doc-a": "v1"}), near(unit(1), 0.97, seed=7))
    hit = cache.lookup(tenant, unit(1), POLICY, 0.95, accept=lambda e: e.task_id != "closest")
    assert hit is not None and hit[0].task_id == "second"
    assert cache.lookup(tenant, unit(1), POLICY, 0.95, accept=lambda e: False) is None


def test_dropped_keys_are_noticed(cache: AnswerCache, tenant: str) -> None:
    cache.remember(entry(tenant, "task-1", {"doc-a": "v1"}), unit(1))
    cache.remember(entry(tenant, "task-2", {"doc-a": "v1"}), unit(2))
    assert cache.lookup(tenant, unit(1), POLICY, 0.95) is not None
    client = cache._client
    client.delete(*client.keys(f"{AnswerCache.prefix(tenant)}*"))  # an operator wiped the cache
    assert cache.lookup(tenant, unit(1), POLICY, 0.95) is None
    cache.remember(entry(tenant, "task-3", {"doc-a": "v1"}), unit(3))
    assert cache.lookup(tenant, unit(3), POLICY, 0.95) is not None
    assert cache._mirrors[tenant].ids == ("task-3",)

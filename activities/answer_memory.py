"""The agent's side of the answer cache: find an earlier answer a question may reuse, and keep a
finished task's answer for later ones.

A hit must never be stale. Ingestion drops an entry as soon as a document it cites changes or goes
(the fast path); and every hit is checked here against the cited documents' versions in the graph
before it is served (the guarantee: an entry written while its document was changing is caught).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from keel.core.answer_cache import approved_by, cacheable, cited_versions, same_wording
from keel.core.citations import staleness
from keel.core.domain import TaskResult
from keel.stores.answer_cache import AnswerCache, CachedAnswer
from retrieval.graph_store import GraphStore

log = logging.getLogger(__name__)

EncodeQuery = Callable[[str], Sequence[float]]


class AnswerMemory:
    def __init__(
        self, cache: AnswerCache, graph: GraphStore, encode_query: EncodeQuery, threshold: float
    ) -> None:
        self._cache = cache
        self._graph = graph
        self._encode = encode_query
        self._threshold = threshold

    def find(self, tenant: str, question: str, policy: str) -> tuple[CachedAnswer, float] | str:
        """The earlier answer to reuse and its similarity, or why there is none."""
        # The embedding finds candidates; the wording guard decides. On the committed paraphrase set
        # no cosine threshold alone kept false hits at 0 ("which systems depend on Cinder" and "which
        # systems does Cinder depend on" are 0.99 apart): a wrong answer is worse than a miss.
        found = self._cache.lookup(
            tenant,
            self._encode(question),
            policy,
            self._threshold,
            accept=lambda entry: same_wording(question, entry.question),
        )
        if found is None:
            return "no earlier question under this review policy asks the same"
        entry, similarity = found
        current = self._graph.documents(tenant, list(entry.versions))
        changed = sorted(d for d, v in entry.versions.items() if staleness(v, current.get(d)))
        if changed:
            self._cache.forget(tenant, entry.task_id)
            return f"the answer of {entry.task_id} cites documents changed since: {', '.join(changed)}"
        return entry, similarity

    def keep(self, tenant: str, task_id: str, question: str, result: TaskResult, policy: str) -> str:
        """Keep the answer for later questions; "" when kept, else why not."""
        reason = cacheable(result)
        if reason:
            return reason
        entry = CachedAnswer(
            tenant=tenant,
            task_id=task_id,
            question=question,
            result=asdict(result),
            versions=cited_versions(result),
            policy=policy,
            approved_by=approved_by(result),
            created_at=datetime.now(UTC).isoformat(),
        )
        self._cache.remember(entry, self._encode(question))
        return ""

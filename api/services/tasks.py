"""Tasks as the API shows them: submitted, listed, read with their citations checked, cancelled,
traced. Shared by `/v1/tasks` and the reviewer page (citations); raises ControlError kinds.

A service is built for one caller: every task it starts, finds or lists is of the caller's tenant,
and the caller is the requester of what they submit."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client

from api.schemas import (
    CacheOut,
    CitationOut,
    ObservationOut,
    ReviewOut,
    TaskIn,
    TaskOut,
    TaskResultOut,
    TaskStatusLiteral,
    TaskUsageOut,
    TraceOut,
)
from keel.control import tasks
from keel.control.errors import LimitError
from keel.control.tasks import TaskInfo
from keel.core.chunks import Citation
from keel.core.citations import staleness
from keel.core.domain import ReviewOverrides, TaskRequest, TaskResult
from keel.core.identity import Principal
from keel.core.settings import Settings
from keel.core.tracing import trace_id_for
from keel.stores.traces import LocalTraceStore
from retrieval.graph_store import GraphStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# When the tenant's running tasks are at their cap: about one task's time.
_RETRY_WHEN_FULL_S = 5


class TaskService:
    def __init__(
        self,
        client: Client,
        graph: GraphStore,
        traces: LocalTraceStore,
        settings: Settings,
        caller: Principal,
    ) -> None:
        self._client = client
        self._graph = graph
        self._traces = traces
        self._settings = settings
        self._tenant = caller.tenant
        self._caller = caller

    async def submit(self, body: TaskIn) -> str:
        """Start the task for the caller; LimitError when their tenant runs its most tasks already.

        The count is Temporal's visibility, read before the start: submits racing at the cap
        may pass it by a few, never by a burst's worth.
        """
        cap = self._settings.limits.running_tasks_per_tenant
        if await tasks.count_running(self._client, self._tenant) >= cap:
            raise LimitError(f"tenant {self._tenant} has {cap} tasks running, its limit", _RETRY_WHEN_FULL_S)
        request = TaskRequest(
            question=body.question,
            review=body.review,
            tenant=self._tenant,
            requester=self._caller.name,
            overrides=ReviewOverrides(**body.review_policy.model_dump()),
            key_id=self._caller.key_id,
            cache=body.cache,
        )
        return await tasks.start_task(self._client, request, self._settings.temporal.task_queue)

    async def list_tasks(self, status: TaskStatusLiteral | None, limit: int) -> list[TaskOut]:
        return [_view(info) async for info in tasks.list_tasks(self._client, self._tenant, status, limit)]

    async def get(self, task_id: str) -> TaskOut:
        """The task with its result, whose citations are checked against the documents as they are now."""
        described = await tasks.find_task(self._client, self._tenant, task_id)
        outcome = await tasks.task_outcome(self._client, described)
        view = _view(outcome.info)
        view.reason = outcome.reason
        if outcome.result is not None:
            view.result = await self.result_view(outcome.result)
        return view

    async def cancel(self, task_id: str) -> TaskOut:
        return _view(await tasks.cancel_task(self._client, self._tenant, task_id))

    async def trace(self, task_id: str) -> TraceOut:
        await tasks.find_task(self._client, self._tenant, task_id)
        observations = await asyncio.to_thread(self._traces.load, task_id)
        return TraceOut(
            task_id=task_id,
            trace_id=trace_id_for(task_id),
            observations=[ObservationOut.model_validate(vars(o)) for o in observations],
        )

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def caller(self) -> Principal:
        return self._caller

    async def result_view(self, result: TaskResult) -> TaskResultOut:
        citations = await self.citation_views(result.citations)
        return TaskResultOut(
            answer=result.answer,
            citations=citations,
            stale=any(c.stale for c in citations),
            review=ReviewOut.model_validate(vars(result.review)) if result.review else None,
            reviews=[ReviewOut.model_validate(vars(r)) for r in result.reviews],
            grounding=result.grounding,
            rounds=result.rounds,
            model=result.model,
            usage=TaskUsageOut.model_validate(asdict(result.usage)),
            cache=CacheOut.model_validate(asdict(result.cache)),
        )

    async def citation_views(self, citations: Sequence[Citation]) -> list[CitationOut]:
        """Each citation with its staleness: one graph read for all cited documents.

        Checked on every read and never stored: a document may change at any time after the task.
        """
        cited = [c.document_id for c in citations]
        current = await asyncio.to_thread(self._graph.documents, self._tenant, cited) if cited else {}
        return [_citation_view(c, current.get(c.document_id)) for c in citations]


def _view(info: TaskInfo) -> TaskOut:
    return TaskOut(id=info.id, question=info.question, status=info.status, step=info.step)


def _citation_view(citation: Citation, current: Mapping[str, Any] | None) -> CitationOut:
    reason = staleness(citation.version, current)
    return CitationOut(
        document_id=citation.document_id,
        chunk_id=citation.chunk_id,
        quote=citation.quote,
        version=citation.version,
        file_hash=citation.file_hash,
        modified_at=_iso_time(citation.modified_ns),
        stale=bool(reason),
        stale_reason=reason,
        current_version=str(current.get("version") or "") if current is not None else None,
    )


def _iso_time(ns: int) -> str | None:
    # From whole microseconds: float seconds would round a nanosecond time.
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat() if ns else None

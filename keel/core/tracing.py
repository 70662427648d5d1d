"""One trace per task, one observation per step: Langfuse when configured, always locally.

Local observations go to an `ObservationSink` (keel/stores/traces.py keeps them in the FalkorDB
server's Redis keyspace, which the worker and the API both reach), so `/v1/tasks/{id}/trace`
works with no Langfuse at all. Observation ids are derived from (task, activity, name): a retried
activity overwrites its record, and replay never runs activities, so no step is
recorded twice. Tracing never fails a task: every export error is logged and dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider

    from keel.core.settings import Settings

log = logging.getLogger(__name__)

ObservationType = Literal["span", "retriever", "generation", "evaluator", "guardrail", "chain", "agent"]
_MAX_FIELD_CHARS = 4000  # keeps one trace record small; full payloads stay in their stores


def trace_id_for(task_id: str) -> str:
    """The Langfuse trace id of a task, derived from its workflow id (32 hex chars)."""
    from langfuse import Langfuse

    return Langfuse.create_trace_id(seed=task_id)


def _observation_id(task_id: str, key: str) -> str:
    return hashlib.sha1(f"{task_id}/{key}".encode()).hexdigest()[:16]


def _clip(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= _MAX_FIELD_CHARS else text[:_MAX_FIELD_CHARS] + "…"


@dataclass
class Observation:
    id: str
    trace_id: str
    name: str
    type: str
    start_time: str
    parent_id: str | None = None
    end_time: str | None = None
    latency_ms: float | None = None
    input: Any = None
    output: Any = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None
    level: str = "DEFAULT"
    status_message: str | None = None


def _new_record(
    task_id: str, key: str, name: str, as_type: ObservationType, input: Any, started: datetime
) -> Observation:
    return Observation(
        id=_observation_id(task_id, key),
        trace_id=trace_id_for(task_id),
        name=name,
        type=as_type,
        start_time=started.isoformat(),
        input=_clip(input),
    )


class ObservationSink(Protocol):
    """Where finished observations are kept for Keel's own trace view (keel/stores/traces.py)."""

    def save(self, task_id: str, observation: Observation) -> None: ...


class ObservationHandle:
    """What a step sees while it runs: set the output, model and usage; open children."""

    def __init__(self, tracer: StepTracer, task_id: str, record: Observation, langfuse_obs: Any) -> None:
        self._tracer = tracer
        self._task_id = task_id
        self.record = record
        self._langfuse_obs = langfuse_obs
        self._children: Counter[str] = Counter()

    def update(
        self,
        *,
        output: Any = None,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
    ) -> None:
        if output is not None:
            self.record.output = _clip(output)
        if model is not None:
            self.record.model = model
        if usage:
            self.record.usage = usage
        if cost is not None:
            self.record.cost = cost

    @contextmanager
    def child(self, name: str, as_type: ObservationType, input: Any = None) -> Iterator[ObservationHandle]:
        # Numbered per name: a step may run the same child several times (one search per query).
        self._children[name] += 1
        key = f"{self.record.id}/{name}/{self._children[name]}"
        with self._tracer.observe(self._task_id, key, name, as_type, input, parent=self) as handle:
            yield handle


class StepTracer:
    """Records steps locally and, when keys are set, in Langfuse over OpenTelemetry."""

    def __init__(self, store: ObservationSink | None, langfuse: Langfuse | None = None) -> None:
        self._store = store
        self._langfuse = langfuse

    @contextmanager
    def observe(
        self,
        task_id: str,
        key: str,
        name: str,
        as_type: ObservationType,
        input: Any = None,
        parent: ObservationHandle | None = None,
    ) -> Iterator[ObservationHandle]:
        record = _new_record(task_id, key, name, as_type, input, datetime.now(UTC))
        record.parent_id = parent.record.id if parent else None
        handle = ObservationHandle(self, task_id, record, self._start_langfuse(record, parent))
        started = time.perf_counter()
        try:
            yield handle
        except BaseException as exc:
            record.level = "ERROR"
            record.status_message = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            record.latency_ms = round((time.perf_counter() - started) * 1000, 3)
            record.end_time = datetime.now(UTC).isoformat()
            self._finish(task_id, handle)

    def record_past(
        self,
        task_id: str,
        key: str,
        name: str,
        as_type: ObservationType,
        started: datetime,
        ended: datetime,
        input: Any = None,
        output: Any = None,
    ) -> None:
        """An observation of something that already happened (a reviewer's wait), with its real times."""
        record = _new_record(task_id, key, name, as_type, input, started)
        record.end_time = ended.isoformat()
        record.latency_ms = round((ended - started).total_seconds() * 1000, 3)
        record.output = _clip(output)
        self._finish(task_id, ObservationHandle(self, task_id, record, self._start_langfuse(record, None)))

    def score(self, task_id: str, key: str, name: str, value: str, comment: str = "") -> None:
        """A categorical Langfuse score on the task's trace (a review decision); never raises.

        The score id comes from (task, key): a retried activity sends the same score again,
        which Langfuse stores once.
        """
        if self._langfuse is None:
            return
        try:
            self._langfuse.create_score(
                name=name,
                value=value,
                trace_id=trace_id_for(task_id),
                score_id=_observation_id(task_id, key),
                data_type="CATEGORICAL",
                comment=comment or None,
            )
        except Exception:
            log.warning("langfuse: could not score trace of %s", task_id, exc_info=True)

    def _start_langfuse(self, record: Observation, parent: ObservationHandle | None) -> Any:
        if self._langfuse is None:
            return None
        try:
            if parent is not None and parent._langfuse_obs is not None:
                return parent._langfuse_obs.start_observation(
                    name=record.name, as_type=record.type, input=record.input
                )
            start: Any = self._langfuse.start_observation  # overloads per literal type; ours is a variable
            return start(
                trace_context={"trace_id": record.trace_id},
                name=record.name,
                as_type=record.type,
                input=record.input,
            )
        except Exception:
            log.warning("langfuse: could not start observation %s", record.name, exc_info=True)
            return None

    def _finish(self, task_id: str, handle: ObservationHandle) -> None:
        record = handle.record
        obs = handle._langfuse_obs
        if obs is not None:
            try:
                details: dict[str, Any] = {"output": record.output, "level": record.level}
                if record.status_message:
                    details["status_message"] = record.status_message
                if record.type == "generation":
                    details.update(model=record.model, usage_details=record.usage or None)
                    if record.cost is not None:
                        details["cost_details"] = {"total": record.cost}
                obs.update(**details)
                obs.end()
            except Exception:
                log.warning("langfuse: could not end observation %s", record.name, exc_info=True)
        if self._store is not None:
            try:
                self._store.save(task_id, record)
            except Exception:
                log.warning("trace store: could not save observation %s", record.name, exc_info=True)

    def flush(self) -> None:
        if self._langfuse is not None:
            try:
                self._langfuse.flush()
            except Exception:
                log.warning("langfuse: flush failed", exc_info=True)


def make_langfuse(settings: Settings, tracer_provider: TracerProvider | None = None) -> Langfuse | None:
    """A Langfuse client when keys are configured (or a test passes its own provider)."""
    tracing = settings.tracing
    if not tracing.langfuse_enabled:
        return None
    from langfuse import Langfuse

    assert tracing.langfuse_secret_key is not None
    return Langfuse(
        public_key=tracing.langfuse_public_key,
        secret_key=tracing.langfuse_secret_key.get_secret_value(),
        host=tracing.langfuse_host,
        tracer_provider=tracer_provider,
        environment=settings.environment,
    )

"""Recording review decisions: the audit log, and a Langfuse score on the task's trace."""

from __future__ import annotations

from temporalio import activity

from activities.errors import permanent_errors
from keel.core.domain import AuditEntry
from keel.core.tracing import StepTracer
from keel.stores.audit import AuditLog, entry_id


class AuditActivities:
    def __init__(self, log: AuditLog, tracer: StepTracer) -> None:
        self._log = log
        self._tracer = tracer

    @activity.defn(name="audit.record")
    @permanent_errors()
    def record(self, entry: AuditEntry) -> None:
        """Idempotent: the entry's id is (task, round, action), and so is the score's."""
        self._log.record(entry)
        comment = "; ".join(part for part in (entry.actor, entry.reason, entry.instruction) if part)
        self._tracer.score(entry.task_id, f"review/{entry_id(entry)}", "review", entry.action, comment)

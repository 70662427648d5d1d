"""Registering sources, scheduling their syncs and starting one now: what the CLI and the API share.

A request that cannot be carried out raises a ControlError whose message is fit to show as is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from ingestion.sources import DEFAULT_INCLUDE
from keel.control.errors import InvalidRequestError, NotFoundError
from keel.core.domain import SyncRecord, SyncRequest
from keel.stores.sources import SOURCE_ID, SourceNotFoundError, SourceRegistry, SourceSpec
from workflows.sources import SourceSyncWorkflow, sync_workflow_id

_INTERVAL = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Shorter than this, a sync would start while the previous one is often still scanning.
MIN_INTERVAL_S = 60


def parse_interval(text: str) -> int:
    """ "10m" -> 600 seconds; "" -> 0 (no schedule)."""
    if not text:
        return 0
    match = _INTERVAL.match(text.strip())
    if not match:
        raise InvalidRequestError(f"{text!r} is not an interval like 30s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_INTERVAL_S:
        raise InvalidRequestError(f"{text!r} is shorter than the minimum of {MIN_INTERVAL_S}s")
    return seconds


def schedule_id(tenant: str, source_id: str) -> str:
    # "." cannot occur in a tenant id: tenant "a" with source "b-c" is not tenant "a-b"'s "c".
    return f"source-schedule-{tenant}.{source_id}"


def confined(path: str, roots: Sequence[Path]) -> Path:
    """The folder `path` names, resolved (symlinks, `..`), when it lies under one of `roots`;
    InvalidRequestError otherwise, naming the roots (none configured: server folders are off)."""
    if not roots:
        raise InvalidRequestError(
            "server folders are off: an operator lists the folders sources may read in KEEL_SOURCES__ROOTS"
        )
    if not Path(path).is_absolute():
        raise InvalidRequestError(f"{path!r} is not an absolute path")
    try:
        resolved = Path(path).resolve()
        allowed = [Path(root).resolve() for root in roots]
    except (OSError, ValueError, RuntimeError) as err:  # NUL bytes, names too long, loops
        raise InvalidRequestError(f"{path!r} is not a usable path: {err}") from None
    for root in allowed:
        if resolved.is_relative_to(root):
            return resolved
    names = ", ".join(str(root) for root in allowed)
    raise InvalidRequestError(f"{path!r} is outside the source roots ({names})")


def source_id_for(root: Path) -> str:
    """The default id of a folder's source: its name, lower-cased, other characters as "-"."""
    return re.sub(r"[^a-z0-9_-]+", "-", root.name.lower()).strip("-")


def new_spec(
    tenant: str,
    path: Path,
    source_id: str = "",
    every: str = "",
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    json_text_field: str = "text",
) -> SourceSpec:
    """A checked spec: the folder exists (on this machine; the worker reads it from the same
    path), the id is valid, the interval parses and every glob is a non-empty string."""
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise InvalidRequestError(f"{path} is not a folder")
    source_id = source_id or source_id_for(root)
    if not SOURCE_ID.fullmatch(source_id):
        raise InvalidRequestError(f"invalid id {source_id!r}: expected {SOURCE_ID.pattern}")
    globs = [*(include or []), *(exclude or [])]
    if any(not g.strip() for g in globs):
        raise InvalidRequestError("an include or exclude glob is empty")
    if not json_text_field.strip():
        raise InvalidRequestError("the JSON text field is empty")
    return SourceSpec(
        source_id,
        tenant,
        str(root),
        list(include or DEFAULT_INCLUDE),
        list(exclude or []),
        parse_interval(every),
        json_text_field,
    )


async def register(client: Client, registry: SourceRegistry, spec: SourceSpec, ingest_queue: str) -> None:
    """Add (or replace) the source and its schedule (none when it has no interval), whose syncs
    start on `ingest_queue`."""
    # Redis calls block: off the event loop, which serves the API's other requests meanwhile.
    await asyncio.to_thread(registry.add, spec)
    handle = client.get_schedule_handle(schedule_id(spec.tenant, spec.source_id))
    try:
        await handle.delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    if not spec.every_s:
        return
    action = ScheduleActionStartWorkflow(
        SourceSyncWorkflow.run,
        SyncRequest(spec.tenant, spec.source_id),
        id=sync_workflow_id(spec.tenant, spec.source_id),
        task_queue=ingest_queue,
    )
    await client.create_schedule(
        schedule_id(spec.tenant, spec.source_id),
        Schedule(
            action=action,
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=spec.every_s))]),
            # A sync still running when the next is due: skip the next, never run two at once.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        ),
    )


async def start_sync(
    client: Client, registry: SourceRegistry, tenant: str, source_id: str, ingest_queue: str
) -> WorkflowHandle[SourceSyncWorkflow, SyncRecord]:
    """Sync a registered source now, on `ingest_queue`; a sync of it already running (started
    here) is joined."""
    try:
        await asyncio.to_thread(registry.get, tenant, source_id)
    except SourceNotFoundError as err:
        raise NotFoundError(f"no source {source_id!r}") from err
    return await client.start_workflow(
        SourceSyncWorkflow.run,
        SyncRequest(tenant, source_id),
        id=sync_workflow_id(tenant, source_id),
        task_queue=ingest_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )

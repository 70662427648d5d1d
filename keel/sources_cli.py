"""`keel sources add|list|sync`: register folders, schedule their syncs, run one now."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import typer

from keel.settings import Settings
from keel.sources import SourceRegistry

app = typer.Typer(add_completion=False, help="Folders kept indexed by scheduled syncs.")

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
        raise typer.BadParameter(f"{text!r} is not an interval like 30s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_INTERVAL_S:
        raise typer.BadParameter(f"{text!r} is shorter than the minimum of {MIN_INTERVAL_S}s")
    return seconds


def schedule_id(tenant: str, source_id: str) -> str:
    return f"source-schedule-{tenant}-{source_id}"


def _settings() -> Settings:
    from keel.cli import _settings as settings

    return settings()


def _registry(settings: Settings) -> SourceRegistry:
    from keel.tracing import make_redis

    return SourceRegistry(make_redis(settings.falkordb_url))


@app.command("add")
def add(
    path: Path = typer.Argument(..., help="The folder to keep indexed (searched recursively)."),
    source_id: str = typer.Option("", "--id", help="Its id; default: the folder's name."),
    every: str = typer.Option("", "--every", help="Sync interval, e.g. 10m; default: only on demand."),
    include: list[str] = typer.Option([], "--include", help="Glob of files to index (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Glob of files to skip (repeatable)."),
    json_text_field: str = typer.Option("text", "--json-text-field", help="JSON/JSONL records' text field."),
) -> None:
    """Register a folder (or update its registration) and schedule its syncs."""
    from ingestion.sources import DEFAULT_INCLUDE
    from keel.sources import SOURCE_ID, SourceSpec

    settings = _settings()
    root = path.resolve()
    if not root.is_dir():
        typer.echo(f"keel sources add: {path} is not a folder", err=True)
        raise typer.Exit(2)
    source_id = source_id or re.sub(r"[^a-z0-9_-]+", "-", root.name.lower()).strip("-")
    if not SOURCE_ID.fullmatch(source_id):
        typer.echo(f"keel sources add: invalid id {source_id!r}: expected {SOURCE_ID.pattern}", err=True)
        raise typer.Exit(2)
    spec = SourceSpec(
        source_id, settings.tenant, str(root), list(include) or list(DEFAULT_INCLUDE), list(exclude),
        parse_interval(every), json_text_field,
    )  # fmt: skip
    _registry(settings).add(spec)
    asyncio.run(_schedule(settings, spec.source_id, spec.every_s))
    when = f"every {every}" if spec.every_s else "on demand (keel sources sync)"
    typer.echo(f"source {source_id}: {root}, synced {when}")


async def _schedule(settings: Settings, source_id: str, every_s: int) -> None:
    """Replace the source's Temporal schedule: none without an interval."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )
    from temporalio.service import RPCError, RPCStatusCode

    from keel.domain import SyncRequest
    from keel.temporal import connect
    from workflows.sources import SourceSyncWorkflow, sync_workflow_id

    client = await connect(settings)
    handle = client.get_schedule_handle(schedule_id(settings.tenant, source_id))
    try:
        await handle.delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    if not every_s:
        return
    action = ScheduleActionStartWorkflow(
        SourceSyncWorkflow.run,
        SyncRequest(settings.tenant, source_id),
        id=sync_workflow_id(settings.tenant, source_id),
        task_queue=settings.temporal.task_queue,
    )
    await client.create_schedule(
        schedule_id(settings.tenant, source_id),
        Schedule(
            action=action,
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_s))]),
            # A sync still running when the next is due: skip the next, never run two at once.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        ),
    )


@app.command("list")
def list_sources() -> None:
    """Every source with its last sync: when, counts, failures and index lag."""
    settings = _settings()
    registry = _registry(settings)
    specs = registry.list(settings.tenant)
    if not specs:
        typer.echo("no sources; add one with: keel sources add PATH --every 10m")
        return
    for spec in specs:
        last = registry.last_sync(settings.tenant, spec.source_id)
        every = f"every {spec.every_s}s" if spec.every_s else "on demand"
        typer.echo(f"{spec.source_id}  {spec.root}  ({every})")
        if last.status == "never":
            typer.echo("  never synced")
            continue
        typer.echo(
            f"  last sync {last.status} at {last.finished_at or last.started_at}: {last.scanned} files; "
            f"documents indexed {last.indexed}, unchanged {last.unchanged}, deleted {last.deleted}, "
            f"failed {last.failed}; chunks embedded {last.embedded_chunks}, reused {last.reused_chunks}"
        )
        if last.oldest_unsynced_ns:
            lag = datetime.fromisoformat(last.started_at).timestamp() - last.oldest_unsynced_ns / 1e9
            typer.echo(f"  index lag at that sync: {max(0.0, lag):.0f}s (oldest change it picked up)")
        for path, reason in list(last.failures.items())[:10]:
            typer.echo(f"  failed {path}: {reason}")


@app.command("sync")
def sync(
    source_id: str = typer.Argument(..., help="The source to sync now."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
) -> None:
    """Sync one source now, through the same workflow its schedule runs."""
    from keel.sources import SourceNotFoundError

    settings = _settings()
    try:
        _registry(settings).get(settings.tenant, source_id)
    except SourceNotFoundError:
        typer.echo(f"keel sources sync: no source {source_id!r} (keel sources list)", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(asyncio.run(_sync(settings, source_id, wait)))


async def _sync(settings: Settings, source_id: str, wait: bool) -> int:
    from keel.domain import SyncRequest
    from keel.temporal import connect
    from workflows.sources import SourceSyncWorkflow, sync_workflow_id

    client = await connect(settings)
    handle = await client.start_workflow(
        SourceSyncWorkflow.run,
        SyncRequest(settings.tenant, source_id),
        id=f"{sync_workflow_id(settings.tenant, source_id)}-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal.task_queue,
    )
    typer.echo(f"syncing {source_id}: workflow {handle.id}")
    if not wait:
        return 0
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        await asyncio.wait([result], timeout=1.0)
        if not result.done():
            now = await handle.query(SourceSyncWorkflow.progress)
            typer.echo(f"\r  {now.indexed} indexed, {now.unchanged} unchanged, {now.failed} failed", nl=False)
    record = result.result()
    typer.echo(
        f"\rsynced {source_id}: {record.scanned} files; documents indexed {record.indexed}, unchanged "
        f"{record.unchanged}, deleted {record.deleted}, failed {record.failed}; chunks embedded "
        f"{record.embedded_chunks}"
    )
    for path, reason in record.failures.items():
        typer.echo(f"  failed {path}: {reason}", err=True)
    return 1 if record.failed else 0

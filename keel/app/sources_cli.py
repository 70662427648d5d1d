"""`keel sources add|list|sync`: register folders, schedule their syncs, run one now."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer

from keel.app.cli_common import load_settings
from keel.core.domain import SyncRecord
from keel.core.settings import Settings
from keel.stores.sources import SourceRegistry, SourceSpec, SyncProgress, index_lag_s, pace

app = typer.Typer(add_completion=False, help="Folders kept indexed by scheduled syncs.")


def registry_for(settings: Settings) -> SourceRegistry:
    from keel.stores.redis import make_redis

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
    from keel.control.errors import ControlError
    from keel.control.sources import new_spec

    settings = load_settings()
    try:
        spec = new_spec(settings.tenant, path, source_id, every, include, exclude, json_text_field)
    except ControlError as err:
        typer.echo(f"keel sources add: {err}", err=True)
        raise typer.Exit(2) from None
    asyncio.run(_register(settings, spec))
    when = f"every {every}" if spec.every_s else "on demand (keel sources sync)"
    typer.echo(f"source {spec.source_id}: {spec.root}, synced {when}")


async def _register(settings: Settings, spec: SourceSpec) -> None:
    from keel.control.sources import register
    from keel.control.temporal import connect

    await register(await connect(settings), registry_for(settings), spec, settings.temporal.ingest_queue)


@app.command("list")
def list_sources() -> None:
    """Every source with its last sync: when, counts, failures and index lag."""
    settings = load_settings()
    registry = registry_for(settings)
    specs = registry.list(settings.tenant)
    if not specs:
        typer.echo("no sources; add one with: keel sources add PATH --every 10m")
        return
    for spec in specs:
        progress = registry.live(settings.tenant, spec.source_id, time.time())
        last = progress.record
        every = f"every {spec.every_s}s" if spec.every_s else "on demand"
        typer.echo(f"{spec.source_id}  {spec.root}  ({every})")
        if last.status == "never":
            typer.echo("  never synced")
            continue
        if last.status == "running":
            typer.echo(f"  syncing now: {progress_bar(progress)}")
        typer.echo(f"  last sync {last.status} at {last.finished_at or last.started_at}: {counts(last)}")
        lag = index_lag_s(last)
        if lag is not None:
            typer.echo(f"  index lag at that sync: {lag:.0f}s (oldest change it picked up)")
        for path, reason in list(last.failures.items())[:10]:
            typer.echo(f"  failed {path}: {reason}")


def counts(record: SyncRecord) -> str:
    """A sync's outcome in one line: what `keel sources list` and a finished sync print."""
    return (
        f"{record.scanned} files; documents indexed {record.indexed}, unchanged {record.unchanged}, "
        f"deleted {record.deleted}, failed {record.failed}; chunks embedded {record.embedded_chunks}, "
        f"reused {record.reused_chunks}"
    )


@app.command("sync")
def sync(
    source_id: str = typer.Argument(..., help="The source to sync now."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
) -> None:
    """Sync one source now, through the same workflow its schedule runs (joins one running)."""
    raise typer.Exit(asyncio.run(run_sync(load_settings(), source_id, wait, command="keel sources sync")))


async def run_sync(settings: Settings, source_id: str, wait: bool, command: str) -> int:
    """Start (or join) a sync, draw its progress bar until it ends, then print its outcome."""
    from keel.control.errors import ControlError
    from keel.control.sources import start_sync
    from keel.control.temporal import connect

    registry = registry_for(settings)
    try:
        handle = await start_sync(
            await connect(settings), registry, settings.tenant, source_id, settings.temporal.ingest_queue
        )
    except ControlError as err:
        typer.echo(f"{command}: {err} (keel sources list)", err=True)
        return 2
    typer.echo(f"syncing {source_id}: workflow {handle.id}")
    if not wait:
        return 0
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        await asyncio.wait([result], timeout=PROGRESS_EVERY_S)
        progress = registry.live(settings.tenant, source_id, time.time())
        if not result.done() and progress.record.run_id == handle.result_run_id:
            typer.echo("\r" + progress_bar(progress), nl=False)
    record = result.result()
    final = pace(record, time.time())
    typer.echo("\r" + progress_bar(final))
    typer.echo(f"synced {source_id}: {counts(record)}")
    for path, reason in record.failures.items():
        typer.echo(f"  failed {path}: {reason}", err=True)
    if record.failed > len(record.failures):
        typer.echo(f"  ... and {record.failed - len(record.failures)} more failures", err=True)
    return 1 if record.failed else 0


PROGRESS_EVERY_S = 0.5
BAR_WIDTH = 24


def progress_bar(progress: SyncProgress) -> str:
    """[#########---------] 120/500 files · 340 docs · 1,204 chunks · 45.2 chunks/s · ETA 0:12"""
    record = progress.record
    total = record.changed_files
    filled = BAR_WIDTH if not total else BAR_WIDTH * min(record.files_done, total) // total
    if record.status != "running":
        timing = f"took {_clock(progress.elapsed_s)}"
    else:
        timing = "ETA " + ("--:--" if progress.eta_s is None else _clock(progress.eta_s))
    documents = record.indexed + record.unchanged
    chunks = record.embedded_chunks + record.reused_chunks
    return (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {record.files_done}/{total} files · "
        f"{documents:,} docs · {chunks:,} chunks · {progress.chunks_per_s:.1f} chunks/s · "
        f"{progress.documents_per_s:.1f} docs/s · {timing}"
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

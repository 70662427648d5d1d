"""Sources: register a folder kept indexed by scheduled syncs, list them, sync one now.

Registering one reads a folder on the server: admins only, and only under the configured roots.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, status

from api.auth import Admin, Ingester
from api.deps import Registry, State
from api.errors import AUTHENTICATED, responses
from api.schemas import SourceIn, SourceOut, SyncOut, SyncStarted
from api.validation import PathId
from keel.control.sources import confined, new_spec, register, start_sync
from keel.stores.sources import SourceNotFoundError, SourceRegistry, SourceSpec, index_lag_s

router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=responses(*AUTHENTICATED, 502))


def _view(registry: SourceRegistry, spec: SourceSpec) -> SourceOut:
    progress = registry.live(spec.tenant, spec.source_id, time.time())
    record = progress.record
    sync = SyncOut.model_validate(
        {
            **asdict(record),
            "index_lag_s": index_lag_s(record),
            "elapsed_s": progress.elapsed_s,
            "chunks_per_s": progress.chunks_per_s,
            "documents_per_s": progress.documents_per_s,
            "eta_s": progress.eta_s,
        }
    )
    return SourceOut(
        id=spec.source_id,
        root=spec.root,
        include=spec.include,
        exclude=spec.exclude,
        every_s=spec.every_s,
        json_text_field=spec.json_text_field,
        last_sync=sync,
    )


def _spec(registry: SourceRegistry, tenant: str, source_id: str) -> SourceSpec:
    try:
        return registry.get(tenant, source_id)
    except SourceNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source with id {source_id!r}") from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourceOut)
async def add_source(body: SourceIn, caller: Admin, state: State, registry: Registry) -> SourceOut:
    """Register a folder under one of the source roots (or replace its registration) and schedule
    its syncs."""
    spec = new_spec(
        caller.tenant,
        confined(body.path, state.settings.sources.roots),
        body.id,
        body.every,
        body.include,
        body.exclude,
        body.json_text_field,
    )
    await register(state.temporal, registry, spec, state.settings.temporal.ingest_queue)
    return await asyncio.to_thread(_view, registry, spec)


# Plain `def`: FastAPI runs them in its thread pool, so their Redis reads never block the loop.
@router.get("", response_model=list[SourceOut])
def list_sources(caller: Ingester, registry: Registry) -> list[SourceOut]:
    return [_view(registry, spec) for spec in registry.list(caller.tenant)]


@router.get("/{source_id}", response_model=SourceOut, responses=responses(404))
def get_source(source_id: PathId, caller: Ingester, registry: Registry) -> SourceOut:
    """The source with its last sync; while one runs, its counts so far, pace and ETA."""
    return _view(registry, _spec(registry, caller.tenant, source_id))


@router.post(
    "/{source_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncStarted,
    responses=responses(404),
)
async def sync_source(source_id: PathId, caller: Ingester, state: State, registry: Registry) -> SyncStarted:
    """Sync now; a sync of this source already running is joined, not doubled."""
    handle = await start_sync(
        state.temporal, registry, caller.tenant, source_id, state.settings.temporal.ingest_queue
    )
    return SyncStarted(source_id=source_id, workflow_id=handle.id, run_id=handle.result_run_id or "")

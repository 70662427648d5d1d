"""Registered sources and what their last sync did, in Redis (the FalkorDB server).

The API, the CLI and the worker all read and write here; scaled out, they share the
FalkorDB server already. One hash per tenant for the specs, one for the sync records.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.core.domain import BatchProgress, SyncRecord
from keel.stores.redis import tenants_of

if TYPE_CHECKING:
    import redis

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SPECS = "keel:sources:{tenant}"
_SYNCS = "keel:source-syncs:{tenant}"
_PROGRESS = "keel:sync-progress:{tenant}:{source_id}:{run_id}"
# A crashed sync's progress must not stay forever; a live one rewrites it every few seconds.
PROGRESS_TTL_S = 24 * 3600


class SourceNotFoundError(KeyError):
    pass


@dataclass
class SourceSpec:
    """A folder to keep indexed: where it is, which files count, how JSON records read."""

    source_id: str
    tenant: str
    root: str
    include: list[str]  # globs; keel.control.sources.new_spec fills in every supported file type
    exclude: list[str] = field(default_factory=list)
    every_s: int = 0  # the schedule's interval; 0: synced only on demand
    json_text_field: str = "text"


@dataclass
class SyncProgress:
    """A sync's counts as of now, with its pace: what `keel ingest`, `keel sources sync` and
    `GET /v1/sources/{id}` show while it runs."""

    record: SyncRecord
    elapsed_s: float
    chunks_per_s: float
    documents_per_s: float
    eta_s: float | None  # None until a first file is done (no pace to extrapolate from)


class SourceRegistry:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def tenants(self) -> list[str]:
        """The tenants with a registered source."""
        return tenants_of(self._client, _SPECS)

    def add(self, spec: SourceSpec) -> None:
        if not SOURCE_ID.fullmatch(spec.source_id):
            raise ValueError(f"invalid source id {spec.source_id!r}: expected {SOURCE_ID.pattern}")
        self._client.hset(_SPECS.format(tenant=spec.tenant), spec.source_id, json.dumps(asdict(spec)))

    def get(self, tenant: str, source_id: str) -> SourceSpec:
        raw = self._client.hget(_SPECS.format(tenant=tenant), source_id)
        if raw is None:
            raise SourceNotFoundError(f"no source {source_id!r}")
        return SourceSpec(**json.loads(raw))

    def list(self, tenant: str) -> list[SourceSpec]:
        raw: dict[Any, Any] = self._client.hgetall(_SPECS.format(tenant=tenant))
        return sorted((SourceSpec(**json.loads(v)) for v in raw.values()), key=lambda s: s.source_id)

    def remove(self, tenant: str, source_id: str) -> None:
        self._client.hdel(_SPECS.format(tenant=tenant), source_id)
        self._client.hdel(_SYNCS.format(tenant=tenant), source_id)

    def record(self, tenant: str, source_id: str, sync: SyncRecord) -> None:
        """Save a sync's record; its failures are capped already (SyncRecord.keep_failures)."""
        self._client.hset(_SYNCS.format(tenant=tenant), source_id, json.dumps(asdict(sync)))

    def last_sync(self, tenant: str, source_id: str) -> SyncRecord:
        raw = self._client.hget(_SYNCS.format(tenant=tenant), source_id)
        return SyncRecord(**json.loads(raw)) if raw is not None else SyncRecord()

    def record_batch(self, tenant: str, source_id: str, start: int, progress: BatchProgress) -> None:
        """One batch's counts so far (absolute, so a retried batch overwrites, never adds twice)."""
        key = _PROGRESS.format(tenant=tenant, source_id=source_id, run_id=progress.run_id)
        pipe = self._client.pipeline()
        pipe.hset(key, str(start), json.dumps(asdict(progress)))
        pipe.expire(key, PROGRESS_TTL_S)
        pipe.execute()

    def live(self, tenant: str, source_id: str, now_s: float) -> SyncProgress:
        """The last sync's record, with the running batches' counts added while it runs.

        The workflow writes its record at start, after the plan and at the end; in between,
        the batches' own counts are the live part.
        """
        record = self.last_sync(tenant, source_id)
        if record.status == "running":
            key = _PROGRESS.format(tenant=tenant, source_id=source_id, run_id=record.run_id)
            raw: dict[Any, Any] = self._client.hgetall(key)
            for value in raw.values():
                record.add_batch(BatchProgress(**json.loads(value)))
        return pace(record, now_s)

    def clear_progress(self, tenant: str, source_id: str, run_id: str) -> None:
        self._client.delete(_PROGRESS.format(tenant=tenant, source_id=source_id, run_id=run_id))


def index_lag_s(record: SyncRecord) -> float | None:
    """How far behind its source the index was when the sync started: the age then of the
    oldest change it picked up. None when it found no change."""
    if not record.oldest_unsynced_ns or not record.started_at:
        return None
    return max(0.0, datetime.fromisoformat(record.started_at).timestamp() - record.oldest_unsynced_ns / 1e9)


def pace(record: SyncRecord, now_s: float) -> SyncProgress:
    """Rates since the sync started, and the time left at that pace (by files, the unit of work)."""
    if not record.started_at:
        return SyncProgress(record, 0.0, 0.0, 0.0, None)
    end_s = datetime.fromisoformat(record.finished_at).timestamp() if record.finished_at else now_s
    elapsed = max(0.0, end_s - datetime.fromisoformat(record.started_at).timestamp())
    chunks = record.embedded_chunks + record.reused_chunks
    eta: float | None = None
    if record.status != "running":
        eta = 0.0
    elif record.files_done:
        eta = elapsed * (record.changed_files - record.files_done) / record.files_done
    return SyncProgress(
        record,
        round(elapsed, 3),
        round(chunks / elapsed, 1) if elapsed else 0.0,
        round((record.indexed + record.unchanged) / elapsed, 1) if elapsed else 0.0,
        None if eta is None else round(max(0.0, eta), 1),
    )

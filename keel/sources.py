"""Registered sources and what their last sync did, in Redis (the FalkorDB server).

The API, the CLI and the worker all read and write here; scaled out, they share the
FalkorDB server already. One hash per tenant for the specs, one for the sync records.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ingestion.sources import DEFAULT_INCLUDE

if TYPE_CHECKING:
    import redis

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SPECS = "keel:sources:{tenant}"
_SYNCS = "keel:source-syncs:{tenant}"


class SourceNotFoundError(KeyError):
    pass


@dataclass
class SourceSpec:
    """A folder to keep indexed: where it is, which files count, how JSON records read."""

    source_id: str
    tenant: str
    root: str
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=list)
    every_s: int = 0  # the schedule's interval; 0: synced only on demand
    json_text_field: str = "text"


@dataclass
class SyncRecord:
    """The latest sync of a source: when, by which run, and what it found and did."""

    run_id: str = ""
    status: str = "never"  # never | running | completed | failed
    started_at: str = ""
    finished_at: str = ""
    scanned: int = 0  # files; the counts below are documents (a JSON/JSONL file holds several)
    indexed: int = 0  # documents written (new or changed)
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    embedded_chunks: int = 0
    reused_chunks: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # path -> reason, the first FAILURES_KEPT
    # The oldest modification among files changed but not yet indexed when the sync started:
    # how far behind its source the index was.
    oldest_unsynced_ns: int = 0


FAILURES_KEPT = 100


@dataclass
class RecordSync:
    tenant: str
    source_id: str
    record: SyncRecord


class SourceRegistry:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

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
        sync.failures = dict(list(sync.failures.items())[:FAILURES_KEPT])
        self._client.hset(_SYNCS.format(tenant=tenant), source_id, json.dumps(asdict(sync)))

    def last_sync(self, tenant: str, source_id: str) -> SyncRecord:
        raw = self._client.hget(_SYNCS.format(tenant=tenant), source_id)
        return SyncRecord(**json.loads(raw)) if raw is not None else SyncRecord()

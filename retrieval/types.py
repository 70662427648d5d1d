"""Types shared by the stores and encoders (the chunk they return is keel.core.chunks.ScoredChunk)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

# Fixed namespace so point ids are the same on every machine and every run.
_POINT_NAMESPACE = uuid.UUID("6f1c3a52-9d0e-4b7a-8c1e-2f4b5a6d7e80")


def point_id(tenant: str, chunk_id: str) -> str:
    """Deterministic Qdrant point id of a chunk: re-ingesting overwrites, never duplicates."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{tenant}/{chunk_id}"))


def chunk_id_for(document_id: str, position: int) -> str:
    return f"{document_id}#{position:04d}"


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class SourceDocument:
    """A document as it arrives to be indexed: by ingestion, or from an evaluation dataset."""

    document_id: str
    title: str
    text: str


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as ingestion writes it to both stores."""

    tenant: str
    document_id: str
    chunk_id: str
    position: int
    title: str
    text: str
    version: str  # content hash of the whole document
    dense: list[float]
    sparse: SparseVec
    entities: list[str] = field(default_factory=list)


class StoreError(Exception):
    """A store refused or failed an operation; the message says which and with what."""


class NotFoundError(StoreError):
    pass


class StoreUnavailableError(StoreError):
    """The store could not be reached or timed out; the same call may succeed later."""


class InvalidRequestError(StoreError):
    """The store (or its adapter) refused the input; the same call fails again."""


TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_tenant(tenant: str) -> str:
    """Return `tenant` if it is a valid tenant name, else raise InvalidRequestError."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidRequestError(f"invalid tenant {tenant!r}: expected {TENANT_PATTERN.pattern}")
    return tenant

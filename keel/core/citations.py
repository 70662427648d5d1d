"""Which version of a document a citation quotes, and whether the document moved on since."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from keel.core.models.base import Citation

# Why a citation no longer matches its document: "" when it still does (or cannot be told).
Staleness = Literal["", "changed", "deleted"]


def stamp_versions(
    citations: Sequence[Citation],
    quoted_versions: Mapping[str, str],
    documents: Mapping[str, Mapping[str, Any]],
) -> list[Citation]:
    """The citations with the version of the text each quotes, and that version's file hash and time.

    `quoted_versions` maps a chunk id to the version stored with the chunk that was read (the
    text the quote comes from); `documents` maps a document id to its graph properties.
    The file hash and time are taken only when the graph holds the quoted version: a re-index
    between the chunk read and the graph read must not pair one version with another's file.
    """
    stamped = []
    for citation in citations:
        stored = documents.get(citation.document_id) or {}
        version = quoted_versions.get(citation.chunk_id) or str(stored.get("version") or "")
        same = bool(version) and stored.get("version") == version
        stamped.append(
            replace(
                citation,
                version=version,
                file_hash=str(stored.get("file_hash") or "") if same else "",
                modified_ns=int(stored.get("modified_ns") or 0) if same else 0,
            )
        )
    return stamped


def staleness(cited_version: str, current: Mapping[str, Any] | None) -> Staleness:
    """ "deleted" when the document is gone, "changed" when its content is not the cited version.

    A citation recorded before versions were stamped has none: only a deletion can be told.
    """
    if current is None:
        return "deleted"
    if cited_version and current.get("version") != cited_version:
        return "changed"
    return ""

"""Citations stamped with the version they quote, and told stale when their document moves on."""

from __future__ import annotations

import pytest

from keel.core.chunks import Citation
from keel.core.citations import staleness, stamp_versions

pytestmark = pytest.mark.unit

KESTREL = {"id": "kestrel", "version": "v2", "file_hash": "hash-v2", "modified_ns": 1_700_000_000_123_456_789}


def test_a_citation_gets_the_quoted_version_and_its_file() -> None:
    [stamped] = stamp_versions(
        [Citation("kestrel", "kestrel#0000", "Kestrel streams events.")],
        {"kestrel#0000": "v2"},
        {"kestrel": KESTREL},
    )
    assert stamped == Citation(
        "kestrel", "kestrel#0000", "Kestrel streams events.", "v2", "hash-v2", 1_700_000_000_123_456_789
    )


def test_a_re_index_between_the_reads_keeps_the_quoted_version_without_another_versions_file() -> None:
    # The chunk was read at v1; by the graph read the document was already v2.
    [stamped] = stamp_versions(
        [Citation("kestrel", "kestrel#0000", "q")], {"kestrel#0000": "v1"}, {"kestrel": KESTREL}
    )
    assert (stamped.version, stamped.file_hash, stamped.modified_ns) == ("v1", "", 0)


def test_without_a_chunk_version_the_graph_version_is_taken() -> None:
    [stamped] = stamp_versions([Citation("kestrel", "kestrel#0009", "q")], {}, {"kestrel": KESTREL})
    assert (stamped.version, stamped.file_hash) == ("v2", "hash-v2")


def test_a_document_gone_before_the_graph_read_leaves_only_the_quoted_version() -> None:
    [stamped] = stamp_versions([Citation("gone", "gone#0000", "q")], {"gone#0000": "v1"}, {})
    assert (stamped.version, stamped.file_hash, stamped.modified_ns) == ("v1", "", 0)


@pytest.mark.parametrize(
    "cited, current, expected",
    [
        ("v2", KESTREL, ""),
        ("v1", KESTREL, "changed"),
        ("v1", None, "deleted"),
        # Recorded before citations carried versions: only a deletion can be told.
        ("", KESTREL, ""),
        ("", None, "deleted"),
    ],
    ids=["same", "changed", "deleted", "unversioned", "unversioned-deleted"],
)
def test_staleness(cited: str, current: dict | None, expected: str) -> None:
    assert staleness(cited, current) == expected

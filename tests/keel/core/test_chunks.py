"""A chunk between activities travels as a reference: ids, score and signals, no text; a later
round keeps what the last draft cited."""

from __future__ import annotations

import pytest

from keel.core.chunks import ScoredChunk, keeping_cited

pytestmark = pytest.mark.unit


def test_a_reference_drops_text_and_vector_and_rounds_scores() -> None:
    chunk = ScoredChunk(
        "kestrel#0001",
        "kestrel",
        0.123456789,
        title="Kestrel",
        text="Kestrel is owned by Team Aurora.",
        source="fused",
        version="v1",
        dense=[0.1, 0.2],
        signals={"dense": 0.87654321, "bm25": 12.0, "fused": 0.5},
    )
    ref = chunk.ref()
    assert (ref.chunk_id, ref.document_id, ref.score, ref.source) == (
        "kestrel#0001",
        "kestrel",
        0.123457,
        "fused",
    )
    assert (ref.title, ref.text, ref.version, ref.dense) == ("", "", "", None)
    assert ref.signals == {"dense": 0.876543, "bm25": 12.0, "fused": 0.5}
    assert ref.found_by == ["dense", "bm25"]


def test_chunks_with_vectors_can_be_kept_in_sets() -> None:
    one = ScoredChunk("a#0000", "a", 1.0, text="x", dense=[0.1])
    same = ScoredChunk("a#0000", "a", 1.0, text="x", dense=[0.9], signals={"dense": 1.0})
    assert one == same and len({one, same}) == 1


def test_a_later_round_keeps_the_passages_the_last_draft_cited() -> None:
    def chunk(chunk_id: str) -> ScoredChunk:
        return ScoredChunk(chunk_id, chunk_id.split("#")[0])

    earlier = [chunk("a#0"), chunk("b#0"), chunk("c#0")]
    later = [chunk("d#0"), chunk("b#0")]
    kept = keeping_cited(later, earlier, cited={"a#0", "b#0"})
    # The new round's order first; the cited passage it lost after them, once; the uncited one gone.
    assert [c.chunk_id for c in kept] == ["d#0", "b#0", "a#0"]
    assert keeping_cited(later, earlier, cited=set()) == later

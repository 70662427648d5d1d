from __future__ import annotations

import pytest

from retrieval.fusion import reciprocal_rank_fusion
from retrieval.types import ScoredChunk

pytestmark = pytest.mark.unit


def chunk(cid: str, text: str = "", source: str = "dense") -> ScoredChunk:
    return ScoredChunk(chunk_id=cid, document_id=cid.split("#")[0], score=1.0, text=text, source=source)


def test_chunk_ranked_well_in_both_lists_wins() -> None:
    dense = [chunk("a#1"), chunk("b#1"), chunk("c#1")]
    sparse = [chunk("b#1"), chunk("d#1"), chunk("a#1")]
    fused = reciprocal_rank_fusion([dense, sparse], k=60)
    assert [c.chunk_id for c in fused][:2] == ["b#1", "a#1"]
    assert {c.source for c in fused} == {"fused"}
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)


def test_ties_are_broken_by_chunk_id() -> None:
    fused = reciprocal_rank_fusion([[chunk("z#1")], [chunk("a#1")]])
    assert [c.chunk_id for c in fused] == ["a#1", "z#1"]
    assert fused[0].score == fused[1].score


def test_first_non_empty_text_is_kept() -> None:
    fused = reciprocal_rank_fusion(
        [[chunk("a#1")], [chunk("a#1", text="body")], [chunk("a#1", text="other")]]
    )
    assert fused[0].text == "body"


def test_weights_and_limit() -> None:
    dense = [chunk("a#1"), chunk("b#1")]
    sparse = [chunk("b#1"), chunk("a#1")]
    fused = reciprocal_rank_fusion([dense, sparse], weights=[3.0, 1.0], limit=1)
    assert [c.chunk_id for c in fused] == ["a#1"]


def test_duplicate_in_one_list_counts_once() -> None:
    fused = reciprocal_rank_fusion([[chunk("a#1"), chunk("a#1")]], k=0)
    assert fused[0].score == pytest.approx(1.0)


def test_empty_and_mismatched_weights() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError, match="2 weights for 1"):
        reciprocal_rank_fusion([[chunk("a#1")]], weights=[1.0, 2.0])

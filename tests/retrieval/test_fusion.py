from __future__ import annotations

from dataclasses import fields, replace

import pytest

from keel.core.chunks import ScoredChunk
from retrieval.fusion import convex_fusion, reciprocal_rank_fusion, rescored

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


# --- convex fusion ---------------------------------------------------------------------


def scored(cid: str, score: float, **signals: float) -> ScoredChunk:
    return ScoredChunk(chunk_id=cid, document_id=cid.split("#")[0], score=score, signals=signals)


DENSE = [scored("a#1", 0.9), scored("b#1", 0.5), scored("c#1", 0.1)]
SPARSE = [scored("d#1", 10.0), scored("c#1", 5.0), scored("a#1", 1.0)]


def test_convex_scores_are_min_max_normalised_and_absent_counts_zero() -> None:
    fused = convex_fusion([DENSE, SPARSE], weights=[1.0, 1.0])
    # a: 1 + 0 (lowest in sparse); d: 0 (not in dense) + 1; b: 0.5 + 0 (not in sparse);
    # c: 0 (lowest in dense) + (5 - 1) / 9. The tie a/d is broken by chunk id.
    assert [(c.chunk_id, c.score) for c in fused] == [
        ("a#1", pytest.approx(1.0)),
        ("d#1", pytest.approx(1.0)),
        ("b#1", pytest.approx(0.5)),
        ("c#1", pytest.approx(4 / 9)),
    ]
    assert {c.source for c in fused} == {"fused"}


def test_convex_weight_one_and_zero_reproduces_one_list() -> None:
    only_dense = [c.chunk_id for c in convex_fusion([DENSE, SPARSE], weights=[1.0, 0.0])]
    only_sparse = [c.chunk_id for c in convex_fusion([DENSE, SPARSE], weights=[0.0, 1.0])]
    assert only_dense[:2] == ["a#1", "b#1"]
    assert [cid for cid in only_dense if cid in {"a#1", "b#1", "c#1"}] == ["a#1", "b#1", "c#1"]
    assert only_sparse[:2] == ["d#1", "c#1"]
    assert [cid for cid in only_sparse if cid in {"d#1", "c#1", "a#1"}] == ["d#1", "c#1", "a#1"]
    # A chunk only the zero-weighted list found is still returned, with score 0.
    assert set(only_dense) == set(only_sparse) == {"a#1", "b#1", "c#1", "d#1"}


def test_convex_weights_scale_and_can_reverse_the_order() -> None:
    fused = convex_fusion([DENSE, SPARSE], weights=[0.2, 0.8])
    assert [c.chunk_id for c in fused] == ["d#1", "c#1", "a#1", "b#1"]
    assert fused[0].score == pytest.approx(0.8)
    assert fused[1].score == pytest.approx(0.8 * 4 / 9)


def test_convex_list_of_equal_scores_gives_full_marks() -> None:
    flat = [scored("x#1", 3.0), scored("y#1", 3.0)]
    fused = convex_fusion([flat, [scored("y#1", 2.0), scored("z#1", 1.0)]], weights=[0.5, 1.0])
    assert [(c.chunk_id, c.score) for c in fused] == [
        ("y#1", pytest.approx(1.5)),
        ("x#1", pytest.approx(0.5)),
        ("z#1", pytest.approx(0.0)),
    ]


def test_convex_duplicate_in_a_list_counts_once_at_its_best_score() -> None:
    repeated = [scored("a#1", 0.5), scored("b#1", 3.0), scored("c#1", 1.0), scored("a#1", 5.0)]
    fused = convex_fusion([repeated], weights=[1.0])
    # a's lower score 0.5 is dropped, so it does not stretch the range: c stays the minimum.
    assert [(c.chunk_id, c.score) for c in fused] == [
        ("a#1", pytest.approx(1.0)),
        ("b#1", pytest.approx(0.5)),
        ("c#1", pytest.approx(0.0)),
    ]


def test_convex_limit_and_empty_lists() -> None:
    assert [c.chunk_id for c in convex_fusion([DENSE, SPARSE], weights=[1.0, 1.0], limit=2)] == ["a#1", "d#1"]
    assert convex_fusion([], weights=[]) == []
    assert [c.chunk_id for c in convex_fusion([[], DENSE], weights=[1.0, 1.0])] == ["a#1", "b#1", "c#1"]


def test_convex_rejects_negative_weights_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        convex_fusion([DENSE, SPARSE], weights=[1.0, -0.1])
    with pytest.raises(ValueError, match="2 weights for 1"):
        convex_fusion([DENSE], weights=[0.5, 0.5])


def test_convex_merges_signals_and_keeps_first_text() -> None:
    dense = [replace(scored("a#1", 0.9, dense=0.9), text="body")]
    sparse = [replace(scored("a#1", 7.0, bm25=7.0), text="other", title="Title")]
    (fused,) = convex_fusion([dense, sparse], weights=[0.5, 0.5])
    # The fused score is a signal too: the learned reranker's first feature.
    assert fused.signals == {"dense": 0.9, "bm25": 7.0, "fused": 1.0}
    assert (fused.text, fused.title) == ("body", "Title")


def test_rescored_carries_every_other_field() -> None:
    # rescored() builds the chunk field by field for speed: a field added to ScoredChunk
    # later must be carried here too, or fusion would silently drop it.
    values = {f.name: f"value of {f.name}" for f in fields(ScoredChunk)}
    chunk = ScoredChunk(**values)  # type: ignore[arg-type]
    expected = replace(chunk, score=0.5, source="fused", signals={"fused": 0.5})
    got = rescored(chunk, 0.5, "fused", {"fused": 0.5})
    assert {f.name: getattr(got, f.name) for f in fields(ScoredChunk)} == {
        f.name: getattr(expected, f.name) for f in fields(ScoredChunk)
    }

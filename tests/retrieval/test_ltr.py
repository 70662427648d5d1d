"""The learned reranker: its features, its weights file, and how it orders candidates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keel.core.chunks import ScoredChunk
from retrieval.ltr import DEFAULT_WEIGHTS, FEATURES, LearnedReranker, LinearModel, feature_matrix

pytestmark = pytest.mark.unit


def chunk(chunk_id: str, title: str = "", text: str = "", **signals: float) -> ScoredChunk:
    return ScoredChunk(chunk_id, chunk_id.split("#")[0], 0.0, title=title, text=text, signals=signals)


def test_feature_matrix_columns() -> None:
    query = "Who founded the Acme rocket company?"  # terms: founded, acme, rocket, company
    chunks = [
        chunk("a#0", "Acme", "Acme builds rockets; it was founded in 1950.", fused=0.5, dense=0.7, bm25=4.0),
        chunk("b#0", "Rocket company", "Acme founded a rocket company.", fused=0.25, dense=0.2, bm25=8.0),
        chunk("c#0", "Unrelated", "Nothing here.", dense=-0.1),  # found by dense alone
    ]
    matrix = feature_matrix(query, chunks)
    assert matrix.shape == (3, len(FEATURES))
    column = {name: matrix[:, i].tolist() for i, name in enumerate(FEATURES)}
    assert column["fused"] == pytest.approx([1.0, 0.5, 0.0])  # relative to the best candidate
    assert column["bm25"] == pytest.approx([0.5, 1.0, 0.0])
    assert column["dense"] == pytest.approx([0.7, 0.2, -0.1])  # a cosine is already comparable
    # Coverage counts the title too; "rockets" is not "rocket".
    assert column["coverage"] == pytest.approx([2 / 4, 4 / 4, 0.0])
    assert column["title_coverage"] == pytest.approx([1 / 4, 2 / 4, 0.0])


def test_feature_matrix_edge_cases() -> None:
    assert feature_matrix("anything", []).shape == (0, len(FEATURES))
    # No positive best score: nothing to divide by, the column stays as it is.
    matrix = feature_matrix("the of", [chunk("a#0", "T", "x", fused=0.0, bm25=0.0)])
    assert matrix.tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0]]  # a stop-word query covers nothing


def model(weights: list[float]) -> LinearModel:
    n = len(FEATURES)
    return LinearModel(np.zeros(n), np.ones(n), np.asarray(weights, dtype=np.float64), "unit test")


def test_linear_model_round_trip(tmp_path: Path) -> None:
    original = LinearModel(
        np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.arange(5.0), "here"
    )
    path = tmp_path / "ltr.json"
    original.save(path, notes={"ndcg": 0.7})
    assert json.loads(path.read_text())["ndcg"] == 0.7
    loaded = LinearModel.load(path)
    assert loaded.trained_on == "here"
    for name in ("mean", "scale", "weights"):
        assert np.array_equal(getattr(loaded, name), getattr(original, name))
    matrix = np.eye(len(FEATURES))
    assert np.allclose(loaded.score(matrix), original.score(matrix))


def write(path: Path, **changes: object) -> Path:
    body: dict[str, object] = {
        "features": list(FEATURES),
        "mean": [0.0] * 5,
        "scale": [1.0] * 5,
        "weights": [1.0] * 5,
        **changes,
    }
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"features": ["fused", "dense"]}, "features"),
        ({"features": list(reversed(FEATURES))}, "features"),
        ({"weights": [1.0] * 4}, "5 values per array"),
        ({"mean": [[0.0] * 5]}, "5 values per array"),
        ({"scale": "wide"}, "unusable"),
        ({"mean": None}, "unusable"),
    ],
)
def test_unusable_weights_name_the_file(tmp_path: Path, changes: dict[str, object], reason: str) -> None:
    path = write(tmp_path / "bad.json", **changes)
    with pytest.raises(ValueError, match=reason) as err:
        LinearModel.load(path)
    assert str(path) in str(err.value)


def test_missing_or_malformed_weights_name_the_file(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path / "broken.json", tmp_path / "partial.json"):
        if path.name == "broken.json":
            path.write_text("{not json")
        if path.name == "partial.json":
            path.write_text(json.dumps({"features": list(FEATURES)}))
        with pytest.raises(ValueError, match="unusable") as err:
            LinearModel.load(path)
        assert str(path) in str(err.value)


def test_learned_reranker_orders_by_the_model() -> None:
    # Weight on dense only: the candidate with the highest cosine wins, whatever came first.
    reranker = LearnedReranker(model([0.0, 1.0, 0.0, 0.0, 0.0]))
    assert reranker.name == "ltr-linear (unit test)"
    chunks = [
        chunk("a#0", fused=1.0, dense=0.1),
        chunk("b#0", fused=0.5, dense=0.9),
        chunk("c#0", fused=0.7, dense=0.5),
    ]
    ranked = reranker.rerank("query", chunks, limit=2)
    assert [c.chunk_id for c in ranked] == ["b#0", "c#0"]
    # Rescaled to [0, 1] over the candidates, so the graph boost is on the fused scale.
    assert [c.score for c in ranked] == pytest.approx([1.0, 0.5])
    assert all(c.source == "rerank" and c.dense is None for c in ranked)
    assert reranker.rerank("query", [], limit=5) == []


def test_graph_boost_is_added_to_the_learned_score() -> None:
    reranker = LearnedReranker(model([1.0, 1.0, 0.0, 0.0, 0.0]))
    plain = chunk("a#0", fused=0.8, dense=0.6)
    bridge = chunk("b#0", fused=0.8, dense=0.6, graph=0.5)  # otherwise the same as "a"
    weaker = chunk("c#0", fused=0.4, dense=0.3)
    ranked = reranker.rerank("query", [plain, bridge, weaker], limit=3)
    assert [c.chunk_id for c in ranked] == ["b#0", "a#0", "c#0"]
    assert [c.score for c in ranked] == pytest.approx([1.5, 1.0, 0.0])


def test_equal_learned_scores_all_rank_first() -> None:
    reranker = LearnedReranker(model([1.0, 0.0, 0.0, 0.0, 0.0]))
    ranked = reranker.rerank("q", [chunk("b#0", fused=0.5), chunk("a#0", fused=0.5)], limit=2)
    assert [(c.chunk_id, c.score) for c in ranked] == [("a#0", 1.0), ("b#0", 1.0)]


def test_committed_weights_load() -> None:
    reranker = LearnedReranker.from_file()
    assert reranker.name.startswith("ltr-linear (") and reranker.name != "ltr-linear ()"
    assert LinearModel.load(DEFAULT_WEIGHTS).weights.shape == (len(FEATURES),)
    # The committed model prefers a passage that is closer and covers the question.
    good = chunk("a#0", "Acme", "Acme founded rockets.", fused=0.9, dense=0.8, bm25=6.0)
    poor = chunk("b#0", "Other", "Nothing to see.", fused=0.2, dense=0.1, bm25=0.5)
    assert [c.chunk_id for c in reranker.rerank("Who founded Acme?", [poor, good], limit=2)] == ["a#0", "b#0"]

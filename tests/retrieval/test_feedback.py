from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from retrieval.feedback import AdapterError, QueryAdapter, train_query_adapter

pytestmark = pytest.mark.unit

DIMENSION = 16


@dataclass(frozen=True)
class Problem:
    """Chunk vectors, and queries that are their positive chunk rotated and blurred.

    A fixed rotation is what a linear adapter can learn; the held-out queries ask about
    chunks no training query was about, so only a learnt map (not memory) can help them.
    """

    chunks: np.ndarray
    train_queries: np.ndarray
    train_positives: list[list[int]]
    test_queries: np.ndarray
    test_positives: list[int]


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def problem() -> Problem:
    rng = np.random.default_rng(7)
    chunks = unit_rows(rng.normal(size=(200, DIMENSION)))
    skew = rng.normal(size=(DIMENSION, DIMENSION)) * 0.25
    skew = (skew - skew.T) / 2
    # Cayley transform of a skew-symmetric matrix: a rotation.
    rotation = np.linalg.solve(np.eye(DIMENSION) - skew, np.eye(DIMENSION) + skew)
    order = rng.permutation(len(chunks))
    train, test = order[:150], order[150:]

    def queries(positives: np.ndarray) -> np.ndarray:
        return unit_rows(chunks[positives] @ rotation.T + 0.1 * rng.normal(size=(len(positives), DIMENSION)))

    return Problem(chunks, queries(train), [[int(p)] for p in train], queries(test), [int(p) for p in test])


def ranks(queries: np.ndarray, chunks: np.ndarray, positives: list[int]) -> np.ndarray:
    """1-based rank of each query's positive chunk by cosine."""
    scores = queries @ chunks.T
    return np.array([int((scores[i] > scores[i, p]).sum()) + 1 for i, p in enumerate(positives)])


def train(problem: Problem, epochs: int = 5, seed: int = 0) -> QueryAdapter:
    return train_query_adapter(
        problem.train_queries,
        problem.chunks,
        problem.train_positives,
        trained_on="synthetic",
        rank=8,
        epochs=epochs,
        learning_rate=2e-2,
        seed=seed,
    )


@pytest.fixture(scope="module")
def adapter(problem: Problem) -> QueryAdapter:
    return train(problem)


def test_training_raises_the_rank_of_held_out_positives(problem: Problem, adapter: QueryAdapter) -> None:
    before = ranks(problem.test_queries, problem.chunks, problem.test_positives)
    moved = np.array([adapter.apply(q) for q in problem.test_queries])
    after = ranks(moved, problem.chunks, problem.test_positives)
    assert before.mean() > 2.0  # the rotation really hurts the unadapted queries
    assert after.mean() < 0.6 * before.mean()
    assert (after == 1).mean() >= (before == 1).mean() + 0.15
    assert (adapter.dimension, adapter.rank, adapter.trained_on) == (DIMENSION, 8, "synthetic")


def test_untrained_adapter_is_the_identity(problem: Problem) -> None:
    # U starts at zero: step 0 is the unadapted encoder.
    untouched = train(problem, epochs=0)
    query = problem.test_queries[0]
    assert untouched.apply(query) == pytest.approx(query.tolist(), abs=1e-6)


def test_applied_vectors_are_unit_length(problem: Problem, adapter: QueryAdapter) -> None:
    for query in problem.test_queries[:5]:
        assert np.linalg.norm(adapter.apply(query * 3.0)) == pytest.approx(1.0, abs=1e-5)


def test_same_seed_same_adapter(problem: Problem, adapter: QueryAdapter) -> None:
    again = train(problem)
    np.testing.assert_array_equal(again.up, adapter.up)
    np.testing.assert_array_equal(again.down, adapter.down)
    assert again.digest == adapter.digest
    assert train(problem, seed=1, epochs=1).digest != train(problem, epochs=1).digest


def test_save_and_load_round_trip(tmp_path: Path, problem: Problem, adapter: QueryAdapter) -> None:
    path = tmp_path / "adapters" / "tiny.npz"  # the parent directory is created
    adapter.save(path)
    loaded = QueryAdapter.load(path, dimension=DIMENSION)
    np.testing.assert_array_equal(loaded.up, adapter.up)
    np.testing.assert_array_equal(loaded.down, adapter.down)
    assert (loaded.trained_on, loaded.digest) == (adapter.trained_on, adapter.digest)
    query = problem.test_queries[0]
    assert loaded.apply(query) == adapter.apply(query)


def test_load_errors(tmp_path: Path, adapter: QueryAdapter) -> None:
    with pytest.raises(AdapterError, match="does not exist"):
        QueryAdapter.load(tmp_path / "absent.npz", dimension=DIMENSION)

    path = tmp_path / "tiny.npz"
    adapter.save(path)
    with pytest.raises(AdapterError, match=r"has shape \(16, 8\); the encoder has 384 dimensions"):
        QueryAdapter.load(path, dimension=384)

    text = tmp_path / "notes.npz"
    text.write_text("not an adapter")
    with pytest.raises(AdapterError, match="is not an adapter file"):
        QueryAdapter.load(text, dimension=DIMENSION)

    partial = tmp_path / "partial.npz"
    np.savez(partial, up=adapter.up)
    with pytest.raises(AdapterError, match="is not an adapter file"):
        QueryAdapter.load(partial, dimension=DIMENSION)

    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, up=adapter.up, down=adapter.down[:, :4], meta=np.array("{}"))
    with pytest.raises(AdapterError, match="has shape"):
        QueryAdapter.load(mismatched, dimension=DIMENSION)


def test_query_of_the_wrong_dimension(adapter: QueryAdapter) -> None:
    with pytest.raises(AdapterError, match="query vector has 3 dimensions, the adapter 16"):
        adapter.apply([1.0, 0.0, 0.0])


def test_training_input_errors(problem: Problem) -> None:
    with pytest.raises(ValueError, match="150 query vectors for 2 positive lists"):
        train_query_adapter(problem.train_queries, problem.chunks, [[0], [1]], trained_on="x")
    with pytest.raises(ValueError, match="no query has a positive chunk"):
        train_query_adapter(problem.train_queries[:2], problem.chunks, [[], []], trained_on="x")

from __future__ import annotations

import math

import pytest

from keel.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dense() -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_dimension_and_normalised(dense: DenseEncoder) -> None:
    vectors = dense.encode_documents(["The cat sat on the mat.", "Quarterly revenue grew by 12%."])
    assert dense.dimension == 384
    assert [len(v) for v in vectors] == [384, 384]
    for vector in [*vectors, dense.encode_query("where did the cat sit?")]:
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)


def test_related_texts_are_closer(dense: DenseEncoder) -> None:
    query = dense.encode_query("Who leads the payments team?")
    related, unrelated = dense.encode_documents(
        ["Alice is the lead of the payments team.", "Tomatoes grow best in warm, sunny gardens."]
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


def test_encode_calls_counts_texts(dense: DenseEncoder) -> None:
    before = dense.encode_calls
    dense.encode_documents(["one", "two", "three"])
    dense.encode_query("four")
    assert dense.encode_documents([]) == []
    assert dense.encode_calls - before == 4


def test_sparse_document_and_query() -> None:
    sparse = SparseEncoder()
    doc = sparse.encode_document("Billing retries failed payments twice")
    query = sparse.encode_query("failed payments")
    assert len(doc.indices) == len(doc.values) > 0
    assert set(query.indices) <= set(doc.indices)
    assert all(v == 1.0 for v in query.values)
    assert sparse.encode_query("the and of").indices == []
    assert [len(v.indices) for v in sparse.encode_documents(["a cat", "two dogs"])] == [1, 2]


def test_direct_query_path_gives_sentence_transformers_vectors(dense: DenseEncoder) -> None:
    # The direct path (tokenizer, transformer, mean pooling, norm) must not change what is searched.
    assert dense._direct is not None  # the packaged MiniLM is Transformer -> mean Pooling -> Normalize
    for query in ("Who leads Team Aurora?", "rising temperatures and the risk of disease " * 60):
        direct = dense.encode_query(query)
        reference = dense._model.encode_query([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        assert max(abs(a - float(b)) for a, b in zip(direct, reference, strict=True)) < 1e-5

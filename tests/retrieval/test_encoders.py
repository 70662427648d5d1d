from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from keel.core.settings import Settings
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


# --- The ONNX query encoder --------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def onnx_encoder(cache: Path, runtime: str = "onnx") -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path(), query_runtime=runtime, model_cache_dir=cache)


def full_precision_exports(cache: Path) -> list[Path]:
    return [f for f in cache.glob("*.onnx") if not f.name.endswith("-int8.onnx")]


def test_onnx_queries_match_torch_and_export_once(dense: DenseEncoder, onnx_cache: Path) -> None:
    first = onnx_encoder(onnx_cache)
    assert first.query_runtime == "onnx" and dense.query_runtime == "torch"
    assert first.encode_calls == 0  # the start-up agreement probes are not counted
    exported = full_precision_exports(onnx_cache)
    assert len(exported) == 1 and not list(onnx_cache.glob("*.partial"))
    for query in ("Who leads Team Aurora?", "x", "rising temperatures and the risk of disease " * 60):
        onnx, torch = first.encode_query(query), dense.encode_query(query)
        assert cosine(onnx, torch) > 0.99999
        assert max(abs(a - b) for a, b in zip(onnx, torch, strict=True)) < 1e-4
    assert first.encode_calls == 3
    # A second process reuses the export instead of tracing the model again.
    stamp = exported[0].stat().st_mtime_ns
    assert onnx_encoder(onnx_cache).query_runtime == "onnx"
    assert exported[0].stat().st_mtime_ns == stamp


def test_int8_queries_stay_close_to_torch(dense: DenseEncoder, onnx_cache: Path) -> None:
    int8 = onnx_encoder(onnx_cache, "onnx-int8")
    assert int8.query_runtime == "onnx-int8"
    assert len(list(onnx_cache.glob("*-int8.onnx"))) == 1
    queries = ["Who leads Team Aurora?", "vitamin D deficiency and bone density", "a b c"]
    similarities = [cosine(int8.encode_query(q), dense.encode_query(q)) for q in queries]
    assert min(similarities) > 0.98 and max(similarities) < 0.99999  # close, and really int8


def test_an_onnx_runtime_needs_a_cache_dir_and_a_known_name() -> None:
    with pytest.raises(ValueError, match="model_cache_dir"):
        DenseEncoder(Settings().embedding_model_path(), query_runtime="onnx")
    with pytest.raises(ValueError, match="expected one of"):
        DenseEncoder(Settings().embedding_model_path(), query_runtime="tensorrt")


def test_an_unreadable_export_is_made_again(onnx_cache: Path) -> None:
    onnx_encoder(onnx_cache)
    (exported,) = full_precision_exports(onnx_cache)
    exported.write_bytes(b"not an onnx graph")
    again = onnx_encoder(onnx_cache)
    assert again.query_runtime == "onnx"
    assert exported.stat().st_size > 1_000_000


def test_an_export_that_disagrees_with_torch_is_not_used(
    onnx_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import retrieval.onnx_query as onnx_query

    # A reference that no graph can match stands in for a wrong export: queries stay on torch.
    monkeypatch.setattr(onnx_query, "PROBES", ("a probe",))
    monkeypatch.setattr(onnx_query, "MIN_AGREEMENT", 1.5)
    encoder = onnx_encoder(onnx_cache)
    assert encoder.query_runtime == "torch"
    assert "disagrees with torch" in caplog.text
    assert len(encoder.encode_query("still answers")) == 384


# --- Answer-time sentences ---------------------------------------------------------------

SENTENCES = [
    "Alice is the lead of the payments team.",
    "No.",
    "Tomatoes grow best in warm, sunny gardens, and they need water every day in July.",
    "Quarterly revenue grew by 12%.",
]


@pytest.mark.parametrize(("runtime", "floor"), [("onnx", 0.9999), ("onnx-int8", 0.97)])
def test_onnx_sentences_stay_close_to_torch_documents(
    dense: DenseEncoder, onnx_cache: Path, runtime: str, floor: float
) -> None:
    encoder = onnx_encoder(onnx_cache, runtime)
    assert encoder.query_runtime == runtime
    vectors = encoder.encode_sentences(SENTENCES)
    reference = dense.encode_documents(SENTENCES)
    assert encoder.encode_calls == len(SENTENCES)
    for i, vector in enumerate(vectors):
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)
        similarities = [cosine(vector, other) for other in reference]
        # In input order: each vector is its own text's, well clear of the others.
        assert similarities[i] > floor and similarities[i] == max(similarities)


def test_torch_sentences_are_encode_documents(dense: DenseEncoder) -> None:
    texts = [f"{s} (torch)" for s in SENTENCES]
    assert dense.encode_sentences(texts) == dense.encode_documents(texts)


def test_a_repeated_sentence_is_served_from_the_cache(dense: DenseEncoder) -> None:
    before = dense.encode_calls
    first = dense.encode_sentences(["The cache keeps me.", "And me.", "The cache keeps me."])
    assert dense.encode_calls - before == 2  # a repeat within one call is encoded once, too
    assert first[0] == first[2]
    again = dense.encode_sentences(["And me.", "The cache keeps me."])
    assert dense.encode_calls - before == 2
    assert again == [first[1], first[0]]
    assert dense.encode_sentences([]) == []


def test_the_sentence_cache_drops_the_least_recently_used() -> None:
    from retrieval.encoders import _LruVectors

    cache = _LruVectors(capacity=2)
    cache.put_many({"a": np.zeros(2), "b": np.ones(2)})
    assert set(cache.get_many(["a", "x"])) == {"a"}  # "a" is now the most recently used
    cache.put_many({"c": np.ones(2)})
    assert set(cache.get_many(["a", "b", "c"])) == {"a", "c"}

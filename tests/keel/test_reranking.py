"""Which reranker the settings choose, and which they reject."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from keel.reranking import make_reranker, reranker_name
from keel.settings import RetrievalSettings, Settings
from retrieval.encoders import DenseEncoder
from retrieval.ltr import DEFAULT_WEIGHTS, LearnedReranker
from retrieval.rerank import FeatureReranker

# Tests that take the MiniLM encoder are integration tests, as in tests/retrieval/test_encoders.py.


@pytest.fixture(scope="module")
def dense() -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path())


@pytest.mark.integration
def test_default_is_the_committed_learned_reranker(dense: DenseEncoder) -> None:
    settings = Settings()
    reranker = make_reranker(settings, dense)
    assert isinstance(reranker, LearnedReranker)
    assert reranker_name(settings) == reranker.name == LearnedReranker.from_file().name


@pytest.mark.integration
def test_feature_reranker(dense: DenseEncoder) -> None:
    settings = Settings(retrieval=RetrievalSettings(reranker="feature"))
    assert isinstance(make_reranker(settings, dense), FeatureReranker)
    assert reranker_name(settings) == FeatureReranker.name


@pytest.mark.integration
def test_weights_path_is_used(tmp_path: Path, dense: DenseEncoder) -> None:
    body = json.loads(DEFAULT_WEIGHTS.read_text())
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**body, "trained_on": "my corpus"}))
    settings = Settings(retrieval=RetrievalSettings(ltr_weights_path=str(path)))
    assert make_reranker(settings, dense).name == reranker_name(settings) == "ltr-linear (my corpus)"


@pytest.mark.integration
def test_bad_weights_path_is_rejected(tmp_path: Path, dense: DenseEncoder) -> None:
    missing = tmp_path / "missing.json"
    settings = Settings(retrieval=RetrievalSettings(ltr_weights_path=str(missing)))
    with pytest.raises(ValueError, match=r"missing\.json"):
        make_reranker(settings, dense)
    with pytest.raises(ValueError, match=r"missing\.json"):
        reranker_name(settings)


@pytest.mark.integration
def test_missing_cross_encoder_is_rejected_without_a_download(tmp_path: Path, dense: DenseEncoder) -> None:
    path = tmp_path / "no-such-model"
    settings = Settings(retrieval=RetrievalSettings(cross_encoder_path=str(path), cross_encoder_int8=True))
    # Naming it loads nothing: /readyz reports what the worker would build.
    assert reranker_name(settings) == f"cross-encoder:{path}+int8"
    with pytest.raises(ValueError, match="does not exist"):
        make_reranker(settings, dense)
    file = tmp_path / "model.bin"
    file.write_bytes(b"")
    with pytest.raises(ValueError, match="not a directory"):
        make_reranker(Settings(retrieval=RetrievalSettings(cross_encoder_path=str(file))), dense)


@pytest.mark.unit
def test_unknown_pipeline_is_rejected_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown pipeline 'nope'"):
        Settings.model_validate({"retrieval": {"pipeline": "nope"}})
    monkeypatch.setenv("KEEL_RETRIEVAL__PIPELINE", "nope")
    with pytest.raises(pydantic.ValidationError, match="unknown pipeline 'nope'"):
        Settings()
    monkeypatch.setenv("KEEL_RETRIEVAL__PIPELINE", "hybrid-convex+rerank")
    assert Settings().retrieval.pipeline == "hybrid-convex+rerank"
    with pytest.raises(pydantic.ValidationError):
        RetrievalSettings.model_validate({"reranker": "cross"})

"""Settings: what they refuse, named."""

from __future__ import annotations

import pydantic
import pytest

from keel.core.settings import RetrievalSettings, Settings

pytestmark = pytest.mark.unit


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

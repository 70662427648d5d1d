"""Which reranker the settings choose. The worker builds it; the API names it in `/readyz`."""

from __future__ import annotations

from pathlib import Path

from keel.settings import Settings
from retrieval.encoders import DenseEncoder
from retrieval.ltr import DEFAULT_WEIGHTS, LearnedReranker, LinearModel
from retrieval.rerank import FeatureReranker, Reranker


def _weights(settings: Settings) -> Path:
    return (
        Path(settings.retrieval.ltr_weights_path) if settings.retrieval.ltr_weights_path else DEFAULT_WEIGHTS
    )


def make_reranker(settings: Settings, dense: DenseEncoder) -> Reranker:
    """A CrossEncoder when a path is set; else the configured no-download reranker."""
    cfg = settings.retrieval
    if cfg.cross_encoder_path:
        from retrieval.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker(cfg.cross_encoder_path, int8=cfg.cross_encoder_int8)
    if cfg.reranker == "feature":
        return FeatureReranker(dense)
    return LearnedReranker.from_file(_weights(settings))


def reranker_name(settings: Settings) -> str:
    """The name `make_reranker` would give, without loading a model (for `/readyz`)."""
    cfg = settings.retrieval
    if cfg.cross_encoder_path:
        return f"cross-encoder:{cfg.cross_encoder_path}{'+int8' if cfg.cross_encoder_int8 else ''}"
    if cfg.reranker == "feature":
        return FeatureReranker.name
    return LearnedReranker(LinearModel.load(_weights(settings))).name

"""What the settings choose, built: the vector store (Qdrant Edge in-process, or a Qdrant
server), the dense encoder and the reranker. The worker and `keel eval` build with these;
`/readyz` names the reranker without loading it."""

from __future__ import annotations

from pathlib import Path

from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder
from retrieval.ltr import DEFAULT_WEIGHTS, LearnedReranker, LinearModel
from retrieval.rerank import FeatureReranker, Reranker
from retrieval.vector_store import VectorStore

# Seconds per request to a Qdrant server; a slow call fails and Temporal retries the activity.
QDRANT_TIMEOUT_S = 10


def make_vector_store(settings: Settings) -> VectorStore:
    """Qdrant Edge under the data dir when no Qdrant URL is set, else a qdrant-client store."""
    if not settings.qdrant.url:
        from retrieval.qdrant_edge_store import QdrantEdgeStore

        return QdrantEdgeStore(settings.qdrant_edge_dir)

    from qdrant_client import QdrantClient

    from retrieval.qdrant_server_store import QdrantServerStore

    api_key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
    client = QdrantClient(url=settings.qdrant.url, api_key=api_key, timeout=QDRANT_TIMEOUT_S)
    return QdrantServerStore(client, settings.qdrant.collection)


def make_dense_encoder(settings: Settings) -> DenseEncoder:
    """The embedding model, its queries on the configured runtime."""
    return DenseEncoder(
        settings.embedding_model_path(),
        batch_size=settings.embedding.batch_size,
        query_runtime=settings.embedding.query_runtime,
        model_cache_dir=settings.model_cache_dir,
    )


def reranker_weights_path(settings: Settings) -> Path:
    """The learned reranker's weights file: the configured one, else the committed one."""
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
    return LearnedReranker.from_file(reranker_weights_path(settings))


def reranker_name(settings: Settings) -> str:
    """The name `make_reranker` would give, without loading a model (for `/readyz`)."""
    cfg = settings.retrieval
    if cfg.cross_encoder_path:
        return f"cross-encoder:{cfg.cross_encoder_path}{'+int8' if cfg.cross_encoder_int8 else ''}"
    if cfg.reranker == "feature":
        return FeatureReranker.name
    return LearnedReranker(LinearModel.load(reranker_weights_path(settings))).name

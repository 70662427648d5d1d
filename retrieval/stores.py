"""Builds the configured vector store (Qdrant Edge in-process, or a Qdrant server) and encoder."""

from __future__ import annotations

from keel.settings import Settings
from retrieval.encoders import DenseEncoder
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

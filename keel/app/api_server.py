"""The API's assembly: the clients it reads with, built when it starts and closed when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from api.deps import AppState
from keel.control.temporal import connect
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from keel.stores.redis import make_redis
from keel.stores.traces import LocalTraceStore
from retrieval.graph_store import GraphStore


def build_api(settings: Settings, temporal: Client | None = None) -> FastAPI:
    """The API; pass `temporal` to share a client (tests, benches), else it connects at start-up."""

    @asynccontextmanager
    async def clients() -> AsyncIterator[AppState]:
        client = temporal or await connect(settings)
        # The graph client talks to FalkorDB at once: built first, so a failure leaks nothing.
        graph = GraphStore(settings.falkordb_url, prefix=settings.falkordb.graph_prefix)
        redis_client = make_redis(settings.falkordb_url)
        try:
            yield AppState(
                settings=settings,
                temporal=client,
                blobs=BlobStore(settings.blob_dir),
                redis=redis_client,
                traces=LocalTraceStore(redis_client),
                graph=graph,
            )
        finally:
            graph.close()
            redis_client.close()

    return create_app(clients, max_body_bytes=settings.limits.max_body_bytes)

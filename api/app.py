"""The FastAPI application: routers per resource, clients built once in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppState
from api.routers import audit, documents, health, review_page, reviews, sources, tasks
from keel.blobs import BlobStore
from keel.settings import Settings
from keel.tracing import LocalTraceStore, make_redis
from retrieval.graph_store import GraphStore
from retrieval.types import StoreUnavailableError


def create_app(settings: Settings, temporal: Client | None = None) -> FastAPI:
    """The API; pass `temporal` to share a client (tests), else it connects at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from keel.temporal import connect

        client = temporal or await connect(settings)
        # The graph client talks to FalkorDB at once: built first, so a failure leaks nothing.
        graph = GraphStore(settings.falkordb_url, prefix=settings.falkordb.graph_prefix)
        redis_client = make_redis(settings.falkordb_url)
        app.state.keel = AppState(
            settings=settings,
            temporal=client,
            blobs=BlobStore(settings.blob_dir),
            redis=redis_client,
            traces=LocalTraceStore(redis_client),
            graph=graph,
        )
        try:
            yield
        finally:
            graph.close()
            redis_client.close()

    app = FastAPI(
        title="Keel",
        version="0.1.0",
        description="Agentic RAG tasks with durable human review, cited answers and per-step traces.",
        lifespan=lifespan,
    )
    for router in (
        health.router,
        documents.router,
        sources.router,
        tasks.router,
        reviews.router,
        audit.router,
        review_page.router,
    ):
        app.include_router(router)

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, err: RPCError) -> JSONResponse:
        # The client did nothing wrong: Temporal is down or overloaded.
        if err.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
        ):
            return JSONResponse({"detail": f"Temporal is unavailable: {err.message}"}, status_code=503)
        return JSONResponse({"detail": f"Temporal refused the request: {err.message}"}, status_code=502)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, err: StoreUnavailableError) -> JSONResponse:
        # As for Temporal: a store that is down is not the client's mistake, and may come back.
        return JSONResponse({"detail": str(err)}, status_code=503)

    return app

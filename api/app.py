"""The FastAPI application: routers per resource, and how each kind of failure is answered.

Its clients come from `open_state` (keel/app/api_server.py builds them): the API builds none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppState
from api.errors import status_of
from api.routers import audit, documents, health, review_page, reviews, sources, tasks
from keel.control.errors import ControlError
from retrieval.types import StoreUnavailableError


def create_app(open_state: Callable[[], AbstractAsyncContextManager[AppState]]) -> FastAPI:
    """The API; `open_state` opens its clients when it starts and closes them when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_state() as state:
            app.state.keel = state
            yield

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

    @app.exception_handler(ControlError)
    async def refused(request: Request, err: ControlError) -> JSONResponse:
        # Not found, a conflict with the resource's state, or a request that cannot be done as asked.
        return JSONResponse({"detail": str(err)}, status_code=status_of(err))

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

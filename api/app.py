"""The FastAPI application: routers per resource, and how each kind of failure is answered.

Its clients come from `open_state` (keel/app/api_server.py builds them): the API builds none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from api.body_limit import BodyLimit
from api.deps import AppState
from api.errors import status_of
from api.routers import audit, documents, health, keys, review_page, reviews, sources, tasks
from keel.control.errors import ControlError, LimitError
from retrieval.types import StoreUnavailableError


def create_app(
    open_state: Callable[[], AbstractAsyncContextManager[AppState]], max_body_bytes: int
) -> FastAPI:
    """The API; `open_state` opens its clients when it starts and closes them when it stops.
    A request body over `max_body_bytes` is refused (413) before it is parsed."""

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
    # Outside the routes: a body is measured before any of it is parsed.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    for router in (
        health.router,
        documents.router,
        sources.router,
        tasks.router,
        reviews.router,
        audit.router,
        keys.router,
        review_page.router,
    ):
        app.include_router(router)

    @app.exception_handler(ControlError)
    async def refused(request: Request, err: ControlError) -> JSONResponse:
        # Not found, a conflict with the resource's state, a request that cannot be done as asked,
        # or a limit reached (with when to try again).
        headers = {"Retry-After": str(err.retry_after_s)} if isinstance(err, LimitError) else None
        return JSONResponse({"detail": str(err)}, status_code=status_of(err), headers=headers)

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

"""The FastAPI application: routers per resource, how each kind of failure is answered
(api/errors.py), and the API docs (/docs) served from a local package, never a CDN.

Its clients come from `open_state` (keel/app/api_server.py builds them): the API builds none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.body_limit import BodyLimit
from api.deps import AppState
from api.errors import add_error_handlers
from api.routers import audit, documents, health, keys, metrics, review_page, reviews, sources, tasks, usage

# Swagger UI as files in a package (fastapi-offline's static folder): FastAPI's own /docs loads
# it from a CDN, a blank page on a machine without internet. No /redoc: ReDoc's bundle fetches its
# logo from cdn.redoc.ly whatever it is given, and no request may leave the building.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/docs-assets"


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
        description=(
            "Agentic RAG tasks with durable human review, cited answers and per-step traces.\n\n"
            "Every error answer has one shape, `ErrorOut`: `detail` says what went wrong; for a 422, "
            "`errors` names each failing field. A 429 or 503 carries `Retry-After` (seconds)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # Outside the routes: a body is measured before any of it is parsed.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    for router in (
        health.router,
        metrics.router,
        documents.router,
        sources.router,
        tasks.router,
        reviews.router,
        audit.router,
        usage.router,
        keys.router,
        review_page.router,
    ):
        app.include_router(router)
    add_error_handlers(app)
    add_offline_docs(app)
    return app


def add_offline_docs(app: FastAPI) -> None:
    """/docs: Swagger UI, its script and style served by the app itself."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
        )

"""How every failure is answered: one body shape (`ErrorOut`), one status per kind of refusal,
and each route's possible statuses in the OpenAPI schema.

The body is always `{"detail": "<text>", "errors": [...]}`: `errors` lists the fields of a 422
(`loc`, `msg`, `type` and a short `input` excerpt) and is empty otherwise. Nothing the caller sent
comes back whole: texts are cut to an excerpt and anything that cannot be encoded as UTF-8 (a lone
surrogate) is escaped, so rendering an error can never fail in turn.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from api.schemas import ErrorOut, FieldErrorOut
from keel.control.errors import ConflictError, ControlError, InvalidRequestError, LimitError, NotFoundError
from retrieval.types import StoreUnavailableError

_STATUS: dict[type[ControlError], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    InvalidRequestError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    LimitError: status.HTTP_429_TOO_MANY_REQUESTS,
}

# A store or Temporal that is down usually comes back within seconds (a restart, a failover).
RETRY_AFTER_S = 5
MAX_DETAIL_CHARS = 1000
MAX_EXCERPT_CHARS = 100
MAX_FIELD_ERRORS = 20
_UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED)
# What redis-py raises while the server is down, restarting or still loading its data.
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)

_excerpt = reprlib.Repr()
_excerpt.maxstring = MAX_EXCERPT_CHARS - 10
_excerpt.maxother = MAX_EXCERPT_CHARS - 10
_excerpt.maxlevel = 2
_excerpt.maxdict = _excerpt.maxlist = 4


def status_of(err: ControlError) -> int:
    """404 for what does not exist, 409 for a conflict with its state, 422 for a bad request,
    429 for a limit reached."""
    for kind, code in _STATUS.items():
        if isinstance(err, kind):
            return code
    return status.HTTP_422_UNPROCESSABLE_CONTENT


def safe_text(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`text` cut to `limit` characters, with lone surrogates escaped (they cannot be encoded)."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def excerpt(value: Any) -> str:
    """A short, escaped representation of a refused value: never the value itself."""
    return safe_text(_excerpt.repr(value), MAX_EXCERPT_CHARS)


def error_response(
    code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldErrorOut] = (),
) -> JSONResponse:
    """The one shape of every non-2xx answer."""
    body = ErrorOut(detail=safe_text(detail), errors=list(errors))
    return JSONResponse(body.model_dump(mode="json"), status_code=code, headers=headers)


def _field_error(error: Mapping[str, Any]) -> FieldErrorOut:
    loc = [
        part if isinstance(part, int) else safe_text(str(part), MAX_EXCERPT_CHARS) for part in error["loc"]
    ]
    return FieldErrorOut(
        loc=loc,
        msg=safe_text(str(error.get("msg", "")), 300),
        type=safe_text(str(error.get("type", "")), 100),
        input=excerpt(error["input"]) if "input" in error else None,
    )


def _where(field: FieldErrorOut) -> str:
    return ".".join(str(part) for part in field.loc)


def validation_failed(err: RequestValidationError) -> JSONResponse:
    """422 naming each failing field (the first few), with an excerpt of what it held."""
    raw = err.errors()
    fields = [_field_error(error) for error in raw[:MAX_FIELD_ERRORS]]
    summary = safe_text(
        "; ".join(f"{_where(field)}: {field.msg}" for field in fields), MAX_DETAIL_CHARS - 100
    )
    if len(raw) > len(fields):
        summary += f"; and {len(raw) - len(fields)} more"
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, summary or "invalid request", errors=fields)


def _retry_later() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


def add_error_handlers(app: FastAPI) -> None:
    """Every failure a route can meet, answered in the one shape; never a 500 for the caller's
    mistake or for a server of ours that is down."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return validation_failed(err)

    @app.exception_handler(StarletteHTTPException)
    async def refused_by_route(request: Request, err: StarletteHTTPException) -> Response:
        if not is_body_allowed_for_status_code(err.status_code):  # 204, 304: no body at all
            return Response(status_code=err.status_code, headers=err.headers)
        return error_response(err.status_code, str(err.detail), headers=err.headers)

    @app.exception_handler(ControlError)
    async def refused(request: Request, err: ControlError) -> JSONResponse:
        # Not found, a conflict with the resource's state, a request that cannot be done as asked,
        # or a limit reached (with when to try again).
        headers = {"Retry-After": str(err.retry_after_s)} if isinstance(err, LimitError) else None
        return error_response(status_of(err), str(err), headers=headers)

    @app.exception_handler(RPCError)
    async def temporal_failed(request: Request, err: RPCError) -> JSONResponse:
        # The client did nothing wrong: Temporal is down or overloaded (503), or refused (502).
        if err.status in _UNAVAILABLE:
            return error_response(503, f"Temporal is unavailable: {err.message}", headers=_retry_later())
        return error_response(502, f"Temporal refused the request: {err.message}")

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, err: StoreUnavailableError) -> JSONResponse:
        # As for Temporal: a store that is down is not the client's mistake, and may come back.
        return error_response(503, str(err), headers=_retry_later())

    for kind in _REDIS_DOWN:
        app.add_exception_handler(kind, _redis_down)


async def _redis_down(request: Request, err: Exception) -> JSONResponse:
    # Redis and FalkorDB share a server: restarting or loading its data, it refuses for a while.
    return error_response(
        503, f"the record store is unavailable: {type(err).__name__}", headers=_retry_later()
    )


_DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8, or nested too deep)",
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the role this operation needs",
    404: "No such resource in the caller's tenant",
    409: "The resource's state does not allow this now",
    413: "The request body (or a document) is larger than the limit",
    422: "The request is invalid: `errors` names each field",
    429: "A rate or running-task limit reached: retry after `Retry-After` seconds",
    502: "Temporal refused the request",
    503: "A store or Temporal is unavailable: retry after `Retry-After` seconds",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these statuses, each with the one error body."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in codes}


# Every authenticated route; routes that read Temporal add 502, those naming a resource 404,
# those changing a resource's state 409.
AUTHENTICATED = (400, 401, 403, 413, 422, 429, 503)

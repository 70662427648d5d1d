"""A request body larger than the configured limit is refused with 413, before it is read whole.

Pure ASGI, so it sees the bytes as they arrive: a declared Content-Length over the limit is
refused at once, and a body that streams past it (chunked, or lying about its length) is cut off
as soon as it does.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


def too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            response = error_response(413, too_large(self._max))
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    # Raised inside the route's body read: FastAPI answers it as this 413.
                    raise HTTPException(413, too_large(self._max))
            return message

        await self._app(scope, counted, send)

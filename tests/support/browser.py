"""The app over real HTTP and Debian's Chromium, for the browser tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright, expect

from tests.support.polling import eventually
from tests.support.servers import free_port

CHROMIUM = "/usr/bin/chromium"  # from apt (see the Makefile): `playwright install` cannot download here
# Every browser wait: the machine is shared, so generous; each still ends as soon as it can.
WAIT_MS = 30_000


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app's base URL, served by uvicorn in the tests' own event loop until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()  # it failed to start: say why
        return server.started

    try:
        await eventually(started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def chromium(wait_ms: int) -> AsyncIterator[Browser]:
    """Headless Chromium; every `expect` waits up to `wait_ms` (the machine is shared)."""
    expect.set_options(timeout=wait_ms)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()

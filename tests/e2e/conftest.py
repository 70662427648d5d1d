"""The browser tests' app over real HTTP and their Chromium, one of each per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser

from keel.app.api_server import build_api
from tests.support.browser import WAIT_MS, chromium, served


@pytest_asyncio.fixture(scope="module")
async def site(platform, temporal_env) -> AsyncIterator[str]:
    """The app over real HTTP, served by uvicorn in the tests' own event loop."""
    async with served(build_api(platform.settings, temporal=temporal_env.client)) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium(WAIT_MS) as launched:
        yield launched

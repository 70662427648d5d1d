"""The API docs in a real browser (Debian's Chromium, driven by Playwright) with the network cut:
every request to another host than the app is aborted, as on a machine without internet.

/docs (Swagger UI) must still list the operations: its script and style are served by the app
itself (api/app.py), not by a CDN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, expect

from tests.support.browser import WAIT_MS

pytestmark = [pytest.mark.integration]


@pytest_asyncio.fixture
async def offline(browser: Browser, site: str) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page that reaches the app only; the list collects every request it tried elsewhere."""
    app_host = urlsplit(site).netloc
    blocked: list[str] = []

    async def only_the_app(route: Route) -> None:
        if urlsplit(route.request.url).netloc == app_host:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    context = await browser.new_context(base_url=site)
    context.set_default_timeout(WAIT_MS)
    await context.route("**/*", only_the_app)
    try:
        yield await context.new_page(), blocked
    finally:
        await context.close()


async def test_swagger_ui_lists_the_operations_offline(offline: tuple[Page, list[str]]) -> None:
    page, blocked = offline
    await page.goto("/docs")
    submit = page.locator(".opblock-post .opblock-summary-path[data-path='/v1/tasks']")
    await expect(submit).to_be_visible()
    await expect(
        page.locator(".opblock-get .opblock-summary-path[data-path='/v1/tasks/{task_id}']")
    ).to_be_visible()
    operations = await page.locator(".opblock").count()
    assert operations >= 20, operations
    assert blocked == [], blocked


async def test_redoc_is_not_served(offline: tuple[Page, list[str]]) -> None:
    # Dropped on purpose (api/app.py): ReDoc's bundle loads its logo from cdn.redoc.ly.
    page, _ = offline
    response = await page.goto("/redoc")
    assert response is not None and response.status == 404

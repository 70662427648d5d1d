"""The reviewer page in a real browser (Debian's Chromium, driven by Playwright) on the real components."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from keel.app.api_server import build_api
from tests.support.polling import eventually, wait_for_status
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"  # from apt (see the Makefile): `playwright install` cannot download here
QUESTION = "Which team owns Kestrel?"
WAIT_MS = 30_000  # the machine is shared: generous, and every wait still ends as soon as it can


@pytest_asyncio.fixture(scope="module")
async def site(platform, temporal_env) -> AsyncIterator[str]:
    """The app over real HTTP, served by uvicorn in the tests' own event loop."""
    app = build_api(platform.settings, temporal=temporal_env.client)
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


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture
async def page(browser: Browser, site: str) -> AsyncIterator[Page]:
    """A fresh browser context per test: no reviewer cookie carried over."""
    context = await browser.new_context(base_url=site)
    context.set_default_timeout(WAIT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def awaiting(api: httpx.AsyncClient) -> str:
    response = await api.post("/v1/tasks", json={"question": QUESTION, "review": "always"})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    return task_id


def person(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def set_name(page: Page, name: str) -> None:
    await page.goto("/review")
    await page.get_by_label("Name").fill(name)
    await page.locator("form.identity button").click()
    await expect(page.locator("#whoami")).to_contain_text(name)


async def test_a_reviewer_claims_and_approves_in_the_browser(
    api: httpx.AsyncClient, demo_corpus, page: Page
) -> None:
    task_id = await awaiting(api)
    detail = (await api.get(f"/v1/reviews/{task_id}")).json()
    rita = person("rita")
    await set_name(page, rita)

    await page.get_by_label("Policy reason").fill("review requested")
    await page.get_by_role("button", name="Filter").click()
    # The filter's navigation must end before any reload: a reload during it finds no page.
    await expect(page).to_have_url(re.compile(r"reason=review\+requested"))
    link = page.locator(f'a[href="/review/{task_id}"]')

    async def listed() -> bool:
        # The workflow writes its queue line a moment after it enters review.
        await page.reload(wait_until="load")
        return await link.count() > 0

    await eventually(listed, 30, "the task in the queue")
    await link.click()

    await expect(page.locator("#question")).to_have_text(QUESTION)
    await expect(page.locator("#draft")).to_have_text(detail["draft"])
    await expect(page.locator(".chunk.cited mark").first).to_be_visible()
    await expect(page.locator("#trace-link")).to_have_attribute("href", detail["trace_url"])
    await expect(page.locator("#temporal-link")).to_have_attribute("href", detail["temporal_url"])

    await page.locator("#claim").click()
    await expect(page.locator(".notice")).to_contain_text("Claimed")
    await expect(page.locator("#claim-state")).to_contain_text("yours")
    await page.locator("#approve").click()
    await expect(page.locator(".notice")).to_contain_text(f"Approved: {task_id}")

    view = await wait_for_status(api, task_id, {"completed"})
    assert view["result"]["review"]["reviewer"] == rita


async def test_a_decision_on_another_reviewers_claim_shows_the_conflict(
    api: httpx.AsyncClient, demo_corpus, page: Page
) -> None:
    task_id = await awaiting(api)
    sam, rita = person("sam"), person("rita")
    claimed = await api.post(f"/v1/reviews/{task_id}/claim", json={"reviewer": sam})
    assert claimed.status_code == 200, claimed.text

    await set_name(page, rita)
    await page.goto(f"/review/{task_id}")
    await expect(page.locator("#claim-state")).to_contain_text(f"claimed by {sam}")
    async with page.expect_response(lambda r: r.url.endswith(f"/review/{task_id}/decide")) as refused:
        await page.locator("#approve").click()
    assert (await refused.value).status == 409
    await expect(page.locator(".problem")).to_contain_text(f"claimed by {sam}")
    await expect(page.locator("#question")).to_have_text(QUESTION)  # the item, not a stack trace

    assert (await api.get(f"/v1/tasks/{task_id}")).json()["status"] == "awaiting_review"


async def test_a_bad_name_or_an_unknown_task_is_explained_on_the_page(page: Page) -> None:
    await page.goto("/review")
    await page.get_by_label("Name").fill("o'brien")
    async with page.expect_response(lambda r: r.url.endswith("/review/identity")) as refused:
        await page.locator("form.identity button").click()
    assert (await refused.value).status == 422
    await expect(page.locator(".problem")).to_contain_text("a quote")
    await expect(page.locator("#whoami")).to_contain_text("Who are you?")

    missing = await page.goto(f"/review/task-{uuid.uuid4().hex}")
    assert missing is not None and missing.status == 404
    await expect(page.get_by_role("heading", name="No such task")).to_be_visible()
    await expect(page.get_by_role("link", name="Back to the queue")).to_be_visible()

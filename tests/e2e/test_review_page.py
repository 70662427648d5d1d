"""The reviewer page in a real browser (Debian's Chromium, driven by Playwright) on the real components.

The browser signs in by pasting an API key; the tasks it reviews are asked over REST with another
principal's key (four eyes: who asks may not approve).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import pytest_asyncio
import redis
from playwright.async_api import Browser, Page, expect

from keel.core.identity import Role
from keel.stores.audit import AuditLog
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis
from tests.support.browser import WAIT_MS
from tests.support.polling import eventually, wait_for_status

pytestmark = [pytest.mark.integration]

QUESTION = "Which team owns Kestrel?"
TENANT = "default"


@pytest_asyncio.fixture
async def page(browser: Browser, site: str) -> AsyncIterator[Page]:
    """A fresh browser context per test: no session cookie carried over."""
    context = await browser.new_context(base_url=site)
    context.set_default_timeout(WAIT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture(scope="module")
def store(platform) -> Iterator[redis.Redis]:
    client = make_redis(platform.settings.falkordb_url)
    try:
        yield client
    finally:
        client.close()


def new_key(store: redis.Redis, name: str, role: Role) -> tuple[str, str]:
    """A key of the tenant for a new principal called `name-<hex>`: (the principal's name, the secret)."""
    record, secret = KeyStore(store).create(TENANT, f"{name}-{uuid.uuid4().hex[:6]}", frozenset({role}))
    return record.name, secret


@asynccontextmanager
async def rest(site: str, secret: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API over HTTP as the key's principal."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=site, headers=headers, timeout=60) as client:
        yield client


@pytest_asyncio.fixture(scope="module")
async def asker(site: str, store: redis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The API as a submitter: who asks every question here, so never its reviewer."""
    _, secret = new_key(store, "sam", Role.SUBMITTER)
    async with rest(site, secret) as client:
        yield client


async def awaiting(asker: httpx.AsyncClient) -> str:
    response = await asker.post("/v1/tasks", json={"question": QUESTION, "review": "always"})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    assert task_id.startswith(f"task-{TENANT}.")
    await wait_for_status(asker, task_id, {"awaiting_review"})
    return task_id


async def sign_in(page: Page, secret: str, name: str) -> None:
    """Paste the key into the login form, where a page without a session leads."""
    await page.goto("/review")
    await expect(page).to_have_url(re.compile(r"/review/login"))
    await page.get_by_label("API key").fill(secret)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#whoami")).to_contain_text(f"Signed in as {name} ({TENANT})")


async def test_a_reviewer_signs_in_claims_and_approves_in_the_browser(
    asker: httpx.AsyncClient, demo_corpus, page: Page, site: str, store: redis.Redis
) -> None:
    task_id = await awaiting(asker)
    rita, secret = new_key(store, "rita", Role.REVIEWER)
    async with rest(site, secret) as as_rita:
        detail = (await as_rita.get(f"/v1/reviews/{task_id}")).json()
    await sign_in(page, secret, rita)
    assert secret not in str(await page.context.cookies())  # the browser keeps a session, not the key

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

    view = await wait_for_status(asker, task_id, {"completed"})
    assert view["result"]["review"]["reviewer"] == rita

    async def approved() -> list[str]:
        entries = await asyncio.to_thread(AuditLog(store).for_task, TENANT, task_id)
        return [entry.actor for entry in entries if entry.action == "approve"]

    assert await eventually(approved, 30, "the approval in the audit log") == [rita]


async def test_a_decision_on_another_reviewers_claim_shows_the_conflict(
    asker: httpx.AsyncClient, demo_corpus, page: Page, site: str, store: redis.Redis
) -> None:
    task_id = await awaiting(asker)
    tom, tom_secret = new_key(store, "tom", Role.REVIEWER)
    rita, rita_secret = new_key(store, "rita", Role.REVIEWER)
    async with rest(site, tom_secret) as as_tom:
        claimed = await as_tom.post(f"/v1/reviews/{task_id}/claim")
    assert claimed.status_code == 200, claimed.text

    await sign_in(page, rita_secret, rita)
    await page.goto(f"/review/{task_id}")
    await expect(page.locator("#claim-state")).to_contain_text(f"claimed by {tom}")
    async with page.expect_response(lambda r: r.url.endswith(f"/review/{task_id}/decide")) as refused:
        await page.locator("#approve").click()
    assert (await refused.value).status == 409
    await expect(page.locator(".problem")).to_contain_text(f"claimed by {tom}")
    await expect(page.locator("#question")).to_have_text(QUESTION)  # the item, not a stack trace

    assert (await asker.get(f"/v1/tasks/{task_id}")).json()["status"] == "awaiting_review"


async def test_a_bad_key_or_an_unknown_task_is_explained_on_the_page(page: Page, store: redis.Redis) -> None:
    missing = f"/review/task-{TENANT}.{uuid.uuid4().hex}"
    await page.goto(missing)
    await expect(page).to_have_url(re.compile(r"/review/login\?next="))
    await page.get_by_label("API key").fill("keel_not-a-key")
    async with page.expect_response(lambda r: r.url.endswith("/review/login")) as refused:
        await page.get_by_role("button", name="Sign in").click()
    assert (await refused.value).status == 401
    await expect(page.locator(".problem")).to_contain_text("cannot open the review page")
    await expect(page.locator("#whoami")).to_have_count(0)

    rita, secret = new_key(store, "rita", Role.REVIEWER)
    await page.get_by_label("API key").fill(secret)
    async with page.expect_response(lambda r: r.url.split("?")[0].endswith(missing)) as back:
        await page.get_by_role("button", name="Sign in").click()
    assert (await back.value).status == 404  # signed in, and back where the reviewer was going
    await expect(page.locator("#whoami")).to_contain_text(rita)
    await expect(page.get_by_role("heading", name="No such task")).to_be_visible()
    await expect(page.get_by_role("link", name="Back to the queue")).to_be_visible()

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/review/login"))
    await expect(page.locator(".notice")).to_contain_text("Signed out")
    await page.goto("/review")
    await expect(page).to_have_url(re.compile(r"/review/login"))

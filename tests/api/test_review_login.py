"""Signing in to the reviewer page with an API key: sessions, their cookie, CSRF tokens, revocation.

Over ASGI on the real app (Redis on FalkorDB, the session's Temporal client): no worker is needed,
no task either. Each test has its own client, so its cookies are its own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import redis
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from keel.app.api_server import build_api
from keel.core.identity import Role
from keel.core.settings import Settings
from keel.stores.keys import KeyStore
from keel.stores.redis import make_redis

pytestmark = pytest.mark.integration

SESSION = "keel_session"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@pytest_asyncio.fixture(scope="module")
async def app(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[FastAPI]:
    app = build_api(settings, temporal=temporal_env.client)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar of its own, as a fresh browser has."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
        yield client


@pytest.fixture(scope="module")
def store(settings: Settings) -> Iterator[redis.Redis]:
    client = make_redis(settings.falkordb_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def keys(store: redis.Redis) -> KeyStore:
    return KeyStore(store)


def new_key(keys: KeyStore, *roles: Role) -> tuple[str, str]:
    """A key of tenant "default" for a new principal: (its id, its secret)."""
    record, secret = keys.create("default", f"rita-{uuid.uuid4().hex[:6]}", frozenset(roles))
    return record.key_id, secret


def csrf_of(page: httpx.Response) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, secret: str, next_page: str = "/review") -> httpx.Response:
    form = await browser.get("/review/login", params={"next": next_page})
    assert form.status_code == 200, form.text
    return await browser.post("/review/login", data={"csrf": csrf_of(form), "next": next_page, "key": secret})


async def signed_in(browser: httpx.AsyncClient, keys: KeyStore, *roles: Role) -> str:
    """Sign in with a new key of these roles; the CSRF token of the session's pages."""
    _, secret = new_key(keys, *roles)
    assert (await sign_in(browser, secret)).status_code == 303
    return csrf_of(await browser.get("/review"))


def set_cookies(response: httpx.Response, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


async def test_the_login_form_carries_a_csrf_token_in_a_strict_cookie(browser: httpx.AsyncClient) -> None:
    form = await browser.get("/review/login")
    assert form.status_code == 200
    assert 'name="key"' in form.text
    (cookie,) = set_cookies(form, "keel_login_csrf")
    assert csrf_of(form) in cookie
    for flag in ("httponly", "samesite=strict", "path=/review"):
        assert flag in cookie.lower(), cookie


async def test_an_unknown_key_is_refused_with_401_and_no_session(browser: httpx.AsyncClient) -> None:
    refused = await sign_in(browser, "keel_" + uuid.uuid4().hex)
    assert refused.status_code == 401
    assert "cannot open the review page" in refused.text
    assert not set_cookies(refused, SESSION)
    assert SESSION not in browser.cookies


async def test_a_key_without_the_reviewer_role_is_refused_with_403(
    browser: httpx.AsyncClient, keys: KeyStore
) -> None:
    _, secret = new_key(keys, Role.SUBMITTER)
    refused = await sign_in(browser, secret)
    assert refused.status_code == 403
    assert "cannot open the review page" in refused.text
    assert not set_cookies(refused, SESSION)


async def test_a_login_without_its_csrf_token_opens_no_session(
    browser: httpx.AsyncClient, keys: KeyStore
) -> None:
    _, secret = new_key(keys, Role.REVIEWER)
    token = csrf_of(await browser.get("/review/login"))
    guessed = await browser.post("/review/login", data={"csrf": "guess", "key": secret})
    assert guessed.status_code == 403
    assert not set_cookies(guessed, SESSION)

    browser.cookies.clear()  # another site's form: it may know a token, never this browser's cookie
    forged = await browser.post("/review/login", data={"csrf": token, "key": secret})
    assert forged.status_code == 403
    assert not set_cookies(forged, SESSION)


async def test_a_reviewer_key_opens_a_session_whose_cookie_is_not_the_key(
    browser: httpx.AsyncClient, keys: KeyStore, store: redis.Redis, settings: Settings
) -> None:
    _, secret = new_key(keys, Role.REVIEWER)
    signed = await sign_in(browser, secret, next_page="/review?show=all")
    assert signed.status_code == 303
    assert signed.headers["location"].startswith("/review?show=all&msg=Signed+in")
    (cookie,) = set_cookies(signed, SESSION)
    lifetime = f"max-age={int(settings.auth.session_ttl_s)}"
    for flag in ("httponly", "samesite=strict", "path=/review", lifetime):
        assert flag in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http here: a Secure cookie would never come back
    session_id = browser.cookies[SESSION]
    assert session_id != secret and secret not in cookie
    # Redis holds the session under the id's hash: a dump of it holds no live session id.
    stored = [key.decode() for key in store.scan_iter("keel:auth:session:*")]
    assert stored and not any(session_id in key for key in stored)

    queue = await browser.get("/review")
    assert queue.status_code == 200
    assert "Signed in as" in queue.text and "(default)" in queue.text


async def test_an_admin_key_opens_the_page_too(browser: httpx.AsyncClient, keys: KeyStore) -> None:
    _, secret = new_key(keys, Role.ADMIN)
    assert (await sign_in(browser, secret)).status_code == 303


async def test_login_goes_back_only_to_a_page_of_the_reviewer_page(
    browser: httpx.AsyncClient, keys: KeyStore
) -> None:
    _, secret = new_key(keys, Role.REVIEWER)
    for elsewhere in ("https://evil.example/review", "//evil.example", "/review//evil.example", "/v1/keys"):
        signed = await sign_in(browser, secret, next_page=elsewhere)
        assert signed.headers["location"].startswith("/review?msg="), elsewhere


async def test_without_a_session_a_page_goes_to_the_login_and_a_post_is_refused(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/review/task-default.0123", params={"msg": "hi"})
    assert page.status_code == 303
    assert page.headers["location"] == "/review/login?next=%2Freview%2Ftask-default.0123%3Fmsg%3Dhi"
    post = await browser.post("/review/task-default.0123/claim", data={"csrf": "x"})
    assert post.status_code == 401
    assert 'name="key"' in post.text  # the login form, to sign in again


async def test_a_post_without_the_sessions_csrf_token_is_refused_and_does_nothing(
    browser: httpx.AsyncClient, keys: KeyStore
) -> None:
    csrf = await signed_in(browser, keys, Role.REVIEWER)
    for sent in ({}, {"csrf": "not-it"}, {"csrf": csrf + "x"}):
        logout = await browser.post("/review/logout", data=sent)
        assert logout.status_code == 403
        assert "The form has expired; reload the page." in logout.text
        # The check comes first: an unknown task would be a 404, were anything looked up.
        claim = await browser.post("/review/task-default.0123/claim", data=sent)
        assert claim.status_code == 403
    assert (await browser.get("/review")).status_code == 200  # still signed in

    with_token = await browser.post("/review/task-default.0123/claim", data={"csrf": csrf})
    assert with_token.status_code == 404


async def test_logout_ends_the_session(browser: httpx.AsyncClient, keys: KeyStore) -> None:
    csrf = await signed_in(browser, keys, Role.REVIEWER)
    session_id = browser.cookies[SESSION]
    out = await browser.post("/review/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert out.headers["location"].startswith("/review/login")
    assert SESSION not in browser.cookies

    browser.cookies.set(SESSION, session_id, domain="keel.test", path="/review")  # the old cookie, replayed
    assert (await browser.get("/review")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(
    browser: httpx.AsyncClient, keys: KeyStore, store: redis.Redis
) -> None:
    key_id, secret = new_key(keys, Role.REVIEWER)
    assert (await sign_in(browser, secret)).status_code == 303
    assert (await browser.get("/review")).status_code == 200
    before = set(store.scan_iter("keel:auth:session:*"))

    keys.revoke(key_id)
    page = await browser.get("/review")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/review/login")
    assert SESSION not in browser.cookies  # the dead cookie is dropped
    assert len(before - set(store.scan_iter("keel:auth:session:*"))) == 1  # and its record closed

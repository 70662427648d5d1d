"""The reviewer page at /review: sign-in, the queue, one item and its decisions, as server-rendered forms.

Every handler calls the review service the JSON routes call too, built for the signed-in reviewer,
so queries, claims, conflicts and decisions are settled in one place; a refusal becomes a readable
message on the page, with its status code. A successful post redirects (303), so reloading never
posts twice.

Signing in: the reviewer pastes an API key once; the page keeps a session (keel/stores/sessions.py)
whose id, never the key, is an HttpOnly cookie. Every page but the login needs a live session of
a key with the reviewer role, and every post carries the session's CSRF token, checked before
anything is done (the login form, before there is a session, carries a double-submit token).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Depends, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from api.deps import AppState, State
from api.review_forms import Problem, QueueFilters, readable, safe_next, same_token
from api.review_passages import Passages, place_citations
from api.schemas import ReviewDetail, ReviewIn
from keel.control.errors import ControlError
from keel.core.identity import Principal, Role
from keel.stores.blobs import BlobNotFoundError

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=_HERE / "templates")
STYLESHEET = _HERE / "static" / "review.css"
SESSION_COOKIE = "keel_session"
LOGIN_CSRF_COOKIE = "keel_login_csrf"
LOGIN_FORM_TTL_S = 15 * 60  # time enough to find a key and paste it
DONE = {"approve": "Approved", "reject": "Rejected", "edit": "Edited", "request_changes": "Changes requested"}
NOT_A_REVIEWER = "This key cannot open the review page: it is unknown, revoked, or has no reviewer role."
EXPIRED = "The form has expired; reload the page."


@dataclass(frozen=True)
class PageSession:
    """A signed-in reviewer: who (from their key), their session's id and its CSRF token."""

    principal: Principal
    session_id: str
    csrf: str


class PageRefused(Exception):
    """Raised by the page's dependencies: answer with `response` instead of the page asked for."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _PageRoute(APIRoute):
    """A route of the reviewer page: a PageRefused from its dependencies is its answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except PageRefused as refused:
                return refused.response

        return handle


router = APIRouter(prefix="/review", include_in_schema=False, route_class=_PageRoute)


# --- filters for the templates ------------------------------------------------------------


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _moment(iso: str) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES.env.filters["age"] = _age
TEMPLATES.env.filters["moment"] = _moment


def _page(
    request: Request, template: str, page: PageSession | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    who = {
        "principal": page.principal if page else None,
        "reviewer": page.principal.name if page else "",
        "csrf": page.csrf if page else "",
    }
    return TEMPLATES.TemplateResponse(request, template, {**who, **context}, status_code=status_code)


def _redirect(path: str, notice: str) -> RedirectResponse:
    joint = "&" if "?" in path else "?"  # `path` may be a filtered queue, with its query
    target = f"{path}{joint}{urlencode({'msg': notice})}"
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    # Strict: no other site's link or form sends it. Secure whenever the page is served over https.
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/review",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def _drop_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/review", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )


# --- the stylesheet: no session needed ---------------------------------------------------


@router.get("/static/review.css")
async def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css")


# --- who reviews: the session behind the cookie -----------------------------------------


def _live(state: AppState, session_id: str) -> tuple[Principal, str] | None:
    """The reviewer and CSRF token of a session, or None; a session whose key went is closed."""
    sessions = state.sessions
    session = sessions.get(session_id)
    if session is None:
        return None
    principal = state.keys.principal(session.key_id)
    if principal is None or not principal.has(Role.REVIEWER):
        sessions.close(session_id)  # a revoked key's sessions end with it, at their next request
        return None
    return principal, session.csrf


async def page_session(
    request: Request, state: State, session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None
) -> PageSession:
    """The signed-in reviewer; without a live session a page goes to the login, a post gets 401."""
    live = await asyncio.to_thread(_live, state, session_id) if session_id else None
    if not session_id or live is None:
        raise PageRefused(_signed_out(request))
    principal, csrf = live
    return PageSession(principal, session_id, csrf)


PageReviewer = Annotated[PageSession, Depends(page_session)]


async def posted_form(request: Request, page: PageReviewer) -> PageSession:
    """The reviewer of a post whose form carries the session's CSRF token; else a 403, nothing done."""
    form = await request.form()  # Starlette keeps it: the route reads the same form
    if not same_token(str(form.get("csrf", "")), page.csrf):
        expired = Problem(status.HTTP_403_FORBIDDEN, EXPIRED)
        back = safe_next(_page_of(request.url.path))
        raise PageRefused(_page(request, "refused.html", page, expired.status, problem=expired, back=back))
    return page


PagePost = Annotated[PageSession, Depends(posted_form)]


def _page_of(post_path: str) -> str:
    """The page a form posted from: /review/<task> for /review/<task>/claim, /review for logout."""
    return post_path.rsplit("/", 1)[0]


def _signed_out(request: Request) -> Response:
    if request.method in ("GET", "HEAD"):
        wanted = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
        response: Response = RedirectResponse(
            f"/review/login?{urlencode({'next': wanted})}", status_code=status.HTTP_303_SEE_OTHER
        )
    else:
        ended = Problem(status.HTTP_401_UNAUTHORIZED, "You are not signed in (or your session ended).")
        response = _login_page(request, safe_next(_page_of(request.url.path)), problem=ended)
    if SESSION_COOKIE in request.cookies:
        _drop_cookie(response, request, SESSION_COOKIE)
    return response


# --- signing in and out -------------------------------------------------------------------


def _login_page(
    request: Request, target: str, notice: str = "", problem: Problem | None = None
) -> HTMLResponse:
    """The key form, with a fresh double-submit token: in its cookie and in the form."""
    token = secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        None,
        problem.status if problem else 200,
        csrf=token,
        next=target,
        notice=notice,
        problem=problem,
    )
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, token, LOGIN_FORM_TTL_S)
    return response


@router.get("/login")
async def login_page(
    request: Request, target: Annotated[str, Query(alias="next")] = "/review", msg: str = ""
) -> HTMLResponse:
    """Paste an API key with the reviewer role to sign in."""
    return _login_page(request, safe_next(target), notice=msg)


@router.post("/login")
async def sign_in(
    request: Request,
    state: State,
    login_csrf: Annotated[str | None, Cookie(alias=LOGIN_CSRF_COOKIE)] = None,
) -> Response:
    """Open a session for a reviewer's key; the cookie holds the session's id, never the key."""
    form = await request.form()
    target = safe_next(str(form.get("next", "")))
    if not same_token(str(form.get("csrf", "")), login_csrf or ""):
        expired = Problem(status.HTTP_403_FORBIDDEN, "The sign-in form had expired: paste the key again.")
        return _login_page(request, target, problem=expired)
    principal = await asyncio.to_thread(state.keys.verify, str(form.get("key", "")).strip())
    if principal is None or not principal.has(Role.REVIEWER):
        # The same words either way; only the status says whether the key is known.
        code = status.HTTP_401_UNAUTHORIZED if principal is None else status.HTTP_403_FORBIDDEN
        return _login_page(request, target, problem=Problem(code, NOT_A_REVIEWER))
    previous = request.cookies.get(SESSION_COOKIE)
    session_id = await asyncio.to_thread(_reopen, state, principal.key_id, previous)
    response = _redirect(target, f"Signed in as {principal.name}.")
    _set_cookie(response, request, SESSION_COOKIE, session_id, int(state.settings.auth.session_ttl_s))
    _drop_cookie(response, request, LOGIN_CSRF_COOKIE)
    return response


def _reopen(state: AppState, key_id: str, previous: str | None) -> str:
    """A new session for the key; the browser's previous one, if any, is closed, not left to expire."""
    sessions = state.sessions
    if previous:
        sessions.close(previous)
    session_id, _ = sessions.open(key_id)
    return session_id


@router.post("/logout")
async def sign_out(request: Request, state: State, page: PagePost) -> Response:
    """End the session: its record and its cookie."""
    await asyncio.to_thread(state.sessions.close, page.session_id)
    response = _redirect("/review/login", "Signed out.")
    _drop_cookie(response, request, SESSION_COOKIE)
    return response


# --- the queue ------------------------------------------------------------------------------


@router.get("")
async def queue_page(
    request: Request,
    state: State,
    page: PageReviewer,
    show: str = "open",
    group: str = "",
    reason: str = "",
    min_age: str = "",
    max_age: str = "",
    msg: str = "",
) -> HTMLResponse:
    """The items awaiting review, oldest first, through the filters of a plain GET form."""
    form = {"show": show, "group": group, "reason": reason, "min_age": min_age, "max_age": max_age}
    items: list[Any] = []
    problem = None
    try:
        wanted = QueueFilters.from_form(form).wanted(page.principal.name)
        items = (await state.reviews(page.principal).queue(wanted)).items
    except ValidationError as err:
        problem = Problem.invalid(readable(err))
    return _page(
        request,
        "queue.html",
        page,
        problem.status if problem else 200,
        items=items,
        form=form,
        notice=msg,
        problem=problem,
    )


# --- one item and its decisions ---------------------------------------------------------


@router.get("/{task_id}")
async def item_page(
    request: Request, task_id: str, state: State, page: PageReviewer, msg: str = ""
) -> HTMLResponse:
    """The question, the draft, the cited passages in place, and a form for each decision."""
    return await _item(request, state, task_id, page, notice=msg)


async def _item(
    request: Request,
    state: State,
    task_id: str,
    page: PageSession,
    notice: str = "",
    problem: Problem | None = None,
) -> HTMLResponse:
    try:
        detail = await state.reviews(page.principal).item(task_id)
    except ControlError as err:
        gone = Problem.of(err)
        return _page(
            request,
            "gone.html",
            page,
            (problem or gone).status,
            task_id=task_id,
            gone=gone,
            problem=problem,
        )
    return _page(
        request,
        "item.html",
        page,
        problem.status if problem else 200,
        item=detail,
        passages=await asyncio.to_thread(_passages, state, page.principal.tenant, detail),
        notice=notice,
        problem=problem,
    )


def _passages(state: AppState, tenant: str, detail: ReviewDetail) -> Passages:
    try:
        context = state.blobs.get_json(tenant, detail.context_key)
    except BlobNotFoundError:
        # No context, a data dir not shared with the worker, or a blob gone: the quotes alone.
        context = {}
    return place_citations(context, detail.citations)


@router.post("/{task_id}/claim")
async def claim_item(request: Request, task_id: str, state: State, page: PagePost) -> Response:
    async def claim() -> str:
        ack = await state.reviews(page.principal).claim(task_id)
        return f"Claimed until {_moment(ack.lease_until)}: others no longer see it in their queue."

    return await _act(request, state, task_id, page, claim, f"/review/{task_id}")


@router.post("/{task_id}/release")
async def release_item(request: Request, task_id: str, state: State, page: PagePost) -> Response:
    async def release() -> str:
        await state.reviews(page.principal).release(task_id)
        return "Released: the item is back in everyone's queue."

    return await _act(request, state, task_id, page, release, f"/review/{task_id}")


@router.post("/{task_id}/decide")
async def decide_item(request: Request, task_id: str, state: State, page: PagePost) -> Response:
    form = await request.form()

    async def decide() -> str:
        decision = str(form.get("decision", ""))
        # No reviewer in the body: the service decides as the signed-in principal.
        body = ReviewIn.model_validate(
            {
                "decision": decision,
                "reason": str(form.get("reason", "")),
                "answer": str(form.get("answer", "")),
                "instruction": str(form.get("instruction", "")),
                "round": str(form.get("round", "0")) or "0",
                # Edit only: the checked boxes are the citations kept (none checked: none kept).
                "citations": [str(c) for c in form.getlist("citations")] if decision == "edit" else None,
            }
        )
        done = await state.reviews(page.principal).decide(task_id, body)
        return f"{DONE.get(done.decision, done.decision)}: {task_id}."

    return await _act(request, state, task_id, page, decide, "/review")


async def _act(
    request: Request,
    state: State,
    task_id: str,
    page: PageSession,
    action: Callable[[], Awaitable[str]],
    then: str,
) -> Response:
    """Run one claim, release or decision; on success go to `then`, else show the item and why."""
    # The JSON routes' per-key rate for these, in the same count: the page is no way around it.
    limit = state.settings.limits.decisions_per_minute
    rate = await asyncio.to_thread(state.rates.hit, "decision", page.principal.key_id, limit)
    if not rate.allowed:
        busy = Problem(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"More than {limit} claims and decisions a minute with this key: try again in "
            f"{rate.retry_after_s} s.",
        )
        return await _item(request, state, task_id, page, problem=busy)
    try:
        notice = await action()
    except ControlError as err:
        return await _item(request, state, task_id, page, problem=Problem.of(err))
    except ValidationError as err:
        invalid = Problem.invalid(readable(err))
        return await _item(request, state, task_id, page, problem=invalid)
    return _redirect(then, notice)

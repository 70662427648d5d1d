"""The reviewer page at /review: the queue, one item and its decisions, as server-rendered forms.

Every handler calls the review service the JSON routes call too, so queries, claims, conflicts
and decisions are settled in one place; a refusal becomes a readable message on the page, with
its status code. A successful post redirects (303), so reloading never posts twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Cookie, Depends, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from api.deps import State
from api.review_forms import Problem, QueueFilters, name_problem, readable
from api.review_passages import Passages, place_citations
from api.schemas import ReviewDetail, ReviewIn
from keel.control.errors import ControlError
from keel.stores.blobs import BlobNotFoundError

router = APIRouter(prefix="/review", include_in_schema=False)

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=_HERE / "templates")
STYLESHEET = _HERE / "static" / "review.css"
COOKIE = "reviewer"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
DONE = {"approve": "Approved", "reject": "Rejected", "edit": "Edited", "request_changes": "Changes requested"}


def current_reviewer(reviewer: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> str:
    """The name in the reviewer cookie; "" when unset or no longer a valid name."""
    name = unquote(reviewer or "")
    return "" if name_problem(name) else name


Reviewer = Annotated[str, Depends(current_reviewer)]


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
    request: Request, template: str, reviewer: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, template, {"reviewer": reviewer, **context}, status_code=status_code
    )


def _redirect(path: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'msg': notice})}", status_code=status.HTTP_303_SEE_OTHER)


# --- the queue and who you are ----------------------------------------------------------


@router.get("/static/review.css")
async def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css")


@router.get("")
async def queue_page(
    request: Request,
    state: State,
    reviewer: Reviewer,
    show: str = "open",
    group: str = "",
    reason: str = "",
    min_age: str = "",
    max_age: str = "",
    msg: str = "",
) -> HTMLResponse:
    """The items awaiting review, oldest first, through the filters of a plain GET form."""
    form = {"show": show, "group": group, "reason": reason, "min_age": min_age, "max_age": max_age}
    return await _queue(request, state, reviewer, form, notice=msg)


async def _queue(
    request: Request,
    state: State,
    reviewer: str,
    form: dict[str, str],
    notice: str = "",
    problem: Problem | None = None,
    back: str | None = None,
) -> HTMLResponse:
    """The queue page; `back` is where the name form returns to (default: this page's URL)."""
    items: list[Any] = []
    try:
        queue = await state.reviews().queue(QueueFilters.from_form(form).wanted(reviewer))
        items = queue.items
    except ValidationError as err:
        problem = problem or Problem.invalid(readable(err))
    return _page(
        request,
        "queue.html",
        reviewer,
        problem.status if problem else 200,
        items=items,
        form=form,
        notice=notice,
        problem=problem,
        back=back or request.url.path,
    )


@router.post("/identity")
async def set_reviewer(request: Request, state: State, reviewer: Reviewer) -> Response:
    """Remember who reviews in this browser (there is no login): a cookie with the name."""
    form = await request.form()
    name = str(form.get("reviewer", "")).strip()
    problem = name_problem(name)
    if problem:
        blank = {"show": "open", "group": "", "reason": "", "min_age": "", "max_age": ""}
        bad_name = Problem.invalid(f"Not a reviewer name: {problem}.")
        return await _queue(request, state, reviewer, blank, problem=bad_name, back="/review")
    back = str(form.get("next", ""))
    # Only back to a page of this site: a form field must not redirect elsewhere.
    target = back if back.startswith("/review") and "//" not in back else "/review"
    response = _redirect(target, f"You review as {name}.")
    # SameSite=Lax: another site cannot post a decision under this name.
    response.set_cookie(
        COOKIE, quote(name), max_age=COOKIE_MAX_AGE_S, path="/review", httponly=True, samesite="lax"
    )
    return response


# --- one item and its decisions ---------------------------------------------------------


@router.get("/{task_id}")
async def item_page(
    request: Request, task_id: str, state: State, reviewer: Reviewer, msg: str = ""
) -> HTMLResponse:
    """The question, the draft, the cited passages in place, and a form for each decision."""
    return await _item(request, state, task_id, reviewer, notice=msg)


async def _item(
    request: Request,
    state: State,
    task_id: str,
    reviewer: str,
    notice: str = "",
    problem: Problem | None = None,
) -> HTMLResponse:
    try:
        detail = await state.reviews().item(task_id)
    except ControlError as err:
        gone = Problem.of(err)
        return _page(
            request,
            "gone.html",
            reviewer,
            (problem or gone).status,
            task_id=task_id,
            gone=gone,
            problem=problem,
            back=f"/review/{task_id}",
        )
    return _page(
        request,
        "item.html",
        reviewer,
        problem.status if problem else 200,
        item=detail,
        passages=_passages(state, detail),
        notice=notice,
        problem=problem,
        back=f"/review/{task_id}",  # after a failed post the URL is the post's, not the page's
    )


def _passages(state: State, detail: ReviewDetail) -> Passages:
    try:
        context = state.blobs.get_json(detail.context_key)
    except BlobNotFoundError:
        # No context, a data dir not shared with the worker, or a blob gone: the quotes alone.
        context = {}
    return place_citations(context, detail.citations)


@router.post("/{task_id}/claim")
async def claim_item(request: Request, task_id: str, state: State, reviewer: Reviewer) -> Response:
    async def claim() -> str:
        ack = await state.reviews().claim(task_id, reviewer)
        return f"Claimed until {_moment(ack.lease_until)}: others no longer see it in their queue."

    return await _act(request, state, task_id, reviewer, claim, f"/review/{task_id}")


@router.post("/{task_id}/release")
async def release_item(request: Request, task_id: str, state: State, reviewer: Reviewer) -> Response:
    async def release() -> str:
        await state.reviews().release(task_id, reviewer)
        return "Released: the item is back in everyone's queue."

    return await _act(request, state, task_id, reviewer, release, f"/review/{task_id}")


@router.post("/{task_id}/decide")
async def decide_item(request: Request, task_id: str, state: State, reviewer: Reviewer) -> Response:
    form = await request.form()

    async def decide() -> str:
        decision = str(form.get("decision", ""))
        body = ReviewIn.model_validate(
            {
                "decision": decision,
                "reviewer": reviewer,
                "reason": str(form.get("reason", "")),
                "answer": str(form.get("answer", "")),
                "instruction": str(form.get("instruction", "")),
                "round": str(form.get("round", "0")) or "0",
                # Edit only: the checked boxes are the citations kept (none checked: none kept).
                "citations": [str(c) for c in form.getlist("citations")] if decision == "edit" else None,
            }
        )
        done = await state.reviews().decide(task_id, body)
        return f"{DONE.get(done.decision, done.decision)}: {task_id}."

    return await _act(request, state, task_id, reviewer, decide, "/review")


async def _act(
    request: Request,
    state: State,
    task_id: str,
    reviewer: str,
    action: Callable[[], Awaitable[str]],
    then: str,
) -> Response:
    """Run one claim, release or decision; on success go to `then`, else show the item and why."""
    if not reviewer:
        unnamed = Problem.invalid("Set your reviewer name first (top of the page).")
        return await _item(request, state, task_id, reviewer, problem=unnamed)
    try:
        notice = await action()
    except ControlError as err:
        return await _item(request, state, task_id, reviewer, problem=Problem.of(err))
    except ValidationError as err:
        invalid = Problem.invalid(readable(err))
        return await _item(request, state, task_id, reviewer, problem=invalid)
    return _redirect(then, notice)

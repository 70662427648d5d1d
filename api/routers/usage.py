"""Showback: who of the caller's tenant spent what, by key, day, model, step or pipeline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from api.auth import Auditor
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.schemas import UsageOut
from api.services.usage import UsageService, default_range, range_problem
from keel.core.usage import DIMENSIONS, Dimension
from keel.stores.usage import UsageLedger

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=responses(*AUTHENTICATED))

MAX_GROUP_BY_CHARS = 200
MAX_GROUP_BY = 4 * len(DIMENSIONS)

_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The usage: JSON (`format=json`) or CSV with a header row (`format=csv`)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def split_commas(values: object) -> object:
    """Dimensions given comma-separated, repeated or both, as one list (checked after this)."""
    if not isinstance(values, list):
        return values
    parts: list[object] = []
    for value in values:
        if isinstance(value, str) and len(value) <= MAX_GROUP_BY_CHARS:
            parts += [part.strip() for part in value.split(",")]
        else:  # left whole: refused as it is, with an excerpt
            parts.append(value)
    return parts


def _refused(parameter: str, value: date, message: str) -> RequestValidationError:
    error: dict[str, Any] = {
        "type": "value_error",
        "loc": ("query", parameter),
        "msg": message,
        "input": value.isoformat(),
    }
    return RequestValidationError([error])


def day_range(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """`from` and `to` with their defaults (the last 30 days to today), checked."""
    start, end = default_range(start, end, today)
    problem = range_problem(start, end)
    if problem is not None:
        raise _refused("from", start, problem)
    return start, end


@router.get("", response_model=UsageOut, responses=_CSV)
async def usage(
    caller: Auditor,
    state: State,
    group_by: Annotated[
        list[Dimension],
        Query(max_length=MAX_GROUP_BY, description=f"Comma-separated or repeated: {', '.join(DIMENSIONS)}"),
        BeforeValidator(split_commas),
    ] = ["day"],  # noqa: B006 - FastAPI copies a query default; it is never mutated
    start: Annotated[
        date | None, Query(alias="from", description="First UTC day; default: 29 days before `to`")
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last UTC day (inclusive); default: today")
    ] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> UsageOut | Response:
    """The caller's tenant's usage and cost from `from` to `to` (UTC days, at most 400), summed by
    `group_by`, largest cost first, with the total. `format=csv` answers a CSV attachment.

    Review lines are the reviewers' time (model "human"); the "task" step counts finished tasks."""
    first, last = day_range(start, end, datetime.now(UTC).date())
    service = UsageService(UsageLedger(state.redis), caller.tenant, state.settings.cost.currency)
    dims = list(dict.fromkeys(group_by))  # each once, in order
    if output == "csv":
        name = f"usage-{caller.tenant}-{first}-{last}.csv"
        return Response(
            await service.csv(dims, first, last),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return await service.report(dims, first, last)

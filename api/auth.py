"""Who calls, and may they: the API key of every request, the role each route needs, rate limits.

A missing or unknown key is a 401, a key without the route's role a 403 naming the role; the
tenant of everything a route touches is the key's (another tenant's resource is simply not
found: 404). A route takes its caller as one of the aliases below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import State
from keel.core.identity import Principal, Role
from keel.core.settings import LimitSettings

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: printed by `keel up` on first start, or made with `keel keys create`.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticated(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller behind the request's bearer key (one Redis read); 401 when there is none."""
    if credentials is None:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    principal = await asyncio.to_thread(state.keys.verify, credentials.credentials)
    if principal is None:
        raise _unauthorized("unknown or revoked API key")
    return principal


Caller = Annotated[Principal, Depends(authenticated)]


def _roles(roles: tuple[Role, ...]) -> str:
    return " or ".join(f"'{role.value}'" for role in roles)


def requires(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, when their key has one of `roles` (admin has them all)."""

    async def check(caller: Caller) -> Principal:
        if not any(caller.has(role) for role in roles):
            held = ", ".join(sorted(r.value for r in caller.roles))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs the role {_roles(roles)}; this key has {held}"
            )
        return caller

    return check


def rate_limited(
    role: Role, action: str, per_minute: Callable[[LimitSettings], int]
) -> Callable[[State, Principal], Awaitable[Principal]]:
    """A dependency: the caller with `role`, within the per-key rate of `action` (else 429)."""

    # A default, not an annotation: annotations are strings here, evaluated without this closure.
    with_role = Depends(requires(role))

    async def check(state: State, caller: Principal = with_role) -> Principal:
        limit = per_minute(state.settings.limits)
        decision = await asyncio.to_thread(state.rates.hit, action, caller.key_id, limit)
        if not decision.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"more than {limit} {action} requests a minute with this key",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        return caller

    return check


Submitter = Annotated[Principal, Depends(requires(Role.SUBMITTER))]
# Reading tasks: who asked, who reviews them and who audits them.
TaskReader = Annotated[Principal, Depends(requires(Role.SUBMITTER, Role.REVIEWER, Role.AUDITOR))]
Reviewer = Annotated[Principal, Depends(requires(Role.REVIEWER))]
Ingester = Annotated[Principal, Depends(requires(Role.INGESTER))]
Auditor = Annotated[Principal, Depends(requires(Role.AUDITOR))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]
SubmitterWithinRate = Annotated[
    Principal, Depends(rate_limited(Role.SUBMITTER, "submit", lambda limits: limits.submits_per_minute))
]
UploaderWithinRate = Annotated[
    Principal, Depends(rate_limited(Role.INGESTER, "upload", lambda limits: limits.uploads_per_minute))
]
ReviewerWithinRate = Annotated[
    Principal, Depends(rate_limited(Role.REVIEWER, "decision", lambda limits: limits.decisions_per_minute))
]

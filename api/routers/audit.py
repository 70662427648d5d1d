"""The audit trail of review decisions, per task or per reviewer."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AfterValidator

from api.auth import Auditor
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.schemas import AuditEntryOut, AuditOut
from api.validation import plain
from keel.core.identity import normal_name
from keel.stores.audit import AuditLog

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=responses(*AUTHENTICATED))


@router.get("", response_model=AuditOut)
async def audit(
    caller: Auditor,
    state: State,
    task_id: Annotated[str | None, Query(min_length=1, max_length=64), AfterValidator(plain)] = None,
    reviewer: Annotated[str | None, Query(min_length=1, max_length=200), AfterValidator(plain)] = None,
) -> AuditOut:
    """Every decision on a task (`task_id`) or by a person (`reviewer`, a principal's name) of the
    caller's tenant, oldest first.

    Deadline actions (escalate, expire) are by the reviewer "keel".
    """
    if (task_id is None) == (reviewer is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of task_id or reviewer")
    log = AuditLog(state.redis)
    if task_id is not None:
        entries = await asyncio.to_thread(log.for_task, caller.tenant, task_id)
    else:
        assert reviewer is not None
        entries = await asyncio.to_thread(log.for_reviewer, caller.tenant, normal_name(reviewer))
    return AuditOut(entries=[AuditEntryOut.model_validate(asdict(e)) for e in entries])

"""The HTTP status of each kind of refusal the control side raises (keel/control/errors.py)."""

from __future__ import annotations

from fastapi import status

from keel.control.errors import ConflictError, ControlError, InvalidRequestError, LimitError, NotFoundError

_STATUS: dict[type[ControlError], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    InvalidRequestError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    LimitError: status.HTTP_429_TOO_MANY_REQUESTS,
}


def status_of(err: ControlError) -> int:
    """404 for what does not exist, 409 for a conflict with its state, 422 for a bad request,
    429 for a limit reached."""
    for kind, code in _STATUS.items():
        if isinstance(err, kind):
            return code
    return status.HTTP_422_UNPROCESSABLE_CONTENT

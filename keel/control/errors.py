"""What the control side refuses, by kind. Each message is fit to show the caller as is.

The API answers each kind with its own status (api/errors.py); the CLI prints the message.
"""

from __future__ import annotations


class ControlError(Exception):
    """A request Keel cannot carry out as asked."""


class NotFoundError(ControlError):
    """What the request names does not exist (or is not the caller's to see)."""


class ConflictError(ControlError):
    """It exists, but is not in a state to do this now (not awaiting review, claimed, stale)."""


class InvalidRequestError(ControlError):
    """The request itself cannot be carried out (a folder that is not one, a bad interval)."""


class LimitError(ControlError):
    """Allowed, but not now: a limit of the caller's tenant is reached (retry after a while)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

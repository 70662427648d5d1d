"""The kinds of activity failure, named once: the code that raises and the policies that retry
both read them from here, so a kind's retryability is decided in one place.

A permanent kind fails the activity at once: the same call would fail again. A retryable
kind is retried by the activity's policy. Retry policies list exactly the permanent kinds as
non-retryable (`PERMANENT_FAILURES`), so a retryable failure can never be listed there by
mistake: a new kind is retryable or permanent here, nowhere else.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.exceptions import ApplicationError


class FailureKind(StrEnum):
    INVALID_INPUT = "InvalidInput"  # the request cannot be carried out as given
    NOT_FOUND = "NotFound"  # what the request names does not exist (a source removed meanwhile)
    UNSUPPORTED_DOCUMENT = "UnsupportedDocument"  # a document with nothing to index
    MODEL_REFUSED = "ModelRefused"  # the model endpoint refused the request (4xx but 429)
    MODEL_UNAVAILABLE = "ModelUnavailable"  # timeout, connection error, 429 or 5xx: may pass
    BUDGET_EXCEEDED = "BudgetExceeded"  # a hard budget refused the model call (cost.on_hard_limit "fail")

    @property
    def permanent(self) -> bool:
        return self is not FailureKind.MODEL_UNAVAILABLE


# What every retry policy lists as non-retryable.
PERMANENT_FAILURES = [kind.value for kind in FailureKind if kind.permanent]


def failure(kind: FailureKind, message: str) -> ApplicationError:
    """The exception an activity raises for a failure of this kind, retryable as the kind says."""
    return ApplicationError(message, type=kind.value, non_retryable=kind.permanent)


def failure_reason(err: BaseException) -> str:
    """Why a workflow, or a child or activity of it, failed, in Keel's own words: the message of
    the innermost failure raised with a FailureKind (not the library error under it, nor
    "activity failed" over it); the innermost failure's message when none has a kind."""
    kinds = {kind.value for kind in FailureKind}
    reason = None
    while (cause := getattr(err, "cause", None)) is not None:
        err = cause
        if getattr(err, "type", None) in kinds:
            reason = str(err)
    return reason if reason is not None else str(err)

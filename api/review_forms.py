"""What the reviewer page's forms send, checked, and explained in words a reviewer can act on.

The page calls the review service directly, past FastAPI's own query checks: these stand in for
them, with the API's own patterns, and their errors become a sentence, not JSON. Here too: the
check of a form's CSRF token, and where a sign-in may lead back to.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import status
from pydantic import BaseModel, Field, ValidationError

from api.errors import status_of
from api.schemas import NAME_PATTERN, ReviewFilter
from keel.control.errors import ControlError
from keel.core.review_queue import QueueFilter

_UNPROCESSABLE = status.HTTP_422_UNPROCESSABLE_CONTENT


@dataclass(frozen=True)
class Problem:
    """What went wrong, for the page: a status code and the reason."""

    status: int
    detail: str

    @classmethod
    def of(cls, err: ControlError) -> Problem:
        return cls(status_of(err), str(err))

    @classmethod
    def invalid(cls, detail: str) -> Problem:
        return cls(_UNPROCESSABLE, detail)


class QueueFilters(BaseModel):
    """The queue's filter form. Ages are in minutes, as a person types them."""

    show: ReviewFilter = "open"
    group: str | None = Field(default=None, pattern=NAME_PATTERN)
    reason: str | None = Field(default=None, pattern=NAME_PATTERN)
    min_age: float | None = Field(default=None, ge=0)
    max_age: float | None = Field(default=None, ge=0)

    @classmethod
    def from_form(cls, form: dict[str, str]) -> QueueFilters:
        # HTML forms send an empty input as "": that means no filter.
        return cls.model_validate({key: value for key, value in form.items() if value.strip()})

    def wanted(self, reviewer: str) -> QueueFilter:
        """The queue's filter in this reviewer's view (their own claims stay in "open")."""
        return QueueFilter(
            self.show,
            reviewer,
            self.group or "",
            self.reason or "",
            None if self.min_age is None else self.min_age * 60,
            None if self.max_age is None else self.max_age * 60,
        )


def same_token(sent: str, expected: str) -> bool:
    """Whether a form's CSRF token is the one expected, compared in constant time."""
    # Bytes: compare_digest refuses a str with non-ASCII characters, which a form may send.
    return bool(expected) and hmac.compare_digest(_bytes(sent), _bytes(expected))


def safe_next(target: str) -> str:
    """Where to go after signing in: `target` when it is a page of the reviewer page, else /review.

    A form field or a query must not send the reviewer to another site, nor back to the login.
    """
    ours = target == "/review" or target.startswith(("/review/", "/review?"))
    if not ours or "//" in target or "\\" in target or target.startswith(("/review/login", "/review/logout")):
        return "/review"
    return target


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def readable(err: ValidationError) -> str:
    """A validation error as one sentence per field."""
    parts = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "string_pattern_mismatch":
            text = "must be 1 to 200 characters, without a quote, a backslash or a control character"
        elif error["type"] == "value_error":
            text = str(error["ctx"]["error"])
        else:
            text = error["msg"]
        parts.append(f"{where}: {text}" if where else text)
    return "; ".join(parts)

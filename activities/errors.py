"""Which store errors are permanent: those fail the activity at once instead of retrying."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from keel.core.errors import FailureKind, failure
from retrieval.types import InvalidRequestError


@contextmanager
def permanent_errors() -> Iterator[None]:
    """A request a store refused will be refused again: no Temporal retry."""
    try:
        yield
    except InvalidRequestError as err:
        raise failure(FailureKind.INVALID_INPUT, str(err)) from err

"""Store errors that can only repeat fail the activity at once; others stay retryable."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.errors import permanent_errors
from retrieval.types import InvalidRequestError, StoreUnavailableError

pytestmark = pytest.mark.unit


def test_a_refused_request_is_not_retried() -> None:
    with pytest.raises(ApplicationError) as caught, permanent_errors():
        raise InvalidRequestError("tenant 'bad tenant!' is not valid")
    assert caught.value.non_retryable and caught.value.type == "InvalidInput"
    assert "bad tenant" in str(caught.value)


def test_an_unavailable_store_stays_retryable() -> None:
    with pytest.raises(StoreUnavailableError), permanent_errors():
        raise StoreUnavailableError("FalkorDB at redis://127.0.0.1:1 refused the connection")


@permanent_errors()
def _decorated() -> None:
    raise InvalidRequestError("3 dims, expected 384")


def test_it_works_as_a_decorator() -> None:
    with pytest.raises(ApplicationError, match="3 dims"):
        _decorated()

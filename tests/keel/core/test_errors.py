"""Failure kinds: each is retryable or permanent in one place, and raised as it says."""

from __future__ import annotations

import pytest

from keel.core.errors import PERMANENT_FAILURES, FailureKind, failure, failure_reason

pytestmark = pytest.mark.unit


def test_only_an_unavailable_model_is_retryable() -> None:
    assert [kind for kind in FailureKind if not kind.permanent] == [FailureKind.MODEL_UNAVAILABLE]
    assert set(PERMANENT_FAILURES) == {kind.value for kind in FailureKind} - {"ModelUnavailable"}


@pytest.mark.parametrize("kind", list(FailureKind))
def test_a_failure_is_raised_retryable_exactly_when_its_kind_is(kind: FailureKind) -> None:
    raised = failure(kind, "why")
    assert raised.type == kind.value and raised.message == "why"
    assert raised.non_retryable is kind.permanent


class _Failure(Exception):
    """Shaped like Temporal's failures: a type, and the cause in `cause`."""

    def __init__(self, message: str, cause: BaseException | None = None, type: str = "") -> None:
        super().__init__(message)
        self.cause, self.type = cause, type


def test_the_reason_is_keels_own_words_not_the_library_error_under_them() -> None:
    library = _Failure("Error code: 400 - context too long", type="BadRequestError")
    keel = _Failure("model endpoint refused the request: 400", library, type="ModelRefused")
    assert failure_reason(_Failure("workflow failed", _Failure("activity failed", keel))) == str(keel)


def test_without_a_kind_the_reason_is_the_innermost_message() -> None:
    chain = _Failure("workflow failed", _Failure("activity failed", _Failure("FalkorDB timed out")))
    assert failure_reason(chain) == "FalkorDB timed out"
    assert failure_reason(ValueError("plain")) == "plain"

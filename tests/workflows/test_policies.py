"""Every retry policy refuses to retry exactly the permanent failure kinds."""

from __future__ import annotations

import pytest
from temporalio.common import RetryPolicy

from keel.core.errors import PERMANENT_FAILURES, FailureKind
from workflows import policies

pytestmark = pytest.mark.unit

RETRY_POLICIES = {name: value for name, value in vars(policies).items() if isinstance(value, RetryPolicy)}


def test_there_are_policies_to_check() -> None:
    assert {"FAST_STEP_RETRY", "MODEL_CALL_RETRY", "INDEX_DOCUMENT_RETRY", "SYNC_STEP_RETRY"} <= set(
        RETRY_POLICIES
    )


@pytest.mark.parametrize("name", sorted(RETRY_POLICIES))
def test_a_policy_lists_the_permanent_kinds_and_never_a_retryable_one(name: str) -> None:
    listed = RETRY_POLICIES[name].non_retryable_error_types or []
    assert sorted(listed) == sorted(PERMANENT_FAILURES)
    assert FailureKind.MODEL_UNAVAILABLE.value not in listed

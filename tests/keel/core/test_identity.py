"""Principal names, tenants and roles: what a key may be made for."""

from __future__ import annotations

import pytest

from keel.core.identity import Principal, Role, check_tenant, parse_roles, principal_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "stored"), [("Sam", "sam"), (" rita@example.com ", "rita@example.com"), ("a.b_c-d", "a.b_c-d")]
)
def test_names_are_trimmed_and_lower_case_so_four_eyes_sees_one_person(given: str, stored: str) -> None:
    assert principal_name(given) == stored


@pytest.mark.parametrize("bad", ["", " ", "it's", "a b", "x" * 65, "keel", "KEEL", "\x00", "\ud800", "-lead"])
def test_names_that_cannot_be_a_principal_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        principal_name(bad)


@pytest.mark.parametrize("bad", ["", "a.b", "a:b", "x" * 65, "a/b", "ä"])
def test_tenant_ids_cannot_hold_a_separator(bad: str) -> None:
    with pytest.raises(ValueError):
        check_tenant(bad)


def test_roles_are_named_from_the_five_and_admin_implies_the_rest() -> None:
    assert parse_roles(["reviewer", "auditor"]) == {Role.REVIEWER, Role.AUDITOR}
    with pytest.raises(ValueError, match="no role 'root'"):
        parse_roles(["root"])
    with pytest.raises(ValueError, match="at least one"):
        parse_roles([])
    admin = Principal("acme", "boss", frozenset({Role.ADMIN}), "k")
    assert all(admin.has(role) for role in Role)
    assert not Principal("acme", "sam", frozenset({Role.SUBMITTER}), "k").has(Role.REVIEWER)

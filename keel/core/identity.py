"""Who calls: a principal (a name within one tenant) and the roles their API key grants.

The tenant and the name come from the key, never from a request. Names are lower-case so that
"Sam" and "sam" are one person to four-eyes and to the audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

TENANT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Lower-case letters, digits and . _ @ -: an e-mail address or a login fits; quotes, spaces and
# control characters (which end up in pages and the audit trail) do not.
PRINCIPAL_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
# The actor of what Keel does by itself (a review deadline passing): no key may take the name.
SYSTEM_ACTOR = "keel"


class Role(StrEnum):
    SUBMITTER = "submitter"  # submit, follow and cancel tasks
    REVIEWER = "reviewer"  # the approval queue and its decisions
    INGESTER = "ingester"  # documents and source syncs
    AUDITOR = "auditor"  # the audit trail and usage
    ADMIN = "admin"  # keys, sources and policies; every other role, for its own tenant


@dataclass(frozen=True)
class Principal:
    """The caller behind a verified key."""

    tenant: str
    name: str
    roles: frozenset[Role]
    key_id: str

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


def check_tenant(tenant: str) -> str:
    if not re.match(TENANT_PATTERN, tenant):
        raise ValueError(f"not a tenant id: {tenant!r} (letters, digits, _ and -, at most 64)")
    return tenant


def normal_name(name: str) -> str:
    """How a person's name is compared and stored: trimmed, lower-case."""
    return name.strip().lower()


def principal_name(name: str) -> str:
    """The name as stored (`normal_name`); ValueError when it cannot be one."""
    normal = normal_name(name)
    if not re.match(PRINCIPAL_PATTERN, normal):
        raise ValueError(
            f"not a principal name: {name!r} (letters, digits, '.', '_', '@' and '-', at most 64)"
        )
    if normal == SYSTEM_ACTOR:
        raise ValueError(f"{SYSTEM_ACTOR!r} is the name of Keel's own actions")
    return normal


def parse_roles(names: Sequence[str]) -> frozenset[Role]:
    """The roles named; ValueError naming the first unknown one, or when none is given."""
    if not names:
        raise ValueError("a key needs at least one role")
    known = {role.value for role in Role}
    for name in names:
        if name not in known:
            raise ValueError(f"no role {name!r}: roles are {', '.join(sorted(known))}")
    return frozenset(Role(name) for name in names)

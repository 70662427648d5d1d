"""The access matrix: every route of the OpenAPI schema × every kind of caller, on the real app.

Callers: no key, a bad key, a key of each single role of tenant A, and the admin of tenant B.
A route missing from ROUTES fails the test, so a new route cannot ship without its rule.
Expected: no key or a bad key → 401; a role the route does not allow → 403 naming the role;
an allowed role → neither (nor a 5xx); tenant B's admin on tenant A's resource → 404, and
B's lists never show A's ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_for_status, wait_indexed

pytestmark = pytest.mark.integration

ROLES = ("submitter", "reviewer", "ingester", "auditor", "admin")
TASK_READERS = {"submitter", "reviewer", "auditor"}


@dataclass(frozen=True)
class Rule:
    """Who may call a route, and whether it names one of the tenant's resources."""

    roles: frozenset[str] = frozenset()  # admin is always allowed on top of these
    public: bool = False
    scoped: bool = False  # the path names a resource of tenant A: tenant B's admin gets 404


def rule(*roles: str, scoped: bool = False) -> Rule:
    return Rule(frozenset(roles), scoped=scoped)


ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(public=True),
    ("GET", "/readyz"): Rule(public=True),
    ("GET", "/v1/me"): rule(*ROLES),
    ("POST", "/v1/tasks"): rule("submitter"),
    ("GET", "/v1/tasks"): rule(*TASK_READERS),
    ("GET", "/v1/tasks/{task_id}"): rule(*TASK_READERS, scoped=True),
    ("POST", "/v1/tasks/{task_id}/cancel"): rule("submitter", scoped=True),
    ("GET", "/v1/tasks/{task_id}/trace"): rule(*TASK_READERS, scoped=True),
    ("GET", "/v1/reviews"): rule("reviewer"),
    ("GET", "/v1/reviews/{task_id}"): rule("reviewer", scoped=True),
    ("POST", "/v1/reviews/{task_id}/claim"): rule("reviewer", scoped=True),
    ("POST", "/v1/reviews/{task_id}/release"): rule("reviewer", scoped=True),
    ("POST", "/v1/reviews/{task_id}"): rule("reviewer", scoped=True),
    ("POST", "/v1/documents"): rule("ingester"),
    ("GET", "/v1/documents/{document_id}"): rule("ingester", scoped=True),
    ("DELETE", "/v1/documents/{document_id}"): rule("ingester", scoped=True),
    ("POST", "/v1/sources"): rule(),
    ("GET", "/v1/sources"): rule("ingester"),
    ("GET", "/v1/sources/{source_id}"): rule("ingester", scoped=True),
    ("POST", "/v1/sources/{source_id}/sync"): rule("ingester", scoped=True),
    ("GET", "/v1/audit"): rule("auditor"),
    ("GET", "/v1/usage"): rule("auditor"),
    ("POST", "/v1/keys"): rule(),
    ("GET", "/v1/keys"): rule(),
    ("DELETE", "/v1/keys/{key_id}"): rule(scoped=True),
}


@dataclass
class TenantA:
    """Resources of tenant A that every scoped route names."""

    tenant: str
    task_id: str
    document_id: str
    source_id: str
    key_id: str
    source_root: Path
    ids: list[str] = field(default_factory=list)


def request_for(method: str, path: str, a: TenantA) -> tuple[str, dict | None, dict | None]:
    """The URL, JSON body and query of a request that would succeed for A's own admin."""
    url = path.format(task_id=a.task_id, document_id=a.document_id, source_id=a.source_id, key_id=a.key_id)
    bodies: dict[tuple[str, str], dict] = {
        ("POST", "/v1/tasks"): {"question": "Which team owns Kestrel?", "review": "never"},
        ("POST", "/v1/reviews/{task_id}"): {"decision": "reject", "reason": "matrix"},
        ("POST", "/v1/documents"): {"title": "Matrix", "text": "The matrix relay is blue."},
        ("POST", "/v1/sources"): {"path": str(a.source_root), "id": f"m-{uuid.uuid4().hex[:6]}"},
        ("POST", "/v1/keys"): {"name": f"m-{uuid.uuid4().hex[:6]}", "roles": ["auditor"]},
    }
    query = {"task_id": a.task_id} if path == "/v1/audit" else None
    return url, bodies.get((method, path)), query


def schema_routes(app) -> set[tuple[str, str]]:
    """Every operation of the app's OpenAPI schema, as (METHOD, path)."""
    return {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}


@pytest.fixture(scope="module")
async def tenant_a(callers, tmp_path_factory) -> TenantA:
    tenant = f"a{uuid.uuid4().hex[:8]}"
    admin = callers("owner", tenant=tenant)
    document_id = f"doc-{uuid.uuid4().hex[:8]}"
    upload = await admin.post(
        "/v1/documents", json={"id": document_id, "title": "Vault", "text": "The vault code of A is 7731."}
    )
    assert upload.status_code == 202, upload.text
    await wait_indexed(admin, document_id, upload.json()["ingestion_id"])
    submitted = await admin.post(
        "/v1/tasks", json={"question": "What is the vault code?", "review": "always"}
    )
    task_id = submitted.json()["id"]
    await wait_for_status(admin, task_id, {"awaiting_review"})
    root = tmp_path_factory.mktemp("matrix-source")
    (root / "note.md").write_text("# Note\n\nThe matrix note.")
    source_id = f"src-{uuid.uuid4().hex[:6]}"
    added = await admin.post("/v1/sources", json={"path": str(root), "id": source_id})
    assert added.status_code == 201, added.text
    throwaway = await admin.post("/v1/keys", json={"name": "throwaway", "roles": ["auditor"]})
    key_id = throwaway.json()["id"]
    return TenantA(
        tenant, task_id, document_id, source_id, key_id, root, [task_id, document_id, source_id, key_id]
    )


def callers_in_order(callers, a: TenantA) -> list[tuple[str, Callable[[], httpx.AsyncClient]]]:
    """Refused callers first, then tenant B, then A's allowed roles (whose calls may change A)."""
    return [
        ("no key", lambda: callers.raw({})),
        ("bad key", lambda: callers.raw({"Authorization": "Bearer keel_not-a-key"})),
        ("basic auth", lambda: callers.raw({"Authorization": "Basic YTpi"})),
        ("admin of B", lambda: callers("other-admin", tenant=f"b{a.tenant[1:]}")),
        *[(role, lambda role=role: callers(f"m-{role}", role, tenant=a.tenant)) for role in ROLES],
    ]


async def test_every_route_has_a_rule(platform) -> None:
    from keel.app.api_server import build_api

    app = build_api(platform.settings)
    assert schema_routes(app) == set(ROUTES), "a route without an access rule, or a rule without a route"


async def test_the_access_matrix(callers, tenant_a: TenantA) -> None:
    checked = 0
    for (method, path), access in ROUTES.items():
        url, body, query = request_for(method, path, tenant_a)
        for who, client_of in callers_in_order(callers, tenant_a):
            client = client_of()
            response = await client.request(method, url, json=body, params=query)
            if who in ("no key", "bad key", "basic auth"):
                await client.aclose()
            got, where = (
                response.status_code,
                f"{who}: {method} {url} -> {response.status_code} {response.text[:200]}",
            )
            assert got < 500, where
            if access.public:
                assert got not in (401, 403), where
            elif who in ("no key", "bad key", "basic auth"):
                assert got == 401 and response.headers["www-authenticate"] == "Bearer", where
            elif who == "admin of B":
                if access.scoped:
                    assert got == 404, where
                else:
                    assert got not in (401, 403), where
                    assert not any(i in response.text for i in tenant_a.ids), where
            elif who == "admin" or who in access.roles:
                assert got not in (401, 403), where
            else:
                assert got == 403, where
                named = access.roles or {"admin"}
                assert all(f"'{role}'" in response.json()["detail"] for role in named), where
            checked += 1
    assert checked == len(ROUTES) * 9


async def test_the_docs_and_schema_need_no_key(callers) -> None:
    anonymous = callers.raw({})
    try:
        for path in ("/openapi.json", "/docs", "/healthz"):
            assert (await anonymous.get(path)).status_code == 200, path
        schema = (await anonymous.get("/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    finally:
        await anonymous.aclose()

"""A stateful property test that hunts for leaks between two tenants, on the real servers.

Hypothesis interleaves two tenants' uploads, deletes, tasks, reviews, source syncs and reads
(plus attempts to read the other's ids). Both tenants hold the same kind of fact ("the vault
code is …") with different codes, so a store query missing its tenant filter would surface the
other's code. After every read and at the end of every run: no response of one tenant names the
other tenant (its id is in every task and document id here), nor any of its codes; citations
are of the tenant's own documents; the other tenant's ids answer 404.

The machine's rules are synchronous (Hypothesis runs them in a worker thread); each sends its
requests to the session's event loop, where the app runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

pytestmark = [pytest.mark.integration]

T = TypeVar("T")
SETTLED = {"awaiting_review", "completed", "rejected", "failed", "cancelled"}


class Tenant:
    def __init__(
        self, name: str, admin: httpx.AsyncClient, reviewer: httpx.AsyncClient, folder: Path
    ) -> None:
        self.name, self.admin, self.reviewer, self.folder = name, admin, reviewer, folder
        self.source_id = f"notes-{name}"
        self.codes: set[str] = set()
        self.documents: set[str] = set()
        self.tasks: list[str] = []
        self.files = 0


def make_machine(run: Callable[[Awaitable[Any]], Any], tenants: tuple[Tenant, Tenant]) -> type:
    class TwoTenants(RuleBasedStateMachine):
        steps_run: ClassVar[list[str]] = []  # every checked response, over all examples

        def __init__(self) -> None:
            super().__init__()

        def other(self, tenant: Tenant) -> Tenant:
            return tenants[1] if tenant is tenants[0] else tenants[0]

        def clean(self, tenant: Tenant, response: httpx.Response, what: str) -> dict | list | None:
            """The response, once it is known to show nothing of the other tenant."""
            self.steps_run.append(what)
            assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
            other, text = self.other(tenant), response.text
            assert other.name not in text, f"{what} as {tenant.name} names {other.name}: {text[:300]}"
            leaked = [code for code in other.codes if code in text]
            assert not leaked, f"{what} as {tenant.name} shows {other.name}'s codes {leaked}"
            return response.json() if response.headers.get("content-type") == "application/json" else None

        @initialize()
        def sources(self) -> None:
            for tenant in tenants:
                added = run(
                    tenant.admin.post(
                        "/v1/sources", json={"path": str(tenant.folder), "id": tenant.source_id}
                    )
                )
                assert added.status_code == 201, added.text

        # One rule over every action: Hypothesis's swarm testing would switch whole rules off for
        # an example, and with a few examples some actions would never meet.
        @rule(
            action=st.sampled_from(
                ["upload", "upload", "delete", "ask", "ask", "review", "sync", "lists", "own", "other"]
            ),
            which=st.sampled_from([0, 1]),
            n=st.integers(0, 5),
            flag=st.booleans(),
        )
        def act(self, action: str, which: int, n: int, flag: bool) -> None:
            lists = ["tasks", "reviews", "sources", "keys", "audit"]
            {
                "upload": lambda: self.upload(which, n),
                "delete": lambda: self.delete(which, n),
                "ask": lambda: self.ask(which, "always" if flag else "never"),
                "review": lambda: self.review(which, flag),
                "sync": lambda: self.sync(which),
                "lists": lambda: self.read_lists(which, lists[n % len(lists)]),
                "own": lambda: self.read_own(which),
                "other": lambda: self.reach_for_the_other(which),
            }[action]()

        def upload(self, which: int, n: int) -> None:
            tenant = tenants[which]
            code = f"{uuid.uuid4().hex[:10]}"
            document_id = f"{tenant.name}-vault-{n}"
            text = f"Vault record {n}.\n\nThe vault code is {code}. The vault is in the north wing."
            body = {"id": document_id, "title": f"Vault {n}", "text": text}
            tenant.codes.add(code)
            self.clean(tenant, run(tenant.admin.post("/v1/documents", json=body)), "upload")
            tenant.documents.add(document_id)

        def delete(self, which: int, n: int) -> None:
            tenant = tenants[which]
            response = run(tenant.admin.delete(f"/v1/documents/{tenant.name}-vault-{n}"))
            self.clean(tenant, response, "delete")

        def ask(self, which: int, review: str) -> None:
            tenant = tenants[which]
            body = {"question": "What is the vault code?", "review": review}
            accepted = self.clean(tenant, run(tenant.admin.post("/v1/tasks", json=body)), "submit")
            assert isinstance(accepted, dict)
            tenant.tasks.append(accepted["id"])

        def review(self, which: int, approve: bool) -> None:
            tenant = tenants[which]
            queue = self.clean(tenant, run(tenant.reviewer.get("/v1/reviews")), "queue")
            assert isinstance(queue, dict)
            for item in queue["items"][:1]:
                assert item["task_id"] in tenant.tasks, f"{tenant.name}'s queue holds {item['task_id']}"
                self.clean(tenant, run(tenant.reviewer.get(f"/v1/reviews/{item['task_id']}")), "item")
                body = {"decision": "approve"} if approve else {"decision": "reject", "reason": "no"}
                self.clean(
                    tenant, run(tenant.reviewer.post(f"/v1/reviews/{item['task_id']}", json=body)), "decide"
                )

        def sync(self, which: int) -> None:
            tenant = tenants[which]
            code = f"{uuid.uuid4().hex[:10]}"
            tenant.files += 1
            (tenant.folder / f"{tenant.name}-note-{tenant.files}.md").write_text(
                f"# Note {tenant.files}\n\nThe vault code is {code}, says the note."
            )
            tenant.codes.add(code)
            self.clean(tenant, run(tenant.admin.post(f"/v1/sources/{tenant.source_id}/sync")), "sync")

        def read_lists(self, which: int, path: str) -> None:
            tenant = tenants[which]
            query = {"reviewer": "rev"} if path == "audit" else None
            self.clean(tenant, run(tenant.admin.get(f"/v1/{path}", params=query)), path)

        def read_own(self, which: int) -> None:
            tenant = tenants[which]
            for task_id in tenant.tasks[-3:]:
                self.clean(tenant, run(tenant.admin.get(f"/v1/tasks/{task_id}")), "task")
                self.clean(tenant, run(tenant.admin.get(f"/v1/tasks/{task_id}/trace")), "trace")
                self.clean(tenant, run(tenant.admin.get("/v1/audit", params={"task_id": task_id})), "audit")
            for document_id in sorted(tenant.documents)[:3]:
                self.clean(tenant, run(tenant.admin.get(f"/v1/documents/{document_id}")), "document")
            self.clean(tenant, run(tenant.admin.get(f"/v1/sources/{tenant.source_id}")), "source")

        def reach_for_the_other(self, which: int) -> None:
            tenant, other = tenants[which], self.other(tenants[which])
            urls = [f"/v1/sources/{other.source_id}"]
            urls += [f"/v1/tasks/{t}" for t in other.tasks[-2:]] + [
                f"/v1/reviews/{t}" for t in other.tasks[-2:]
            ]
            urls += [f"/v1/documents/{d}" for d in sorted(other.documents)[:2]]
            for url in urls:
                response = run(tenant.admin.get(url))
                assert response.status_code == 404, f"{tenant.name} reached {url}: {response.status_code}"

        @invariant()
        def keys_stay_home(self) -> None:
            for tenant in tenants:
                keys = self.clean(tenant, run(tenant.admin.get("/v1/keys")), "keys")
                assert isinstance(keys, dict) and {k["tenant"] for k in keys["keys"]} == {tenant.name}

        def teardown(self) -> None:
            # Every task settled, then read in full: answers and citations are the tenant's own.
            for tenant in tenants:
                for task_id in tenant.tasks:
                    view = run(_settled(tenant.admin, task_id))
                    self.clean(tenant, run(tenant.admin.get(f"/v1/tasks/{task_id}")), "final read")
                    for citation in (view.get("result") or {}).get("citations", []):
                        assert citation["document_id"] not in self.other(tenant).documents

    return TwoTenants


async def _settled(client: httpx.AsyncClient, task_id: str) -> dict:
    for _ in range(600):
        view = (await client.get(f"/v1/tasks/{task_id}")).json()
        if view["status"] in SETTLED:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not settle in 60 s")


async def test_no_read_ever_crosses_tenants(callers, demo_corpus, tmp_path_factory) -> None:
    loop = asyncio.get_running_loop()

    def run(coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=180)  # type: ignore[arg-type]

    tag = uuid.uuid4().hex[:6]
    tenants = tuple(
        Tenant(
            name,
            callers("admin", tenant=name),
            callers("rev", "reviewer", tenant=name),
            tmp_path_factory.mktemp(name),
        )
        for name in (f"iso-a{tag}", f"iso-b{tag}")
    )
    machine = make_machine(run, tenants)  # type: ignore[arg-type]
    budget = settings(
        max_examples=5,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        # A fresh hunt each run (a failure prints the steps to replay); no example database.
        database=None,
    )
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=budget)
    print(f"tenant isolation: {len(machine.steps_run)} checked responses: {dict(Counter(machine.steps_run))}")
    # Enough happened for the property to mean something.
    assert sum(len(t.tasks) for t in tenants) >= 2 and sum(len(t.codes) for t in tenants) >= 2

"""Source syncs on the real worker, Temporal dev server, Qdrant Edge and FalkorDB."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ingestion.sources import DEFAULT_INCLUDE
from keel.core.domain import SyncRecord, SyncRequest
from keel.stores.redis import make_redis
from keel.stores.sources import SourceRegistry, SourceSpec
from workflows.sources import SourceSyncWorkflow, sync_workflow_id

pytestmark = pytest.mark.integration

RUNBOOK = "\n\n".join(
    f"# Runbook\n\nStep {n}: the {topic} service is restarted by the on-call engineer, who then checks "
    f"the {topic} dashboard and writes what was seen into the incident log before closing the page."
    for n, topic in enumerate(["billing", "search", "ledger", "gateway", "archive", "mailer"], start=1)
)


def write_source(root: Path) -> None:
    (root / "guides").mkdir(parents=True)
    (root / "drafts").mkdir()
    (root / "runbook.md").write_text(RUNBOOK)
    (root / "guides" / "onboarding.txt").write_text(
        "Onboarding\n\nNew engineers pair with a buddy for two weeks."
    )
    (root / "guides" / "faq.html").write_text(
        "<html><head><title>FAQ</title><script>var x = 1;</script></head>"
        "<body><p>Payroll runs on the 25th of each month.</p></body></html>"
    )
    records = [
        {"id": "r1", "title": "Policy one", "text": "Laptops are encrypted at rest."},
        {"id": "r2", "title": "Policy two", "text": "Badges are returned on the last day."},
    ]
    (root / "policies.json").write_text(json.dumps(records))
    (root / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    (root / "drafts" / "unfinished.md").write_text("# Draft\n\nNot ready.")
    (root / "sheet.xlsx").write_bytes(b"not a supported type, not included")


async def sync(env: WorkflowEnvironment, platform, tenant: str, source_id: str) -> SyncRecord:
    return await env.client.execute_workflow(
        SourceSyncWorkflow.run,
        SyncRequest(tenant, source_id),
        id=f"{sync_workflow_id(tenant, source_id)}-{uuid.uuid4().hex[:6]}",
        task_queue=platform.settings.temporal.ingest_queue,
        result_type=SyncRecord,
    )


@pytest.fixture
def registry(platform) -> Iterator[SourceRegistry]:
    client = make_redis(platform.settings.falkordb_url)
    try:
        yield SourceRegistry(client)
    finally:
        client.close()


async def test_sync_indexes_edits_deletes_and_reports_failures(
    platform, temporal_env, registry: SourceRegistry, tmp_path: Path
) -> None:
    tenant, source_id = f"sync{uuid.uuid4().hex[:8]}", "handbook"
    root = tmp_path / "handbook"
    write_source(root)
    registry.add(SourceSpec(source_id, tenant, str(root), list(DEFAULT_INCLUDE), exclude=["drafts/**"]))
    vectors, graph = platform.components.ingestion._vectors, platform.components.ingestion._graph
    dense = platform.components.ingestion._dense

    first = await sync(temporal_env, platform, tenant, source_id)
    assert first.status == "completed"
    assert (first.scanned, first.indexed, first.unchanged, first.deleted, first.failed) == (5, 5, 0, 0, 1)
    assert "not a valid PDF" in first.failures["broken.pdf"]
    documents = ["guides--faq", "guides--onboarding", "policies--r1", "policies--r2", "runbook"]
    assert [d for d, _, _ in graph.source_documents(tenant, source_id)] == documents
    assert all(vectors.count(tenant, d) >= 1 for d in documents)
    assert registry.last_sync(tenant, source_id) == first

    # Edit one step of the runbook, delete the onboarding guide, drop a record from the JSON.
    (root / "runbook.md").write_text(RUNBOOK.replace("archive", "cold-storage"))
    (root / "guides" / "onboarding.txt").unlink()
    (root / "policies.json").write_text(
        json.dumps([{"id": "r1", "title": "Policy one", "text": "Laptops are encrypted at rest."}])
    )
    calls = dense.encode_calls
    second = await sync(temporal_env, platform, tenant, source_id)
    runbook_chunks = vectors.count(tenant, "runbook")
    assert second.status == "completed"
    # runbook re-indexed; policies.json re-read: r1 unchanged, r2 removed; onboarding deleted.
    assert (second.indexed, second.deleted, second.failed) == (1, 2, 1)
    assert second.unchanged == 2  # faq (same file hash) and r1 (its file changed, its text did not)
    assert 1 <= second.embedded_chunks == dense.encode_calls - calls < runbook_chunks
    assert [d for d, _, _ in graph.source_documents(tenant, source_id)] == [
        "guides--faq",
        "policies--r1",
        "runbook",
    ]
    assert vectors.count(tenant, "guides--onboarding") == 0 and vectors.count(tenant, "policies--r2") == 0
    assert graph.document(tenant, "guides--onboarding") is None

    calls = dense.encode_calls
    third = await sync(temporal_env, platform, tenant, source_id)
    assert (third.indexed, third.deleted, third.embedded_chunks, dense.encode_calls - calls) == (0, 0, 0, 0)
    assert third.unchanged == 3 and third.failed == 1  # the broken file is tried, and reported, again


async def test_cli_adds_schedules_syncs_and_lists_a_source(
    platform, temporal_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import keel.app.sources_cli as cli
    from keel.control.sources import schedule_id

    # A tenant of its own: the session's default tenant holds the demo corpus other tests ask about.
    settings = platform.settings.model_copy(update={"tenant": f"cli{uuid.uuid4().hex[:8]}"})
    monkeypatch.setattr(cli, "load_settings", lambda: settings)
    root = tmp_path / "wiki"
    write_source(root)
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli.app, list(args))

    bad = await asyncio.to_thread(run, "add", str(root), "--every", "5s")
    assert bad.exit_code == 2 and "shorter than the minimum" in bad.output
    added = await asyncio.to_thread(run, "add", str(root), "--every", "10m", "--exclude", "drafts/**")
    assert added.exit_code == 0, added.output
    tenant = settings.tenant
    schedule = await temporal_env.client.get_schedule_handle(schedule_id(tenant, "wiki")).describe()
    assert schedule.schedule.spec.intervals[0].every.total_seconds() == 600

    synced = await asyncio.to_thread(run, "sync", "wiki")
    assert synced.exit_code == 1  # broken.pdf failed, and says so
    assert "documents indexed 5" in synced.output and "broken.pdf" in synced.output
    # The progress bar's last state: every changed file done, with the pace and the time taken.
    assert "[########################] 5/5 files · 5 docs ·" in synced.output
    assert "chunks/s ·" in synced.output and "took 0:" in synced.output
    listed = await asyncio.to_thread(run, "list")
    assert "wiki" in listed.output and "last sync completed" in listed.output
    missing = await asyncio.to_thread(run, "sync", "nope")
    assert missing.exit_code == 2 and "no source 'nope'" in missing.output
    await temporal_env.client.get_schedule_handle(schedule_id(tenant, "wiki")).delete()

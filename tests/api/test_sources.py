"""Sources and document deletion over REST, on the real worker, Temporal, Qdrant Edge and FalkorDB."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from keel.core.domain import BatchProgress, SyncRecord
from keel.stores.redis import make_redis
from keel.stores.sources import SourceRegistry
from retrieval.entity_names import entity_key
from tests.support.polling import eventually, wait_for_status, wait_indexed

pytestmark = pytest.mark.integration


def _check(response: httpx.Response, code: int) -> dict:
    assert response.status_code == code, response.text
    return response.json()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"path": "ROOT/missing"}, "is not a folder"),
        ({"path": "/nowhere/at/all"}, "outside the source roots"),
        ({"path": "ROOT/../../.."}, "outside the source roots"),
        ({"path": "relative/folder"}, "not an absolute path"),
        ({"path": "ROOT/\x00x"}, "NUL character"),  # refused at the edge (api/validation.py)
        ({"path": "ROOT", "every": "5s"}, "shorter than the minimum"),
        ({"path": "ROOT", "every": "often"}, "is not an interval"),
        ({"path": "ROOT", "id": "Bad Id!"}, "invalid id"),
        ({"path": "ROOT", "include": [" "]}, "glob is empty"),
        ({"every": "10m"}, "path"),
    ],
)
async def test_add_source_rejects_bad_input_with_a_reason(
    api: httpx.AsyncClient, payload: dict, reason: str, tmp_path: Path
) -> None:
    # ROOT: a folder under the session's source roots (tests/conftest.py).
    if "path" in payload:
        payload = {**payload, "path": payload["path"].replace("ROOT", str(tmp_path))}
    body = _check(await api.post("/v1/sources", json=payload), 422)
    assert reason in str(body["detail"])


async def test_a_symlink_out_of_the_roots_is_refused_naming_the_root(
    api: httpx.AsyncClient, tmp_path: Path, platform
) -> None:
    (tmp_path / "escape").symlink_to("/etc")
    body = _check(await api.post("/v1/sources", json={"path": str(tmp_path / "escape")}), 422)
    [root] = platform.settings.sources.roots
    assert "outside the source roots" in body["detail"] and str(Path(root).resolve()) in body["detail"]


async def test_only_admins_register_folders(callers, tmp_path: Path) -> None:
    ingester = callers("ingrid", "ingester")
    body = _check(await ingester.post("/v1/sources", json={"path": str(tmp_path)}), 403)
    assert "admin" in body["detail"]


async def test_unknown_source_is_404(api: httpx.AsyncClient) -> None:
    assert "no source" in _check(await api.get("/v1/sources/nope-nope"), 404)["detail"]
    assert "no source" in _check(await api.post("/v1/sources/nope-nope/sync"), 404)["detail"]


async def test_source_added_synced_and_read_over_rest(
    api: httpx.AsyncClient, platform, temporal_env, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    root = tmp_path / f"notes-{tag}"
    root.mkdir()
    (root / f"{tag}-alpha.md").write_text("# Alpha\n\nThe alpha relay is serviced every Tuesday.")
    (root / f"{tag}-beta.txt").write_text("Beta\n\nThe beta relay is serviced every Friday.")
    (root / f"{tag}-broken.docx").write_bytes(b"not a zip file")
    source_id = f"notes-{tag}"

    added = _check(await api.post("/v1/sources", json={"path": str(root), "every": "1h"}), 201)
    assert (added["id"], added["every_s"], added["last_sync"]["status"]) == (source_id, 3600, "never")
    listed = _check(await api.get("/v1/sources"), 200)
    assert source_id in [s["id"] for s in listed]

    started = _check(await api.post(f"/v1/sources/{source_id}/sync"), 202)
    assert started["workflow_id"] and started["run_id"]

    async def finished(started: dict) -> dict:
        async def probe() -> dict | None:
            view = _check(await api.get(f"/v1/sources/{source_id}"), 200)
            sync = view["last_sync"]
            done = sync["run_id"] == started["run_id"] and sync["status"] in ("completed", "failed")
            return view if done else None

        view = await eventually(probe, 120, f"source {source_id} to sync")
        # The record is the sync's last step, not its end: a "sync now" before the workflow has
        # closed joins the closing run (POST .../sync joins a running sync) instead of starting one.
        handle = temporal_env.client.get_workflow_handle(started["workflow_id"], run_id=started["run_id"])
        await handle.result()
        return view

    view = await finished(started)
    sync = view["last_sync"]
    assert sync["status"] == "completed" and sync["run_id"] == started["run_id"]
    assert (sync["scanned"], sync["changed_files"], sync["files_done"]) == (3, 3, 3)
    assert (sync["indexed"], sync["unchanged"], sync["deleted"], sync["failed"]) == (2, 0, 0, 1)
    assert "not a valid" in sync["failures"][f"{tag}-broken.docx"]
    assert sync["embedded_chunks"] == 2 and sync["eta_s"] == 0 and sync["elapsed_s"] > 0
    assert sync["index_lag_s"] is not None and sync["index_lag_s"] >= 0

    # The file is gone: the next sync removes its document from both stores.
    (root / f"{tag}-beta.txt").unlink()
    again = _check(await api.post(f"/v1/sources/{source_id}/sync"), 202)
    assert again["run_id"] != started["run_id"]
    view = await finished(again)
    assert (view["last_sync"]["deleted"], view["last_sync"]["embedded_chunks"]) == (1, 0)
    tenant = platform.settings.tenant
    assert platform.components.ingestion._graph.document(tenant, f"{tag}-beta") is None
    assert platform.components.ingestion._vectors.count(tenant, f"{tag}-beta") == 0


async def test_live_progress_adds_running_batches_to_the_saved_record(platform) -> None:
    """The counts a running sync shows: the record saved after its plan, plus each batch's own."""
    client = make_redis(platform.settings.falkordb_url)
    try:
        registry = SourceRegistry(client)
        tenant, source_id = f"live{uuid.uuid4().hex[:8]}", "src"
        started = time.time() - 10
        record = SyncRecord(
            run_id="run-1",
            status="running",
            started_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started)),
            scanned=300,
            unchanged=100,
            changed_files=200,
            failed=1,
        )
        registry.record(tenant, source_id, record)
        first = BatchProgress("run-1", files=40, indexed=38, failed=2, embedded_chunks=90)
        second = BatchProgress("run-1", files=10, indexed=10, reused_chunks=10)
        registry.record_batch(tenant, source_id, 0, first)
        registry.record_batch(tenant, source_id, 100, second)
        registry.record_batch(tenant, source_id, 100, second)  # a retried batch rewrites, never adds
        registry.record_batch(tenant, source_id, 0, BatchProgress("another-run", files=99))

        live = registry.live(tenant, source_id, started + 10)
        assert (live.record.files_done, live.record.indexed, live.record.unchanged) == (50, 48, 100)
        assert (live.record.failed, live.record.embedded_chunks + live.record.reused_chunks) == (3, 100)
        assert live.elapsed_s == pytest.approx(10, abs=1)
        assert live.chunks_per_s == pytest.approx(10, rel=0.1)
        assert live.eta_s == pytest.approx(30, rel=0.1)  # 50 of 200 files in 10 s: 150 more take 30 s

        registry.clear_progress(tenant, source_id, "run-1")
        assert registry.live(tenant, source_id, started + 10).record.files_done == 0
    finally:
        client.close()


async def test_deleted_document_leaves_both_stores_and_answers(api: httpx.AsyncClient, platform) -> None:
    document_id = f"delete-test-{uuid.uuid4().hex[:8]}"
    document = {
        "id": document_id,
        "title": "Quorvex relay",
        "text": "The Quorvex relay is maintained by Zelda Farnsworth of the Ironbark crew.",
    }
    accepted = _check(await api.post("/v1/documents", json=document), 202)
    await wait_indexed(api, document_id, accepted["ingestion_id"])
    question = {"question": "Who maintains the Quorvex relay?", "review": "never"}

    async def ask() -> dict:
        task_id = _check(await api.post("/v1/tasks", json=question), 202)["id"]
        return (await wait_for_status(api, task_id, {"completed"}))["result"]

    before = await ask()
    assert document_id in {c["document_id"] for c in before["citations"]}, before
    assert "Farnsworth" in before["answer"]

    deleted = _check(await api.delete(f"/v1/documents/{document_id}"), 200)
    assert deleted == {"id": document_id, "deleted": True}
    tenant = platform.settings.tenant
    graph, vectors = platform.components.ingestion._graph, platform.components.ingestion._vectors
    assert graph.document(tenant, document_id) is None and vectors.count(tenant, document_id) == 0
    assert graph.entity(tenant, entity_key("Zelda Farnsworth")) is None  # no one else mentions her
    _check(await api.get(f"/v1/documents/{document_id}"), 404)
    _check(await api.delete(f"/v1/documents/{document_id}"), 404)

    after = await ask()
    assert document_id not in {c["document_id"] for c in after["citations"]}, after
    assert "Farnsworth" not in (after["answer"] or "")

"""A document's new version is all or nothing, even when the worker is SIGKILLed mid-write.

The writer runs in a child process on the real stores (FalkorDB from the session, a Qdrant Edge
shard on disk) and is killed with SIGKILL at two places: between the two stores' writes (held
there by the production fault point `index_commit`, keel/core/faults.py, then killed by this
test), and just after the graph's commit (a GraphStore subclass that kills its own process once
the real write returns: the only injected part). The test then reopens the shard as a restarted
worker would and checks what search can read, then retries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.ingestion import COMMIT_FAULT_STEP, IngestionActivities
from keel.control import documents, tasks
from keel.control.documents import document_workflow_id
from keel.core.domain import IndexedDocument, TaskRequest
from keel.core.errors import FailureKind
from keel.core.settings import Settings
from keel.stores.blobs import BlobStore
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.graph_store import GraphDocument, GraphStore, Provenance
from retrieval.qdrant_edge_store import QdrantEdgeStore
from tests.support.polling import eventually, wait_for_status
from tests.support.servers import stop_process

pytestmark = [pytest.mark.integration]

TENANT = "acme"
DOC = "runbook"
OLD = "\n\n".join(
    f"Step {n}: the {topic} service is restarted by the on-call engineer, who then checks the "
    f"{topic} dashboards and writes the incident log before closing the page." * 2
    for n, topic in enumerate(["billing", "search", "ledger"], start=1)
)
NEW = OLD.replace("restarted", "drained") + "\x00 An appendix on drained services.\ud800"
WORKER_START_S = 120.0  # the child loads the encoder before it writes


@dataclass(frozen=True)
class Place:
    tmp: Path
    falkordb_url: str
    prefix: str

    def settings(self, **faults: str) -> Settings:
        return Settings(data_dir=self.tmp, falkordb={"url": self.falkordb_url}, faults=faults)

    def activities(self, graph: GraphStore | None = None, **faults: str) -> IngestionActivities:
        settings = self.settings(**faults)
        return IngestionActivities(
            settings,
            QdrantEdgeStore(self.tmp / "qdrant"),
            graph or GraphStore(self.falkordb_url, prefix=self.prefix),
            DenseEncoder(settings.embedding_model_path()),
            SparseEncoder(),
            BlobStore(self.tmp / "blobs"),
        )


def index(activities: IngestionActivities, text: str) -> IndexedDocument:
    origin = Provenance("folder", f"{DOC}.md", text[:8], 1)
    result: IndexedDocument = ActivityEnvironment().run(
        activities.index_text, TENANT, DOC, "Runbook", text, origin
    )
    return result


class KilledAfterCommit(GraphStore):
    """The real store; its process is SIGKILLed the moment a write has committed."""

    def upsert_documents(self, tenant: str, documents: Sequence[GraphDocument]) -> None:
        super().upsert_documents(tenant, documents)
        os.kill(os.getpid(), signal.SIGKILL)


def child(tmp: str, falkordb_url: str, prefix: str, where: str) -> None:
    """The writer of the new version, run in its own process (`python -c`): dies mid-write."""
    place = Place(Path(tmp), falkordb_url, prefix)
    if where == "after_commit":
        activities = place.activities(graph=KilledAfterCommit(falkordb_url, prefix=prefix))
    else:
        activities = place.activities(pause_at=COMMIT_FAULT_STEP, pause_dir=tmp)
    index(activities, NEW)
    raise SystemExit("the write was meant to be killed")


@pytest.fixture
def place(tmp_path: Path, falkordb_url: str) -> Iterator[Place]:
    spot = Place(tmp_path, falkordb_url, f"t{uuid.uuid4().hex[:8]}")
    yield spot
    graph = GraphStore(falkordb_url, prefix=spot.prefix)
    graph.drop(TENANT)
    graph.close()


def start_child(place: Place, where: str) -> subprocess.Popen[bytes]:
    code = "import sys; from tests.e2e.test_document_atomicity import child; child(*sys.argv[1:])"
    args = [str(place.tmp), place.falkordb_url, place.prefix, where]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=root, env=env)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll until `condition()` holds or the process ends; no fixed sleep."""
    deadline = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            return
        time.sleep(0.05)
    stop_process(process)
    raise AssertionError(f"timed out waiting for {what}")


def readable(activities: IngestionActivities) -> set[str]:
    """The versions that a search or a lookup by id can return for the document."""
    vectors, query = activities._vectors, "drained appendix restarted"
    hits = vectors.search_hybrid(
        TENANT, activities._dense.encode_query(query), SparseEncoder().encode_query(query), 50, 100
    )
    by_id = vectors.get_chunks(TENANT, [f"{DOC}#{i:04d}" for i in range(20)])
    return {c.version for c in [*hits, *by_id]}


def first_version(place: Place) -> IndexedDocument:
    activities = place.activities()
    try:
        return index(activities, OLD)
    finally:
        close(activities)


def close(activities: IngestionActivities) -> None:
    activities._vectors.close()
    activities._graph.close()


def check_retry_converges(activities: IngestionActivities) -> None:
    new = index(activities, NEW)
    assert readable(activities) == {new.version}
    assert activities._vectors.count(TENANT, DOC) == new.chunks
    assert activities._vectors.count(TENANT, DOC, staged=True) == 0
    assert (activities._graph.document(TENANT, DOC) or {})["version"] == new.version
    texts = [c.text for c in activities._vectors.get_chunks(TENANT, [f"{DOC}#{i:04d}" for i in range(20)])]
    assert all("\x00" not in t and "\ud800" not in t for t in texts)


def test_a_worker_killed_between_the_two_writes_leaves_the_old_version_answering(place: Place) -> None:
    old = first_version(place)
    hold = place.tmp / f"{COMMIT_FAULT_STEP}.hold"
    hold.touch()
    process = start_child(place, "before_commit")
    reached = place.tmp / f"{COMMIT_FAULT_STEP}.reached"
    wait_for(reached.exists, process, "the write to reach the commit")
    assert process.poll() is None, "the writer ended before reaching the commit"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    hold.unlink()

    activities = place.activities()  # a restarted worker: the shard reopened from disk
    try:
        assert activities._vectors.count(TENANT, DOC, staged=True) > 0  # written, never readable
        assert readable(activities) == {old.version}
        assert (activities._graph.document(TENANT, DOC) or {})["version"] == old.version
        check_retry_converges(activities)
    finally:
        close(activities)


def test_a_worker_killed_after_the_commit_is_completed_by_the_retry(place: Place) -> None:
    old = first_version(place)
    process = start_child(place, "after_commit")
    process.wait(timeout=WORKER_START_S)
    assert process.returncode == -signal.SIGKILL

    activities = place.activities()
    try:
        committed = (activities._graph.document(TENANT, DOC) or {})["version"]
        assert committed != old.version
        # Search still reads the previous version, whole: never a mix, never the unpublished one.
        assert readable(activities) == {old.version}
        assert activities._vectors.count(TENANT, DOC) == old.chunks
        check_retry_converges(activities)
    finally:
        close(activities)


# --- through the platform: a permanent failure is one attempt, with a reason -----------------


async def test_a_document_of_nothing_but_control_characters_fails_once_with_a_reason(
    api: httpx.AsyncClient, platform: Any, temporal_env: WorkflowEnvironment
) -> None:
    """Uploaded past the API's edge checks (which refuse such text with a 422 of their own): the
    worker must still fail it at once, as unsupported, with Keel's reason and not a store's."""
    settings = platform.settings
    document_id = f"ctl-{uuid.uuid4().hex[:8]}"
    await documents.upload(
        temporal_env.client,
        BlobStore(settings.blob_dir),
        "default",
        settings.temporal.ingest_queue,
        document_id,
        "Control",
        "\x00\x01\x02\x1b\x7f",
        {},
    )

    async def settled() -> dict | None:
        view = (await api.get(f"/v1/documents/{document_id}")).json()
        return view if view["status"] != "pending" else None

    view = await eventually(settled, 120, f"document {document_id} to settle")
    reason = f"{FailureKind.UNSUPPORTED_DOCUMENT.value}: document {document_id} has no text to index"
    assert (view["status"], view["reason"]) == ("failed", reason)
    handle = temporal_env.client.get_workflow_handle(document_workflow_id("default", document_id))
    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [1]


@pytest.mark.parametrize("dirt", ["\x00", "\x1b[31m", "\x07\x7f"])
async def test_a_question_with_control_characters_is_answered(
    api: httpx.AsyncClient, platform: Any, temporal_env: WorkflowEnvironment, demo_corpus: dict, dirt: str
) -> None:
    """Started past the API's edge checks (which refuse such questions with a 422): the agent's
    steps must clean the question, not hand it to FalkorDB (the task used to fail after five
    retries of retrieve, with FalkorDB's error as its reason)."""
    question = f"Who leads the team{dirt} that owns Kestrel?"
    request = TaskRequest(question=question, review="never", tenant="default")
    task_id = await tasks.start_task(temporal_env.client, request, platform.settings.temporal.task_queue)
    view = await wait_for_status(api, task_id, {"completed", "failed", "rejected"})
    assert view["status"] == "completed", view

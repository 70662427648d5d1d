"""A worker SIGKILLed exactly at each agent step, then restarted: the task completes once.

The worker is a process of its own, with the test-only fault settings (keel/core/faults.py):
a step whose `<step>.hold` file exists writes `<step>.reached` and waits, so the kill lands
inside that step, never a little before or after. After the restart the task must finish
exactly once, with one audit entry for its one decision and one local trace record per step run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from ingestion.files import load_documents
from keel.app.demo import CORPUS_DIR
from keel.control.documents import start_batch
from keel.control.reviews import decide
from keel.control.tasks import start_task
from keel.core.domain import ReviewDecision, TaskRequest, TaskResult
from keel.core.search_attributes import KEEL_STATUS
from keel.core.settings import Settings
from keel.stores.audit import AuditLog
from keel.stores.redis import make_redis
from keel.stores.traces import LocalTraceStore
from tests.support.polling import eventually
from tests.support.servers import stop_process
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration]

CHAIN = {"project-halcyon", "system-kestrel", "team-aurora", "person-maya-okafor"}
QUESTION = "Who leads the team that owns the system Project Halcyon depends on?"
ACTIVITY_STEPS = ["plan", "retrieve", "rerank", "generate", "grade", "finalize"]
# A step run once per retrieval round; the others once per task.
PER_ROUND = {"retrieve", "rerank", "generate", "grade"}
REVIEWER, REQUESTER = "ops", "asker"
# After a restart: a killed regular activity (generate) is retried when its 3-minute
# start-to-close timeout ends.
RECOVERY_S = 240


@dataclass
class HeldWorker:
    """One worker process for the module, restarted after each kill (a start costs seconds)."""

    process: WorkerProcess
    holds: Path
    logs: Path
    popen: subprocess.Popen[bytes]
    starts: int = 1

    @property
    def settings(self) -> Settings:
        return self.process.settings

    def kill_and_restart(self, step: str) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        assert self.popen.wait(timeout=10) == -signal.SIGKILL
        (self.holds / f"{step}.hold").unlink(missing_ok=True)  # the new worker runs the step through
        self.starts += 1
        self.popen = self.process.start(self.logs / f"worker-{self.starts}.log")


@pytest_asyncio.fixture(scope="module")
async def held(
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
    falkordb_url: str,
    settings: Settings,
) -> AsyncIterator[HeldWorker]:
    base = tmp_path_factory.mktemp("faults")
    holds = base / "holds"
    holds.mkdir()
    process = WorkerProcess.isolated(base, settings.temporal_address, falkordb_url, "faults").with_env(
        KEEL_FAULTS__PAUSE_AT=",".join(ACTIVITY_STEPS), KEEL_FAULTS__PAUSE_DIR=str(holds)
    )
    worker = HeldWorker(process, holds, base, process.start(base / "worker-1.log"))
    try:
        documents = [d for d in load_documents(CORPUS_DIR, {".md"}) if d[0] in CHAIN]
        batch = await start_batch(
            temporal_env.client, process.settings, documents, batch_id=f"ingest-faults-{uuid.uuid4().hex[:8]}"
        )
        assert len((await batch.result()).indexed) == len(CHAIN)
        yield worker
    finally:
        stop_process(worker.popen)


async def awaiting_review(handle: WorkflowHandle, timeout_s: float = 120) -> None:
    async def probe() -> bool:
        described = await handle.describe()
        return described.typed_search_attributes.get(KEEL_STATUS) == "awaiting_review"

    await eventually(probe, timeout_s, f"{handle.id} to wait for review")


async def step_reached(marker: Path, task_id: str) -> None:
    async def probe() -> bool:
        return marker.exists() and task_id in marker.read_text().split()

    await eventually(probe, 120, f"{task_id} to reach {marker.stem}")


async def approve(client: Client, tenant: str, task_id: str) -> None:
    await decide(client, tenant, task_id, ReviewDecision(decision="approve", reviewer=REVIEWER))


async def completions(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED for e in history.events)


@pytest.mark.parametrize(
    "step",
    [
        "plan",
        "retrieve",
        "rerank",
        # A regular activity without a heartbeat timeout: the dead worker's attempt is retried only
        # when its start-to-close timeout (policies.MODEL_CALL_TIMEOUT, 3 min) runs out.
        pytest.param("generate", marks=pytest.mark.slow),
        "grade",
        "review",
        "finalize",
    ],
)
async def test_worker_killed_at_step_finishes_the_task_once(
    step: str, held: HeldWorker, temporal_env: WorkflowEnvironment, falkordb_url: str
) -> None:
    client, own = temporal_env.client, held.settings
    marker = held.holds / f"{step}.reached"
    marker.unlink(missing_ok=True)
    if step != "review":  # the review wait is durable: no hook, the task just waits there
        (held.holds / f"{step}.hold").touch()
    request = TaskRequest(QUESTION, review="always", tenant=own.tenant, requester=REQUESTER)
    task_id = await start_task(client, request, own.temporal.task_queue)
    handle = client.get_workflow_handle(task_id, result_type=TaskResult)

    if step == "finalize":  # after the decision
        await awaiting_review(handle)
        await approve(client, own.tenant, task_id)
    if step == "review":
        await awaiting_review(handle)
    else:
        await step_reached(marker, task_id)
    held.kill_and_restart(step)
    if step != "finalize":
        await awaiting_review(handle, RECOVERY_S)
        await approve(client, own.tenant, task_id)
    result = await asyncio.wait_for(handle.result(), RECOVERY_S)

    assert result.status == "completed" and result.review and result.review.reviewer == REVIEWER
    assert "Maya Okafor" in (result.answer or "")
    assert await completions(handle) == 1
    redis_client = make_redis(falkordb_url)
    try:
        audit = AuditLog(redis_client).for_task(own.tenant, task_id)
        observations = LocalTraceStore(redis_client).load(task_id)
    finally:
        redis_client.close()
    assert [(e.action, e.actor) for e in audit] == [("approve", REVIEWER)]
    steps = Counter(o.name for o in observations if o.parent_id is None)
    wanted = {s: result.rounds if s in PER_ROUND else 1 for s in [*ACTIVITY_STEPS, "review"]}
    assert steps == wanted

"""Source syncs: one workflow per run; changed files fan out to child workflows in batches."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.sources import SourceActivities
    from keel.core.domain import (
        BatchProgress,
        BatchResult,
        FileBatch,
        RecordSync,
        RemoveDocuments,
        SyncPlan,
        SyncRecord,
        SyncRequest,
    )


def sync_workflow_id(tenant: str, source_id: str) -> str:
    """One running sync per source: a second request while one runs joins it."""
    # "." cannot occur in a tenant id, so two tenants' ids never meet.
    return f"source-sync-{tenant}.{source_id}"


@workflow.defn
class SourceBatchWorkflow:
    """Indexes one batch of a sync's changed files; its own small history."""

    @workflow.run
    async def run(self, batch: FileBatch) -> BatchResult:
        return await workflow.execute_activity_method(
            SourceActivities.index_files,
            batch,
            start_to_close_timeout=policies.INDEX_FILES_TIMEOUT,
            heartbeat_timeout=policies.INDEX_FILES_HEARTBEAT,
            retry_policy=policies.SYNC_STEP_RETRY,
        )


@workflow.defn
class SourceSyncWorkflow:
    """Scan, index what changed, remove what is gone, record the outcome. Resumable anywhere:
    every step is an idempotent activity, and the plan is fixed once scanned."""

    @workflow.run
    async def run(self, request: SyncRequest) -> SyncRecord:
        info = workflow.info()
        self._record = SyncRecord(run_id=info.run_id, status="running", started_at=workflow.now().isoformat())
        await self._save(request)
        try:
            plan = await workflow.execute_activity_method(
                SourceActivities.plan_sync,
                request,
                start_to_close_timeout=policies.SCAN_TIMEOUT,
                retry_policy=policies.SYNC_STEP_RETRY,
            )
            self._planned(plan)
            await self._save(request)
            await self._index(request, plan)
            self._record.deleted += await workflow.execute_activity_method(
                SourceActivities.remove_documents,
                RemoveDocuments(request.tenant, plan.deleted_key),
                start_to_close_timeout=policies.REMOVE_DOCUMENTS_TIMEOUT,
                heartbeat_timeout=policies.INDEX_FILES_HEARTBEAT,
                retry_policy=policies.SYNC_STEP_RETRY,
            )
        except Exception:
            await self._finish(request, "failed")
            raise
        await self._finish(request, "completed")
        return self._record

    async def _finish(self, request: SyncRequest, status: str) -> None:
        self._record.status = status
        self._record.finished_at = workflow.now().isoformat()
        await self._save(request)

    def _planned(self, plan: SyncPlan) -> None:
        self._record.scanned = plan.scanned
        self._record.unchanged = plan.unchanged
        self._record.changed_files = plan.changed
        self._record.failed += plan.unreadable_count  # the plan lists only the first ones
        self._record.keep_failures(plan.unreadable)
        self._record.oldest_unsynced_ns = plan.oldest_unsynced_ns

    async def _index(self, request: SyncRequest, plan: SyncPlan) -> None:
        slots = asyncio.Semaphore(policies.SYNC_BATCH_CONCURRENCY)
        workflow_id = workflow.info().workflow_id

        async def one(start: int) -> None:
            end = min(start + policies.SYNC_BATCH_FILES, plan.changed)
            batch = FileBatch(
                request.tenant, request.source_id, plan.changed_key, start, end, workflow.info().run_id
            )
            async with slots:
                result = await workflow.execute_child_workflow(
                    SourceBatchWorkflow.run,
                    batch,
                    # The run id keeps a retried sync's batches apart from an earlier run's.
                    id=f"{workflow_id}-{workflow.info().run_id}-files-{start}",
                )
            self._add(result)

        await asyncio.gather(*(one(start) for start in range(0, plan.changed, policies.SYNC_BATCH_FILES)))

    def _add(self, result: BatchResult) -> None:
        """A finished batch's counts. Not saved until the sync ends: until then the registry's
        live view adds the batches' own progress to the record saved after the plan."""
        self._record.add_batch(BatchProgress.of(result, workflow.info().run_id))
        self._record.keep_failures(result.failed)

    async def _save(self, request: SyncRequest) -> None:
        await workflow.execute_activity_method(
            SourceActivities.record_sync,
            RecordSync(request.tenant, request.source_id, SyncRecord(**asdict(self._record))),
            start_to_close_timeout=policies.FAST_STEP_TIMEOUT,
            retry_policy=policies.FAST_STEP_RETRY,
        )

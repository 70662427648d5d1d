"""Timeouts and retry policies of every activity, by name. Temporal owns all retries.

Every policy lists the permanent failure kinds as non-retryable, and only those: which kinds are
permanent is decided once, in keel/core/errors.py.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from keel.core.errors import PERMANENT_FAILURES

# Short in-process steps: local activities, a few quick retries.
FAST_STEP_TIMEOUT = timedelta(seconds=30)
FAST_STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT_FAILURES,
)

# Model calls: slow and flaky endpoints; regular activities so a worker crash resumes here.
MODEL_CALL_TIMEOUT = timedelta(minutes=3)
MODEL_CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=PERMANENT_FAILURES,
)

# Indexing one document: parse, chunk, embed, write both stores; heartbeats while embedding.
INDEX_DOCUMENT_TIMEOUT = timedelta(minutes=10)
INDEX_DOCUMENT_HEARTBEAT = timedelta(seconds=60)
INDEX_DOCUMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=PERMANENT_FAILURES,
)

# Documents indexed at once by one batch workflow: the single embedded worker embeds on 2 cores.
INGEST_CONCURRENCY = 4

# Source syncs. The scan hashes every file (5,000 small files: under a second); index_files
# works through one batch of files and heartbeats every few seconds (after each group of files
# and each slice of texts embedded), so a dead worker is noticed within the heartbeat timeout
# and the retry resumes mid-batch.
SCAN_TIMEOUT = timedelta(minutes=30)
INDEX_FILES_TIMEOUT = timedelta(hours=2)
INDEX_FILES_HEARTBEAT = timedelta(seconds=30)
REMOVE_DOCUMENTS_TIMEOUT = timedelta(minutes=30)
SYNC_STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=PERMANENT_FAILURES,
)
# Files per child workflow: 5,000 files make 50 children, each history a few dozen events.
SYNC_BATCH_FILES = 100
# Children at once: embedding is CPU-bound, more would only queue on the encoder's lock.
SYNC_BATCH_CONCURRENCY = 2

# The audit log: a decision is not taken until it is recorded, so the retries never give up
# (an outage of the audit store holds the task, it does not lose the record).
AUDIT_TIMEOUT = timedelta(seconds=30)
AUDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=PERMANENT_FAILURES,
)

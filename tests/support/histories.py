"""Recorded workflow histories: written from a test session's Temporal server, replayed by
tests/workflows/test_replay.py so a change to workflow code that tasks in flight have run is
caught before it ships.

Record new ones with `pytest --record-histories DIR` (every closed workflow of the session),
then copy the ones worth keeping into tests/workflows/histories/ under a name saying what they
cover. Each file holds the workflow's id (child ids derive from it) beside its history.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from temporalio.client import Client, WorkflowHistory


async def record_histories(client: Client, directory: Path) -> int:
    """Write every closed workflow's history on the server to `directory/<type>/`; how many."""
    commit = _head_commit()
    written = 0
    async for execution in client.list_workflows("ExecutionStatus != 'Running'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        folder = directory / execution.workflow_type
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "workflow_id": execution.id,
            "run_id": execution.run_id,
            "workflow_type": execution.workflow_type,
            "recorded_at_commit": commit,
            "history": json.loads(history.to_json()),
        }
        (folder / f"{execution.id}__{execution.run_id}.json").write_text(json.dumps(record))
        written += 1
    return written


def load_history(path: Path) -> tuple[str, WorkflowHistory]:
    """The workflow type and history of a recorded file."""
    record = json.loads(path.read_text())
    return record["workflow_type"], WorkflowHistory.from_json(record["workflow_id"], record["history"])


def _head_commit() -> str:
    """The commit the recording session ran (short), or "" outside a git checkout."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""

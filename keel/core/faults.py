"""Test-only fault points: hold an agent step so a test can kill the worker exactly there.

Off unless `settings.faults` names the step and a folder. Then the step writes
a line with its task's id to `<folder>/<step>.reached` and waits while `<folder>/<step>.hold` exists:
the test sees the marker, SIGKILLs the worker, removes the hold and starts a new one. Without a
hold file the step runs on at once, so a worker configured this way behaves normally otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path

from temporalio import activity

from keel.core.settings import FaultSettings

POLL_S = 0.05  # how often a held step looks at its hold file


def pause_if_asked(step: str, faults: FaultSettings) -> None:
    """Hold `step` while its hold file exists, if the fault settings name it (else return at once)."""
    if not faults.pause_dir or step not in faults.steps:
        return
    folder = Path(faults.pause_dir)
    hold = folder / f"{step}.hold"
    if not hold.exists():
        return
    info = activity.info()
    with (folder / f"{step}.reached").open("a") as reached:
        reached.write(f"{info.workflow_id}\n")
    while hold.exists():
        if not info.is_local:
            # A regular activity says it is alive, as a long step would (local ones cannot).
            activity.heartbeat()
        time.sleep(POLL_S)

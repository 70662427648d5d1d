"""The launcher's supervision on real processes: restart, stop all, name a taken port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.app.embedded import spawn
from keel.app.launcher import PortInUseError, RestartPolicy, Supervisor, check_ports, port_in_use
from keel.core.settings import Settings

pytestmark = pytest.mark.unit


def _python(code: str, log: Path) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-c", code], log)


def test_a_child_that_keeps_exiting_is_restarted_and_never_given_up_on(tmp_path: Path) -> None:
    # No backoff here: this test is about restarting forever; tests/keel/app/test_supervisor.py
    # has the delays.
    supervisor = Supervisor(make_policy=lambda: RestartPolicy(first_delay_s=0, max_delay_s=0, loop_crashes=2))
    child = supervisor.add("flaky", lambda: _python("raise SystemExit(3)", tmp_path / "flaky.log"))
    deadline = time.monotonic() + 30
    while child.restarts < 4:  # past the crash loop (2 crashes): still restarted
        assert time.monotonic() < deadline, f"{child.restarts} restarts after 30 s"
        assert child.proc is not None
        child.proc.wait(timeout=10)
        supervisor.check()  # notes the crash
        supervisor.check()  # its (zero) backoff is over: restarts it
    supervisor.stop_all()


def test_stop_all_leaves_no_process_behind(tmp_path: Path) -> None:
    supervisor = Supervisor()
    children = [
        supervisor.add(
            f"sleeper-{i}", lambda i=i: _python("import time; time.sleep(60)", tmp_path / f"{i}.log")
        )
        for i in range(3)
    ]
    supervisor.check()
    assert all(c.proc is not None and c.proc.poll() is None for c in children)
    supervisor.stop_all()
    assert all(c.proc is not None and c.proc.poll() is not None for c in children)
    supervisor.check()  # stopping: nothing is restarted
    assert all(c.restarts == 0 for c in children)


def test_a_taken_port_is_reported_with_the_setting_that_moves_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        with pytest.raises(PortInUseError, match=f"port {port} .*FalkorDB.*KEEL_FALKORDB__PORT"):
            check_ports(
                Settings(api={"port": 1}, falkordb={"port": port}, temporal={"address": "elsewhere:7233"})
            )

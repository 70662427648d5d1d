"""`keel up`'s supervision: the restart policy on a given clock (no processes, no waiting), then a
real crashing child beside a healthy one."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from keel.app.embedded import spawn
from keel.app.launcher import RestartPolicy, Supervisor, log_tail

pytestmark = pytest.mark.unit

CRASHER = "import sys; print('cannot open the store'); sys.exit(3)"


def _crash_at(policy: RestartPolicy, *times: float) -> list[tuple[float, int, bool]]:
    """Crash at each time, restarting when told; (delay, crashes in window, crash loop) for each."""
    decisions = []
    for now in times:
        decision = policy.crashed(now)
        decisions.append((decision.delay_s, decision.crashes, decision.crash_loop))
        policy.started(decision.restart_at)
    return decisions


def test_restarts_back_off_exponentially_up_to_the_maximum() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=8, loop_crashes=100)
    # Each crash comes right after the restart: 1, 2, 4, 8, then 8 again.
    decision = policy.crashed(0.0)
    delays = [decision.delay_s]
    for _ in range(5):
        policy.started(decision.restart_at)
        decision = policy.crashed(decision.restart_at + 0.1)
        delays.append(decision.delay_s)
    assert delays == [1, 2, 4, 8, 8, 8]
    assert decision.restart_at == pytest.approx(sum(delays[:-1]) + 0.1 * 5 + 8)


def test_a_service_up_long_enough_starts_over_at_the_first_delay() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=60, stable_after_s=120, loop_crashes=100)
    assert [d for d, _, _ in _crash_at(policy, 0, 1.5, 4)] == [1, 2, 4]
    # Restarted at 8, up for 150 s (> 120): healthy again.
    assert policy.crashed(158).delay_s == 1


def test_five_crashes_within_ten_minutes_is_a_crash_loop_retried_at_the_maximum() -> None:
    policy = RestartPolicy(first_delay_s=1, max_delay_s=60, loop_crashes=5, loop_window_s=600)
    decisions = _crash_at(policy, 0, 2, 5, 10, 20, 90)
    assert [loop for _, _, loop in decisions] == [False, False, False, False, True, True]
    assert [crashes for _, crashes, _ in decisions] == [1, 2, 3, 4, 5, 6]
    assert [delay for delay, _, _ in decisions][4:] == [60, 60]


def test_crashes_older_than_the_window_no_longer_count() -> None:
    policy = RestartPolicy(
        first_delay_s=1, max_delay_s=60, stable_after_s=10_000, loop_crashes=3, loop_window_s=100
    )
    assert _crash_at(policy, 0, 10)[-1][1:] == (2, False)
    # At 105 the crash at 0 has left the window: 2 in it (10, 105), still no loop.
    assert _crash_at(policy, 105)[-1][1:] == (2, False)
    assert _crash_at(policy, 109)[-1][1:] == (3, True)


def test_log_tail_gives_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, lines=3).splitlines() == ["    line 97", "    line 98", "    line 99"]
    assert "no log file" in log_tail(None)
    assert "unreadable" in log_tail(tmp_path / "missing.log")


def _python(code: str, log: Path, starts: list[float]) -> subprocess.Popen[bytes]:
    starts.append(time.monotonic())
    return spawn([sys.executable, "-c", code], log)


def test_a_crashing_child_is_retried_with_growing_delays_and_the_healthy_one_runs_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Short delays so the test takes seconds: 0.2, 0.4, 0.8, then the loop's 1.6.
    supervisor = Supervisor(
        make_policy=lambda: RestartPolicy(first_delay_s=0.2, max_delay_s=1.6, loop_crashes=4)
    )
    healthy_starts: list[float] = []
    crasher_starts: list[float] = []
    crasher_log = tmp_path / "crasher.log"
    healthy = supervisor.add(
        "healthy", lambda: _python("import time; time.sleep(60)", tmp_path / "h.log", healthy_starts)
    )
    crasher = supervisor.add(
        "crasher",
        lambda: _python(
            "import sys; print('cannot open the store'); sys.exit(3)", crasher_log, crasher_starts
        ),
        crasher_log,
    )
    try:
        with caplog.at_level(logging.INFO, logger="keel.app.launcher"):
            deadline = time.monotonic() + 60
            while crasher.restarts < 5:
                assert time.monotonic() < deadline, f"{crasher.restarts} restarts after 60 s"
                supervisor.check()
                time.sleep(0.02)  # the supervisor's own polling interval, scaled down
        assert healthy.proc is not None and healthy.proc.poll() is None
        assert healthy.restarts == 0 and len(healthy_starts) == 1
        gaps = [later - earlier for earlier, later in pairwise(crasher_starts)]
        # Each gap is the child's run time plus its backoff: at least the backoff, and growing.
        assert all(gap >= delay for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 1.6, 1.6], strict=True)), gaps
        assert gaps[0] < gaps[1] < gaps[2] < gaps[3]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "crasher exited with code 3; restarting in 0.2 s" in warnings
        loop_errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert loop_errors, "the crash loop was not reported"
        first = loop_errors[0]
        assert "crasher is in a crash loop: 4 crashes in the last 10 min, last exit code 3" in first
        assert str(crasher_log) in first and "cannot open the store" in first
    finally:
        supervisor.stop_all()
    assert healthy.proc.poll() is not None and crasher.proc is not None and crasher.proc.poll() is not None

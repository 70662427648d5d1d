"""Queries go ahead of bulk passages in the one dense model a worker process shares."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from keel.core.settings import Settings
from retrieval.encoders import BULK_SLICE, DenseEncoder, PriorityGate, bulk_work, is_bulk_thread

DEADLINE_S = 120.0


def wait_until(probe: Callable[[], bool]) -> None:
    """Poll with a deadline (no fixed sleep)."""
    deadline = time.monotonic() + DEADLINE_S
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {probe}")
        time.sleep(0.005)


@pytest.mark.unit
def test_bulk_work_marks_only_its_block() -> None:
    assert not is_bulk_thread()
    with bulk_work():
        assert is_bulk_thread()
    assert not is_bulk_thread()


@pytest.mark.unit
def test_a_waiting_interactive_caller_enters_before_a_waiting_bulk_one() -> None:
    gate, order = PriorityGate(), []
    holder_in, release_holder = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.bulk():
            holder_in.set()
            release_holder.wait(DEADLINE_S)

    def enter(kind: str, started: threading.Event) -> None:
        started.set()
        with gate.bulk() if kind == "bulk" else gate.interactive():
            order.append(kind)

    holder = threading.Thread(target=hold)
    holder.start()
    wait_until(holder_in.is_set)
    bulk_started, interactive_started = threading.Event(), threading.Event()
    # The bulk caller queues first; the interactive one still goes first once the gate frees.
    bulk = threading.Thread(target=enter, args=("bulk", bulk_started))
    bulk.start()
    wait_until(bulk_started.is_set)
    interactive = threading.Thread(target=enter, args=("interactive", interactive_started))
    interactive.start()
    wait_until(lambda: gate._interactive_waiting == 1)
    release_holder.set()
    for thread in (holder, bulk, interactive):
        thread.join(DEADLINE_S)
    assert order == ["interactive", "bulk"]


@pytest.mark.integration
def test_a_query_sent_during_a_long_batch_finishes_before_the_batch() -> None:
    dense = DenseEncoder(Settings().embedding_model_path(), query_runtime="torch")
    passages = [f"Passage {i} about the quarterly report of team {i % 7}. " * 12 for i in range(160)]
    finished: dict[str, float] = {}

    def encode_batch() -> None:
        with bulk_work():
            dense.encode_documents(passages)
        finished["batch"] = time.perf_counter()

    batch = threading.Thread(target=encode_batch)
    batch.start()
    # Mid-batch: a few slices done, most still to come.
    wait_until(lambda: dense.encode_calls >= 2 * BULK_SLICE)
    calls_when_asked = dense.encode_calls
    vector = dense.encode_query("who leads the payments team?")
    calls_when_answered = dense.encode_calls
    finished["query"] = time.perf_counter()
    batch.join(DEADLINE_S)
    assert len(vector) == dense.dimension
    assert dense.encode_calls == len(passages) + 1
    assert finished["query"] < finished["batch"]
    # It waited for the slice in progress (and at most one that started as it asked), never for
    # the rest of the batch: counted in texts, which the machine's load does not change.
    assert calls_when_answered - calls_when_asked <= 2 * BULK_SLICE + 1


@pytest.mark.unit
def test_bulk_work_defers_to_a_running_interactive_step_until_it_ends() -> None:
    gate, resumed = PriorityGate(grace_s=0.0, max_defer_s=DEADLINE_S), threading.Event()

    def checkpoint() -> None:
        gate.defer_to_interactive()
        resumed.set()

    with gate.interactive_step():
        bulk = threading.Thread(target=checkpoint)
        bulk.start()
        # Observing that something does not happen needs a bounded wait; the step runs meanwhile.
        assert not resumed.wait(0.3)
    wait_until(resumed.is_set)
    bulk.join(DEADLINE_S)


@pytest.mark.unit
def test_a_deferral_is_bounded_so_a_busy_agent_slows_ingestion_without_stalling_it() -> None:
    gate = PriorityGate(grace_s=0.0, max_defer_s=0.05)
    with gate.interactive_step():
        started = time.monotonic()
        gate.defer_to_interactive()
        assert time.monotonic() - started < DEADLINE_S / 4

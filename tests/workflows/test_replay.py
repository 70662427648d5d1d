"""Replay: every workflow's recorded histories replay on the code as it is now, and a reviewed
AgentWorkflow's fresh history replays without tracing anything twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.langgraph import LangGraphPlugin
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from keel.app.worker import WORKFLOWS
from keel.core.tracing import trace_id_for
from tests.support.histories import load_history
from tests.support.polling import wait_for_status
from workflows.agent_graph import AGENT_GRAPH, make_agent_graph

QUESTION = "Who leads the team that owns Ledgerline?"
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _replayer() -> Replayer:
    return Replayer(workflows=WORKFLOWS, plugins=[LangGraphPlugin(graphs={AGENT_GRAPH: make_agent_graph()})])


@pytest.mark.unit
def test_every_workflow_has_a_recorded_history() -> None:
    recorded = {load_history(path)[0] for path in HISTORIES}
    assert recorded == {workflow.__name__ for workflow in WORKFLOWS}


@pytest.mark.unit
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_recorded_history_replays_on_this_code(path: Path) -> None:
    """Recorded by real runs (the file says at which commit); a nondeterministic change fails here."""
    _, history = load_history(path)
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _span_count(platform, trace_id: str) -> int:
    return sum(
        1 for s in platform.spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id
    )


@pytest.mark.integration
async def test_reviewed_task_replays_without_nondeterminism_or_new_traces(
    api: httpx.AsyncClient, platform, temporal_env: WorkflowEnvironment, demo_corpus, callers
) -> None:
    task_id = (await api.post("/v1/tasks", json={"question": QUESTION, "review": "always"})).json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    decided = await callers("rita", "reviewer").post(
        f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"}
    )
    assert decided.status_code == 200, decided.text
    await wait_for_status(api, task_id, {"completed"})

    history = await temporal_env.client.get_workflow_handle(task_id).fetch_history()
    tracer = platform.components.agent._tracer
    tracer.flush()
    trace_id = trace_id_for(task_id)
    records_before = len(platform.traces.load(task_id))
    spans_before = _span_count(platform, trace_id)
    assert records_before > 0 and spans_before > 0

    result = await _replayer().replay_workflow(history)
    assert result.replay_failure is None

    tracer.flush()
    assert len(platform.traces.load(task_id)) == records_before
    assert _span_count(platform, trace_id) == spans_before

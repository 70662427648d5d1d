"""Replay: a reviewed AgentWorkflow's real history replays deterministically and traces nothing twice."""

from __future__ import annotations

import httpx
import pytest
from temporalio.langgraph import LangGraphPlugin
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from keel.tracing import trace_id_for
from tests.helpers import wait_for_status
from workflows.agent import AgentWorkflow
from workflows.agent_graph import AGENT_GRAPH, make_agent_graph

pytestmark = [pytest.mark.integration]

QUESTION = "Who leads the team that owns Ledgerline?"


def _span_count(platform, trace_id: str) -> int:
    return sum(
        1 for s in platform.spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id
    )


async def test_reviewed_task_replays_without_nondeterminism_or_new_traces(
    api: httpx.AsyncClient, platform, temporal_env: WorkflowEnvironment, demo_corpus
) -> None:
    task_id = (await api.post("/v1/tasks", json={"question": QUESTION, "review": "always"})).json()["id"]
    await wait_for_status(api, task_id, {"awaiting_review"})
    decided = await api.post(f"/v1/reviews/{task_id}", json={"decision": "approve", "reviewer": "rita"})
    assert decided.status_code == 200, decided.text
    await wait_for_status(api, task_id, {"completed"})

    history = await temporal_env.client.get_workflow_handle(task_id).fetch_history()
    tracer = platform.components.agent._tracer
    tracer.flush()
    trace_id = trace_id_for(task_id)
    records_before = len(platform.traces.load(task_id))
    spans_before = _span_count(platform, trace_id)
    assert records_before > 0 and spans_before > 0

    replayer = Replayer(
        workflows=[AgentWorkflow], plugins=[LangGraphPlugin(graphs={AGENT_GRAPH: make_agent_graph()})]
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None

    tracer.flush()
    assert len(platform.traces.load(task_id)) == records_before
    assert _span_count(platform, trace_id) == spans_before

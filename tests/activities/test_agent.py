"""The generate step on the session's real stores: every citation carries its document's version."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from temporalio.testing import ActivityEnvironment

from keel.domain import Candidate, Draft, GenerateInput
from retrieval.types import chunk_id_for

pytestmark = pytest.mark.integration


async def test_generate_fills_in_the_version_of_every_cited_document(platform, demo_corpus) -> None:
    tenant = platform.settings.tenant
    graph = platform.components.ingestion._graph
    stored = graph.documents(tenant, ["system-kestrel", "team-aurora"])
    passages = [
        Candidate(chunk_id_for(doc_id, position), doc_id, 1.0)
        for doc_id, document in stored.items()
        for position in range(document["chunks"])
    ]
    env = ActivityEnvironment()
    # A task id of its own, so the step's trace lands under no other test's task.
    env.info = dataclasses.replace(env.info, workflow_id=f"task-{uuid.uuid4().hex}")
    draft: Draft = env.run(
        platform.components.agent.generate,
        GenerateInput(tenant=tenant, question="Which team owns Kestrel?", passages=passages),
    )

    assert draft.citations, draft
    for citation in draft.citations:
        document = stored[citation.document_id]
        assert citation.version == document["version"] and citation.version
        assert citation.file_hash == document["file_hash"] and citation.file_hash
        assert citation.modified_ns == document["modified_ns"] > 0

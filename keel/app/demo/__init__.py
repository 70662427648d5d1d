"""The demo corpus shipped with Keel: Northwind Atlas, a fictional logistics company."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from keel.core.settings import Settings

CORPUS_DIR = Path(__file__).parent / "corpus"
QUESTIONS_FILE = Path(__file__).parent / "questions.json"
DEMO_QUESTION = "Who leads the team that owns the system Project Halcyon depends on?"


def demo_questions() -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = json.loads(QUESTIONS_FILE.read_text())
    return questions


def ingest_demo_corpus(settings: Settings) -> None:
    """Index the demo corpus (a no-op for documents already indexed at this version)."""
    from ingestion.files import load_documents
    from keel.control.documents import start_batch
    from keel.control.temporal import connect

    documents = load_documents(CORPUS_DIR, {".md"})

    async def run() -> None:
        client = await connect(settings)
        handle = await start_batch(
            client, settings, documents, batch_id=f"ingest-demo-{uuid.uuid4().hex[:12]}"
        )
        result = await handle.result()
        chunks = sum(d.chunks for d in result.indexed)
        indexed, failed = len(result.indexed), len(result.failed)
        _say(f"demo corpus: {indexed} documents indexed ({chunks} chunks), {failed} failed")

    asyncio.run(run())


def ask_demo_question(base_url: str, api_key: str, timeout_s: float = 120.0) -> None:
    """Ask one two-hop question over REST and print the cited answer: proof the path works."""
    import httpx

    started = time.monotonic()
    auth = {"Authorization": f"Bearer {api_key}"}
    task = httpx.post(
        f"{base_url}/v1/tasks",
        json={"question": DEMO_QUESTION, "review": "never"},
        headers=auth,
        timeout=10,
    ).json()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        view = httpx.get(f"{base_url}/v1/tasks/{task['id']}", headers=auth, timeout=10).json()
        if view["status"] not in ("running", "awaiting_review"):
            break
        time.sleep(0.2)
    else:
        _say(f"demo question: task {task['id']} still running after {timeout_s} s")
        return
    _say(f"demo question: {DEMO_QUESTION}")
    result = view.get("result") or {}
    _say(f"  answer ({time.monotonic() - started:.2f} s, {view['status']}): {result.get('answer')}")
    for citation in result.get("citations", []):
        _say(f'  cites {citation["document_id"]} / {citation["chunk_id"]}: "{citation["quote"]}"')


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

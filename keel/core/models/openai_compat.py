"""Any OpenAI-compatible endpoint: vLLM, TGI, Ollama, OpenAI, llama.cpp's server."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from keel.core.chunks import Citation, ScoredChunk
from keel.core.models.base import Embed, Generation, ModelError, dot, split_sentences

if TYPE_CHECKING:
    from openai import OpenAI

_MARKER = re.compile(r"\[(\d{1,2})\]")
_SYSTEM = (
    "You answer questions using only the numbered passages. "
    "Cite every fact with the passage number in square brackets, like [1]. "
    "If the passages do not contain the answer, say so."
)


def build_prompt(question: str, passages: Sequence[ScoredChunk]) -> str:
    numbered = "\n\n".join(f"[{i}] {p.title}\n{p.text}" for i, p in enumerate(passages, start=1))
    return f"Passages:\n{numbered}\n\nQuestion: {question}\nAnswer:"


class OpenAICompatibleProvider:
    """Chat completions with Temporal owning retries (the SDK's own are off)."""

    name = "openai"

    def __init__(
        self,
        client: OpenAI,
        model: str,
        embed: Embed,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        if not model:
            raise ValueError("an OpenAI-compatible provider needs a model name (KEEL_MODELS__MODEL)")
        self._client = client
        self.model = model
        self._embed = embed
        self._max_tokens = max_tokens
        self._temperature = temperature

    def generate(self, question: str, passages: Sequence[ScoredChunk]) -> Generation:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": _SYSTEM},
                    {"role": "user", "content": build_prompt(question, passages)},
                ],
                max_tokens=self._max_tokens,
                temperature=self._temperature,
            )
        except (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError) as exc:
            raise ModelError(f"model endpoint unavailable: {exc}", retryable=True) from exc
        except openai.InternalServerError as exc:
            raise ModelError(f"model endpoint failed: {exc}", retryable=True) from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"model endpoint refused the request: {exc}", retryable=False) from exc
        answer = (response.choices[0].message.content or "").strip()
        usage = response.usage
        return Generation(
            answer=answer,
            citations=self._citations(answer, passages),
            model=response.model or self.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )

    def _citations(self, answer: str, passages: Sequence[ScoredChunk]) -> list[Citation]:
        """Cite the passages the model named; else the passages closest to the answer."""
        named = sorted({int(n) for n in _MARKER.findall(answer) if 1 <= int(n) <= len(passages)})
        cited = [passages[n - 1] for n in named] or list(passages[:2])
        return [self._best_quote(answer, p) for p in cited]

    def _best_quote(self, answer: str, passage: ScoredChunk) -> Citation:
        sentences = split_sentences(passage.text) or [passage.text[:200]]
        vectors = self._embed([answer, *sentences])
        best = max(range(len(sentences)), key=lambda i: dot(vectors[0], vectors[i + 1]))
        return Citation(document_id=passage.document_id, chunk_id=passage.chunk_id, quote=sentences[best])

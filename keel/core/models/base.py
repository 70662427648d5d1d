"""The one interface every answer generator implements."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keel.core.chunks import Citation, ScoredChunk

# Embeds texts into normalised vectors; providers take it instead of importing an encoder.
Embed = Callable[[Sequence[str]], list[list[float]]]

# A relative clause after the first word ("the team that owns the system X depends on")
# means the answer sits one or more hops from what the question names.
_MULTI_HOP = re.compile(r"\s(that|which|whose|where|who)\s", re.IGNORECASE)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])|\n+")


@dataclass(frozen=True)
class Generation:
    answer: str
    citations: list[Citation]
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    notes: list[str] = field(default_factory=list)


class ModelError(Exception):
    """A model call failed; `retryable` says whether Temporal should try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class AnswerProvider(Protocol):
    name: str
    model: str
    max_output_tokens: int  # the most a call may write: what a budget reservation prices

    def generate(self, question: str, passages: Sequence[ScoredChunk]) -> Generation:
        """An answer from `passages` (chunks with their text), best first."""
        ...

    def prompt_texts(self, question: str, passages: Sequence[ScoredChunk]) -> list[str]:
        """The texts a call sends, in parts, to count its prompt tokens before it is made (a part
        recurring from call to call, like a passage, is counted once and kept)."""
        ...


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage, without Markdown heading lines."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    parts = _SENTENCE_END.split("\n".join(lines))
    return [p.strip() for p in parts if len(p.strip()) > 2]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def is_multi_hop(question: str) -> bool:
    return bool(_MULTI_HOP.search(question.strip()))

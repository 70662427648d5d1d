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

# A sentence ends at ".", "!" or "?" before a capital, a digit or an opening quote; not after a
# dotted acronym ("the U.S. Army") or a title or abbreviation ("Ken St. Andre", "Dr. Okafor").
# A lone initial is left alone: "lot C. Staff park below." is two sentences.
_ABBREVIATIONS = (
    "St",
    "Dr",
    "Mr",
    "Ms",
    "Mrs",
    "Jr",
    "Sr",
    "Mt",
    "No",
    "vs",
    "Co",
    "Inc",
    "Ltd",
    "Gen",
    "Col",
    "Prof",
)
_NOT_AN_END = "".join(rf"(?<!\b{a}\.)" for a in _ABBREVIATIONS) + r"(?<![A-Z]\.[A-Z]\.)"
# An answer's quote cut short ends with "…" (answer_fit.CUT): the next quote starts a sentence.
_SENTENCE_END = re.compile(rf"(?<=[.!?…]){_NOT_AN_END}\s+(?=[\"'(A-Z0-9])|\n+")
# Markdown: a heading line names what follows (it is not an answer); a list item's bullet or
# number and a quote's ">" open a line but are no part of its sentence.
_HEADING_LINE = re.compile(r"^\s*#{1,6}(?:\s|$)")
_LINE_MARKER = re.compile(r"^\s*(?:(?:[-*+]|\d+[.)])\s+|>\s*)+")
_WORDLIKE = re.compile(r"\w")


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

    def revise(self, question: str, instruction: str, passages: Sequence[ScoredChunk]) -> Generation:
        """An answer to `question` with a reviewer's `instruction` applied: what was right in the
        draft stays (its passages come first), what the instruction asks for is added."""
        ...

    def prompt_texts(self, question: str, passages: Sequence[ScoredChunk]) -> list[str]:
        """The texts a call sends, in parts, to count its prompt tokens before it is made (a part
        recurring from call to call, like a passage, is counted once and kept)."""
        ...


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage: every line ends one; Markdown heading lines are left out, and
    list and quote markers taken off (what is left is still a verbatim part of the text)."""
    lines = [_LINE_MARKER.sub("", line) for line in text.splitlines() if not _HEADING_LINE.match(line)]
    parts = (p.strip() for p in _SENTENCE_END.split("\n".join(lines)))
    # A rule ("---") or a lone "1." is no sentence.
    return [p for p in parts if len(p) > 2 and _WORDLIKE.search(p)]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def is_multi_hop(question: str) -> bool:
    return bool(_MULTI_HOP.search(question.strip()))

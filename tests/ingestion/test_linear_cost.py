"""Per-document ingestion work grows linearly with the document (issue 15: a 1.9 MB document
never indexed because entity extraction searched the whole text once per capitalised word).

Two guards, both in-process and without servers:
- work counted: characters handed to the regex engine by entity extraction and chunking, per
  character of input, must not grow with the document (a whole-text search per name or per
  word makes it grow in proportion). Deterministic, so it is the primary guard.
- CPU time of the whole per-document path (chunks, document and chunk entities, relations) for
  a 4x larger document: under 8x (quadratic would be ~16x). Process CPU time, best of three,
  so other work on the machine barely moves it; it catches Python-level loops the count misses.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ingestion.chunking as chunking
import ingestion.entities as entities
from ingestion.chunking import chunk_text
from ingestion.entities import KnownNames, extract_entities, extract_relations

pytestmark = pytest.mark.unit

SMALL, LARGE = 50_000, 200_000

_FIRST = ["Maya", "Idris", "Hana", "Oren", "Lena", "Kwame", "Noor", "Ezra", "Jonah", "Priya"]
_SYLLABLES = ["ka", "ro", "vel", "mi", "dor", "an", "te", "sa", "lu", "bri", "qui", "zan"]


def prose(chars: int, seed: int = 3) -> str:
    """Deterministic Markdown prose naming many people and systems, new names coined as it goes
    (so a longer document also knows more names, as a real one does)."""
    rng = random.Random(seed)
    coined: list[str] = []

    def name() -> str:
        if not coined or rng.random() < 0.25:
            coined.append("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize())
        return rng.choice(coined)

    def person() -> str:
        return f"{rng.choice(_FIRST)} {name()}"

    sentences: list[Callable[[], str]] = [
        lambda: f"{name()} Portal is owned by the Payments Team and led by {person()}.",
        lambda: f"{person()} leads the {name()} Team, which owns {name()}.",
        lambda: f"{name()} depends on {name()} Gateway and {name()}.",
        lambda: f"During the March review, {person()} noted that latency in {name()} rose.",
        lambda: f"Receipts from {name()} are reconciled nightly by {person()}.",
    ]
    parts = ["# Operations handbook\n\n"]
    while sum(map(len, parts)) < chars:
        parts.append(" ".join(rng.choice(sentences)() for _ in range(rng.randint(3, 6))) + "\n\n")
        if len(parts) % 9 == 0:
            parts.append("\n".join(f"- {rng.choice(sentences)()}" for _ in range(3)) + "\n\n")
    return "".join(parts)[:chars]


def ingest_like_the_indexer(text: str) -> None:
    """What the indexer runs per document, minus the encoders."""
    document_names = extract_entities(text)
    known = KnownNames(document_names)
    for piece in chunk_text(text, 700, 100):
        extract_relations(piece, extract_entities(piece, known=known))
    extract_relations(text, document_names)


class _CountingPattern:
    """A compiled pattern that adds to `counter` the characters each scan is handed.

    Instrumentation, not a mock: the real pattern does the work. An anchored `match` counts only
    what it matched (it reads no further); every other method counts the rest of the string.
    """

    def __init__(self, pattern: re.Pattern[str], counter: list[int]) -> None:
        self._pattern, self._counter = pattern, counter

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pattern, name)
        if not callable(method):
            return method

        def counted(string: str, *args: Any, **kwargs: Any) -> Any:
            result = method(string, *args, **kwargs)
            if name in ("match", "fullmatch"):
                self._counter[0] += max(1, len(result.group()) if result else 1)
            elif name in ("sub", "subn"):
                self._counter[0] += len(args[0]) if args and isinstance(args[0], str) else 0
            else:
                start = args[0] if args and isinstance(args[0], int) else 0
                self._counter[0] += len(string) - start
            return result

        return counted


class _CountingRe:
    """The `re` module as a module sees it, its scans counted (patterns built at call time too)."""

    def __init__(self, counter: list[int]) -> None:
        self._counter = counter

    def compile(self, pattern: str, flags: int = 0) -> _CountingPattern:
        return _CountingPattern(re.compile(pattern, flags), self._counter)

    def __getattr__(self, name: str) -> Any:
        if name in ("search", "match", "fullmatch", "finditer", "findall", "split", "sub", "subn"):
            return lambda pattern, string, *args, **kwargs: getattr(self.compile(pattern), name)(
                string, *args, **kwargs
            )
        return getattr(re, name)


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Characters scanned by regexes in entity extraction and chunking, counted from here on."""
    counter = [0]
    for module in (entities, chunking):
        monkeypatch.setattr(module, "re", _CountingRe(counter))
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                monkeypatch.setattr(module, name, _CountingPattern(value, counter))
    monkeypatch.setattr(
        entities,
        "_RELATION_PATTERNS",
        tuple((_CountingPattern(p, counter), kind, rev) for p, kind, rev in entities._RELATION_PATTERNS),
    )
    yield counter


def _scanned_per_character(text: str, counter: list[int]) -> float:
    counter[0] = 0
    ingest_like_the_indexer(text)
    return counter[0] / len(text)


def test_regex_work_per_character_does_not_grow_with_the_document(scanned: list[int]) -> None:
    small = _scanned_per_character(prose(SMALL), scanned)
    large = _scanned_per_character(prose(LARGE), scanned)
    # Linear work scans each character a fixed number of times whatever the size; a scan of the
    # whole text per name found would make the large document's figure ~4x the small one's.
    assert large < 1.3 * small, f"{small:.1f} -> {large:.1f} characters scanned per character"


def _cpu_seconds(work: Callable[[], object]) -> float:
    """Best of three: process CPU time, so other work on the machine barely moves it."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def test_cpu_time_grows_linearly_with_the_document() -> None:
    small, large = prose(SMALL), prose(LARGE)
    ratio = _cpu_seconds(lambda: ingest_like_the_indexer(large)) / _cpu_seconds(
        lambda: ingest_like_the_indexer(small)
    )
    assert ratio < 8, f"4x the text took {ratio:.1f}x the CPU time (linear ~4, quadratic ~16)"


def test_a_long_wrapped_paragraph_chunks_in_linear_time() -> None:
    # One paragraph of wrapped lines (a text export): joining them must not recopy the block.
    def wrapped(chars: int) -> str:
        return "\n".join(["words of a long paragraph"] * (chars // 26))

    small, large = wrapped(500_000), wrapped(2_000_000)
    ratio = _cpu_seconds(lambda: chunk_text(large)) / _cpu_seconds(lambda: chunk_text(small))
    assert ratio < 8, f"4x the text took {ratio:.1f}x the CPU time (linear ~4, quadratic ~16)"

"""The Reranker protocol, and a feature reranker (MiniLM cosine + term coverage) that needs no weights."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from keel.core.chunks import ScoredChunk
from retrieval.encoders import DenseEncoder

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "does", "for", "from", "has", "have", "how", "in",
        "is", "it", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where", "which",
        "who", "whom", "whose", "why", "with",
    }
)  # fmt: skip


def text_terms(text: str) -> set[str]:
    """Lower-cased words of a text, stop words left out."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


class Reranker(Protocol):
    name: str

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]: ...


class FeatureReranker:
    """Query–passage cosine (title + text, MiniLM) blended with query-term coverage.

    Needs no weights beyond the embedding model. The blend favours the semantic
    score and uses term coverage to separate near-ties on names and numbers.
    """

    name = "feature-minilm"

    def __init__(self, encoder: DenseEncoder, semantic_weight: float = 0.75) -> None:
        if not 0.0 <= semantic_weight <= 1.0:
            raise ValueError("semantic_weight must be in [0, 1]")
        self._encoder = encoder
        self._semantic_weight = semantic_weight

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]:
        if not chunks:
            return []
        query_vector = self._encoder.encode_query(query)
        # Ingestion embedded "title\ntext" already: reuse the stored vector, encode only what lacks one.
        missing = [c for c in chunks if c.dense is None]
        encoded = iter(
            self._encoder.encode_documents([f"{c.title}\n{c.text}" for c in missing]) if missing else []
        )
        vectors = [c.dense if c.dense is not None else next(encoded) for c in chunks]
        asked = text_terms(query)
        scored = []
        for chunk, vec in zip(chunks, vectors, strict=True):
            cosine = sum(a * b for a, b in zip(query_vector, vec, strict=True))
            coverage = len(asked & text_terms(f"{chunk.title} {chunk.text}")) / max(1, len(asked))
            score = self._semantic_weight * cosine + (1 - self._semantic_weight) * coverage
            scored.append(replace(chunk, score=score, source="rerank", dense=None))
        scored.sort(key=lambda c: (-c.score, c.chunk_id))
        return scored[:limit]

"""A chunk as it travels from retrieval to the answer, and the citation an answer makes of it.

One type from the first search to the generator: the stores fill in the text, the stages add
their scores and signals, and between the agent's activities it travels as a reference
(`ref()`: ids, score and signals, no text), which the next activity fills in again from the
store by chunk id. Convert only at the edges (API schemas, store payloads).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

# Payloads carry scores to this many decimals: the reranker's order never hangs on float noise.
SCORE_DIGITS = 6


@dataclass(frozen=True)
class ScoredChunk:
    """A retrieved chunk. `source` says which retriever (or stage) produced `score`."""

    chunk_id: str
    document_id: str
    score: float = 0.0
    title: str = ""
    text: str = ""
    source: str = ""
    version: str = ""  # content hash of the document the text was read from
    # The stored dense vector, when asked for: lets the reranker skip re-encoding passages.
    # Not part of equality or hash (a list is not hashable; passages are kept in sets).
    dense: list[float] | None = field(default=None, compare=False, hash=False)
    # What each stage knew about the chunk (dense cosine, BM25 score, fused score, graph boost):
    # the features of the learned reranker and of the traces. Not part of equality or hash.
    signals: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    def ref(self) -> ScoredChunk:
        """The chunk as activities pass it on: ids, rounded score and signals, no text or vector."""
        return ScoredChunk(
            self.chunk_id,
            self.document_id,
            round(self.score, SCORE_DIGITS),
            source=self.source,
            signals={name: round(value, SCORE_DIGITS) for name, value in self.signals.items()},
        )

    @property
    def found_by(self) -> list[str]:
        """The retrievers that found it (for traces)."""
        return [name for name in ("dense", "bm25", "graph") if name in self.signals]


@dataclass(frozen=True)
class Citation:
    document_id: str
    chunk_id: str
    quote: str
    # The document version the quote was read from, filled in by the generate step (providers
    # leave them empty). Defaults keep histories recorded before these fields decodable.
    version: str = ""  # content hash of the document's title and text
    file_hash: str = ""  # of the file (or upload) that version came from
    modified_ns: int = 0  # that file's modification time (an upload's: when it was indexed)


def keeping_cited(
    passages: Sequence[ScoredChunk], earlier: Sequence[ScoredChunk], cited: Collection[str]
) -> list[ScoredChunk]:
    """A later round's passages, then the earlier round's passages its draft cited that they lost:
    a next hop adds passages, it never takes away the ones the last draft answered from (a
    refined query can rank them out, and the answer they gave with them)."""
    present = {p.chunk_id for p in passages}
    return [*passages, *(p for p in earlier if p.chunk_id in cited and p.chunk_id not in present)]

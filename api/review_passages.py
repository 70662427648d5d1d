"""The cited passages in their documents, for the reviewer page: cited chunks flagged, quotes marked.

The text is the documents' own, so it is escaped here and only the `<mark>` tags are trusted:
the template prints the result as it is, with autoescaping still on for everything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from api.schemas import CitationOut


@dataclass(frozen=True)
class ChunkView:
    chunk_id: str
    html: Markup
    cited: bool


@dataclass(frozen=True)
class DocumentView:
    document_id: str
    title: str
    chunks: list[ChunkView]
    truncated: bool  # only the first chunks were kept for the page


@dataclass(frozen=True)
class Passages:
    documents: list[DocumentView] = field(default_factory=list)
    unplaced: list[CitationOut] = field(default_factory=list)  # quotes shown alone: not found in place


def place_citations(context: dict[str, Any], citations: Sequence[CitationOut]) -> Passages:
    """Each cited document's chunks in order, with every citation's quote marked where it is found."""
    quotes: dict[str, list[str]] = {}
    for citation in citations:
        quotes.setdefault(citation.chunk_id, []).append(citation.quote)
    placed: set[tuple[str, str]] = set()
    documents = []
    for document in context.get("documents", []):
        chunks = []
        for chunk in document.get("chunks", []):
            chunk_id = chunk["chunk_id"]
            html, found = mark_quotes(chunk["text"], quotes.get(chunk_id, []))
            placed.update((chunk_id, quote) for quote in found)
            chunks.append(ChunkView(chunk_id, html, cited=chunk_id in quotes))
        documents.append(
            DocumentView(
                document["document_id"], document.get("title", ""), chunks, bool(document.get("truncated"))
            )
        )
    unplaced = [c for c in citations if (c.chunk_id, c.quote) not in placed]
    return Passages(documents, unplaced)


def mark_quotes(text: str, quotes: Iterable[str]) -> tuple[Markup, set[str]]:
    """`text` escaped, each quote's first occurrence in `<mark>`; and the quotes that were found."""
    spans, found = [], set()
    for quote in quotes:
        start = text.find(quote.strip()) if quote.strip() else -1
        if start >= 0:
            spans.append((start, start + len(quote.strip())))
            found.add(quote)
    html, at = Markup(""), 0
    for start, end in _merged(spans):
        html += escape(text[at:start]) + Markup("<mark>") + escape(text[start:end]) + Markup("</mark>")
        at = end
    return html + escape(text[at:]), found


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # Two quotes may overlap in one chunk: one mark over both, never marks inside marks.
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged

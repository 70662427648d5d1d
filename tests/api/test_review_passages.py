"""The reviewer page's passages: quotes marked in place, the documents' text escaped."""

from __future__ import annotations

import pytest

from api.review_passages import mark_quotes, place_citations
from api.schemas import CitationOut

pytestmark = pytest.mark.unit


def citation(chunk_id: str, quote: str, document_id: str = "doc") -> CitationOut:
    return CitationOut(
        document_id=document_id,
        chunk_id=chunk_id,
        quote=quote,
        version="v1",
        file_hash="",
        modified_at=None,
        stale=False,
        stale_reason="",
        current_version="v1",
    )


def test_the_text_is_escaped_before_the_quote_is_marked() -> None:
    html, found = mark_quotes("<b>Aurora</b> owns Kestrel & Wren.", ["owns Kestrel & Wren."])
    assert str(html) == "&lt;b&gt;Aurora&lt;/b&gt; <mark>owns Kestrel &amp; Wren.</mark>"
    assert found == {"owns Kestrel & Wren."}


def test_overlapping_quotes_share_one_mark_and_a_missing_quote_marks_nothing() -> None:
    html, found = mark_quotes("one two three four", ["one two", "two three", "five"])
    assert str(html) == "<mark>one two three</mark> four"
    assert found == {"one two", "two three"}


def test_documents_keep_their_chunks_in_order_and_unplaced_quotes_are_listed() -> None:
    context = {
        "documents": [
            {
                "document_id": "doc",
                "title": "Teams",
                "chunks": [
                    {"chunk_id": "doc:0", "text": "Intro."},
                    {"chunk_id": "doc:1", "text": "Aurora owns Kestrel."},
                ],
                "truncated": True,
            }
        ]
    }
    cited = [citation("doc:1", "Aurora owns Kestrel."), citation("doc:1", "not in the text")]
    passages = place_citations(context, cited)
    (document,) = passages.documents
    assert (document.title, document.truncated) == ("Teams", True)
    assert [(c.chunk_id, c.cited) for c in document.chunks] == [("doc:0", False), ("doc:1", True)]
    assert str(document.chunks[1].html) == "<mark>Aurora owns Kestrel.</mark>"
    assert [c.quote for c in passages.unplaced] == ["not in the text"]


def test_without_a_context_every_quote_is_shown_alone() -> None:
    cited = [citation("doc:1", "Aurora owns Kestrel.")]
    passages = place_citations({}, cited)
    assert passages.documents == [] and passages.unplaced == cited

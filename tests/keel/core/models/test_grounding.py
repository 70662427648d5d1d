"""Grounding on the real MiniLM encoder: supported, relevant drafts score higher."""

from __future__ import annotations

import pytest

from keel.core.chunks import Citation, ScoredChunk
from keel.core.models import Generation
from keel.core.models.answer_fit import shown_as
from keel.core.models.base import Embed
from keel.core.models.grounding import assess
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder

pytestmark = pytest.mark.unit

PASSAGES = [
    ScoredChunk(
        document_id="team-aurora",
        chunk_id="team-aurora#0",
        title="Team Aurora",
        text="Team Aurora is led by Maya Okafor. The team owns the Kestrel platform.",
    ),
    ScoredChunk(
        document_id="policy-expense",
        chunk_id="policy-expense#0",
        title="Expense Policy",
        text="The daily meal limit is 60 euros. Receipts are required for every claim.",
    ),
]


@pytest.fixture(scope="module")
def embed() -> Embed:
    return DenseEncoder(Settings().embedding_model_path()).encode_documents


def _draft(answer: str, quotes: list[tuple[str, str]]) -> Generation:
    citations = [Citation(document_id=c.split("#")[0], chunk_id=c, quote=q) for c, q in quotes]
    return Generation(answer=answer, citations=citations, model="test")


def test_copied_relevant_answer_scores_higher_than_an_unrelated_pair(embed: Embed) -> None:
    quote = "Team Aurora is led by Maya Okafor."
    grounded = assess("Who leads Team Aurora?", _draft(quote, [("team-aurora#0", quote)]), PASSAGES, embed)
    unrelated = assess(
        "Which gardening tools do I need for tomatoes?",
        _draft(
            "Tomatoes grow best in warm, sunny gardens.",
            [("policy-expense#0", "Receipts are required for every claim.")],
        ),
        PASSAGES,
        embed,
    )
    assert grounded.support == 1.0
    assert grounded.relevance > 0.5
    assert 0.0 <= unrelated.score < grounded.score <= 1.0
    assert unrelated.support < grounded.support


def test_empty_draft_scores_zero(embed: Embed) -> None:
    empty = assess("Who leads Team Aurora?", _draft("", []), PASSAGES, embed)
    assert (empty.score, empty.support, empty.relevance) == (0.0, 0.0, 0.0)


def test_no_passages_score_zero(embed: Embed) -> None:
    quote = "Team Aurora is led by Maya Okafor."
    grounding = assess("Who leads Team Aurora?", _draft(quote, [("team-aurora#0", quote)]), [], embed)
    assert grounding.score == 0.0


def test_paraphrase_is_supported_and_an_invented_sentence_is_not(embed: Embed) -> None:
    quote = [("team-aurora#0", "Team Aurora is led by Maya Okafor.")]
    paraphrase = assess(
        "Who leads Team Aurora?", _draft("Maya Okafor leads Team Aurora.", quote), PASSAGES, embed
    )
    invented = assess(
        "Who leads Team Aurora?",
        _draft("Maya Okafor leads Team Aurora. The team moved to Lisbon in 2019.", quote),
        PASSAGES,
        embed,
    )
    assert paraphrase.support == 1.0
    assert invented.support == 0.5
    assert invented.score < paraphrase.score


def test_a_quote_shown_without_its_asides_is_still_that_quote(embed: Embed) -> None:
    quote = "Nola Varga (born 4 May 1961 in Szeged) is a Hungarian film director."
    passages = [ScoredChunk(document_id="nola", chunk_id="nola#0", title="Nola Varga", text=quote)]
    draft = _draft("Nola Varga is a Hungarian film director.", [("nola#0", quote)])
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return embed(texts)

    grade = assess("What does Nola Varga do?", draft, passages, counting)
    assert grade.support == 1.0
    # Recognised as the quote, not compared as a paraphrase: no passage sentence was encoded.
    assert calls == [["What does Nola Varga do?", quote]]


def test_a_quote_cut_short_at_a_clause_is_still_that_quote(embed: Embed) -> None:
    quote = (
        "Jerry Glanville is a former football player and coach, a former racing driver, and a sportscaster."
    )
    passages = [ScoredChunk(document_id="jg", chunk_id="jg#0", title="Jerry Glanville", text=quote)]
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return embed(texts)

    question = "Who is Jerry Glanville?"
    cut = assess(
        question,
        _draft("Jerry Glanville is a former football player and coach …", [("jg#0", quote)]),
        passages,
        counting,
    )
    assert cut.support == 1.0
    assert calls == [[question, quote]]  # recognised, not compared as a paraphrase
    # A cut is that quote only when it opens as the quote does (after its subject's "X: " or not).
    assert shown_as("Jerry Glanville is a former football player and coach …", quote)
    assert shown_as("Glanville: Jerry Glanville is a former football player …", quote)
    assert not shown_as("Jerry Glanville is a famous chef …", quote)
    assert not shown_as("a former racing driver …", quote)  # the quote's words, not its opening
    assert not shown_as("Jerry Glanville …", quote)  # too short to tell

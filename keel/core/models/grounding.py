"""How well a draft is supported by its passages, and whether its quotes answer the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel.core.chunks import ScoredChunk
from keel.core.models.answer_fit import coverage, fit, names_subject, shown_as, terms, title_terms
from keel.core.models.base import Embed, Generation, dot, split_sentences

# An answer sentence in the model's own words counts as supported when some passage sentence is
# this close (all-MiniLM-L6-v2 cosine).
_SUPPORT_COSINE = 0.7


@dataclass(frozen=True)
class Grounding:
    score: float  # support × relevance, in [0, 1]
    support: float  # share of answer sentences backed by a passage sentence
    relevance: float  # whether the cited quotes answer the question: answer_fit.fit


def assess(question: str, draft: Generation, passages: Sequence[ScoredChunk], embed: Embed) -> Grounding:
    """Support (is every answer sentence in the passages?) times fit (do the cited quotes answer
    the question: their closeness to it, the share of its terms they cover with their documents'
    titles, and whether a cited document is about what it names). A quote-perfect answer to
    another question scores low: quoting is not answering."""
    answer_sentences = split_sentences(draft.answer)
    quotes = [c.quote for c in draft.citations]
    if not answer_sentences or not passages or not quotes:
        return Grounding(score=0.0, support=0.0, relevance=0.0)
    # A sentence quoted verbatim from a passage is supported by definition: only the rest
    # (an LLM's own wording) is compared with the passage sentences, which costs embeddings.
    corpus = "\n".join(p.text for p in passages)
    # A quote shown after its document's subject ("Gal Gadot: She …"), without some of its
    # parenthetical asides, or cut short at a clause, is still that quote.
    verbatim = [q for q in quotes if q in corpus]
    paraphrased = [
        s for s in answer_sentences if s not in corpus and not any(shown_as(s, q) for q in verbatim)
    ]
    passage_sentences = [s for p in passages for s in split_sentences(p.text)] if paraphrased else []
    vectors = embed([question, *quotes, *paraphrased, *passage_sentences])
    asked_vector, rest = vectors[0], vectors[1:]
    quote_vectors, rest = rest[: len(quotes)], rest[len(quotes) :]
    own, sources = rest[: len(paraphrased)], rest[len(paraphrased) :]
    supported = len(answer_sentences) - len(paraphrased)
    supported += sum(1 for a in own if sources and max(dot(a, s) for s in sources) >= _SUPPORT_COSINE)
    support = supported / len(answer_sentences)
    titles = {p.chunk_id: p.title for p in passages}
    cited_titles = [titles.get(c.chunk_id, "") for c in draft.citations]
    asked = terms(question)
    covered = coverage(
        asked,
        set().union(*(terms(quote) for quote in quotes)),
        set().union(*(title_terms(title) for title in cited_titles)),
    )
    relevance = fit(
        max(dot(asked_vector, v) for v in quote_vectors),
        covered,
        any(names_subject(asked, title) for title in cited_titles),
    )
    return Grounding(
        score=round(support * relevance, 4), support=round(support, 4), relevance=round(relevance, 4)
    )

"""How well a draft is supported by its passages and relevant to the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel.models.base import Embed, Generation, Passage, dot, split_sentences

# all-MiniLM-L6-v2 cosines: unrelated text sits near 0.1, a sentence that answers a
# question usually above 0.5. Relevance ramps linearly between these two points.
_RELEVANCE_FLOOR = 0.15
_RELEVANCE_FULL = 0.55
# An answer sentence counts as supported when some passage sentence is this close.
_SUPPORT_COSINE = 0.7


@dataclass(frozen=True)
class Grounding:
    score: float  # support × relevance, in [0, 1]
    support: float  # share of answer sentences backed by a passage sentence
    relevance: float  # how closely the cited quotes address the question


def assess(question: str, draft: Generation, passages: Sequence[Passage], embed: Embed) -> Grounding:
    answer_sentences = split_sentences(draft.answer)
    passage_sentences = [s for p in passages for s in split_sentences(p.text)]
    quotes = [c.quote for c in draft.citations]
    if not answer_sentences or not passage_sentences or not quotes:
        return Grounding(score=0.0, support=0.0, relevance=0.0)
    vectors = embed([question, *answer_sentences, *passage_sentences, *quotes])
    q = vectors[0]
    answers = vectors[1 : 1 + len(answer_sentences)]
    sources = vectors[1 + len(answer_sentences) : 1 + len(answer_sentences) + len(passage_sentences)]
    quote_vectors = vectors[1 + len(answer_sentences) + len(passage_sentences) :]
    supported = sum(1 for a in answers if max(dot(a, s) for s in sources) >= _SUPPORT_COSINE)
    support = supported / len(answers)
    best_quote = max(dot(q, v) for v in quote_vectors)
    relevance = min(1.0, max(0.0, (best_quote - _RELEVANCE_FLOOR) / (_RELEVANCE_FULL - _RELEVANCE_FLOOR)))
    return Grounding(
        score=round(support * relevance, 4), support=round(support, 4), relevance=round(relevance, 4)
    )

"""How well a draft is supported by its passages and relevant to the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel.core.chunks import ScoredChunk
from keel.core.models.base import Embed, Generation, dot, split_sentences

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


def assess(question: str, draft: Generation, passages: Sequence[ScoredChunk], embed: Embed) -> Grounding:
    answer_sentences = split_sentences(draft.answer)
    quotes = [c.quote for c in draft.citations]
    if not answer_sentences or not passages or not quotes:
        return Grounding(score=0.0, support=0.0, relevance=0.0)
    # A sentence quoted verbatim from a passage is supported by definition: only the rest
    # (an LLM's own wording) is compared with the passage sentences, which costs embeddings.
    corpus = "\n".join(p.text for p in passages)
    paraphrased = [s for s in answer_sentences if s not in corpus]
    passage_sentences = [s for p in passages for s in split_sentences(p.text)] if paraphrased else []
    vectors = embed([question, *quotes, *paraphrased, *passage_sentences])
    q, rest = vectors[0], vectors[1:]
    quote_vectors, rest = rest[: len(quotes)], rest[len(quotes) :]
    own, sources = rest[: len(paraphrased)], rest[len(paraphrased) :]
    supported = len(answer_sentences) - len(paraphrased)
    supported += sum(1 for a in own if sources and max(dot(a, s) for s in sources) >= _SUPPORT_COSINE)
    support = supported / len(answer_sentences)
    best_quote = max(dot(q, v) for v in quote_vectors)
    relevance = min(1.0, max(0.0, (best_quote - _RELEVANCE_FLOOR) / (_RELEVANCE_FULL - _RELEVANCE_FLOOR)))
    return Grounding(
        score=round(support * relevance, 4), support=round(support, 4), relevance=round(relevance, 4)
    )

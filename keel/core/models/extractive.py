"""An answerer that needs no LLM: the best-supported sentences of the reranked passages.

For a multi-hop question it follows the chain: after the best sentence, each next
sentence must name an entity the previous one introduced ("Halcyon depends on
Kestrel" → "Kestrel is owned by Team Aurora" → "Team Aurora is led by Maya Okafor").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from keel.core.chunks import Citation, ScoredChunk
from keel.core.models.base import Embed, Generation, dot, is_multi_hop, split_sentences

NO_ANSWER = "The indexed documents do not answer this question."
# Term coverage separates sentences MiniLM finds equally close ("depends on" vs "sponsored by").
_COVERAGE_WEIGHT = 0.5
# Below this MiniLM cosine no sentence addresses the question (off-corpus questions score
# 0.1-0.2, answerable ones 0.4 and up): say so rather than quote the least-bad sentence.
MIN_COSINE = 0.3
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "has", "have", "how",
        "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when",
        "where", "which", "who", "whom", "whose", "why", "with",
    }
)  # fmt: skip

# (text, names already known from the context) → entity names in the text.
FindEntities = Callable[[str, Sequence[str]], list[str]]


_IRREGULAR = {"led": "lead", "ran": "run", "held": "hold", "built": "build", "kept": "keep", "paid": "pay"}


def _stem(word: str) -> str:
    # Crude on purpose: "owns"/"owned"/"owning" → "own" is all the matching needs.
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}


_RELATIVE = re.compile(r"\b(that|which|whose|where|who)\b", re.IGNORECASE)
# A sentence opening with a pronoun does not name its subject: a poor sentence to answer with.
_PRONOUN_START = re.compile(r"^(he|she|it|they|this|these|its|their|his|her)\b", re.IGNORECASE)
_PRONOUN_PENALTY = 0.1


def _first_hop(question: str, find: FindEntities) -> str:
    """The innermost clause, around the question's last named entity: the hop to answer first.

    "…the system Project Halcyon depends on?" → "Project Halcyon depends on";
    "How many engineers are in the team that owns Wayfinder?" → "that owns Wayfinder".
    """
    names = find(question, ())
    if not names:
        return ""
    entity_at, entity = max((question.rfind(n), n) for n in names)
    tail = question[entity_at:].rstrip("?. ")
    if terms(tail) - terms(entity):
        return tail  # the entity's own clause carries the relation: "Project Halcyon depends on"
    clauses = [m.start() for m in _RELATIVE.finditer(question) if 0 < m.start() < entity_at]
    return question[clauses[-1] if clauses else entity_at :].rstrip("?. ")


def _distinct_sentences(passages: Sequence[ScoredChunk]) -> list[tuple[ScoredChunk, str]]:
    """Each sentence once, from the best-ranked passage that has it: neighbouring chunks overlap
    (and documents repeat each other), and a sentence quoted twice made answers like "X. X."."""
    seen: set[str] = set()
    candidates = []
    for passage in passages:
        for sentence in split_sentences(passage.text):
            key = " ".join(sentence.split()).casefold()
            if key not in seen:
                seen.add(key)
                candidates.append((passage, sentence))
    return candidates


def _coverage(asked: set[str], sentence: str) -> float:
    return _COVERAGE_WEIGHT * len(asked & terms(sentence)) / max(1, len(asked))


class ExtractiveProvider:
    """Quotes the sentences closest to the question; every sentence is its own citation."""

    name = "extractive"
    model = "extractive-minilm"
    max_output_tokens = 0  # it writes nothing of its own: its answer is quoted sentences

    def __init__(
        self,
        embed: Embed,
        find_entities: FindEntities | None = None,
        max_sentences: int = 3,
        keep_ratio: float = 0.75,
        min_cosine: float = MIN_COSINE,
    ) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 0.0 < keep_ratio <= 1.0:
            raise ValueError("keep_ratio must be in (0, 1]")
        self._embed = embed
        self._find_entities = find_entities
        self._max_sentences = max_sentences
        self._keep_ratio = keep_ratio
        self._min_cosine = min_cosine

    def prompt_texts(self, question: str, passages: Sequence[ScoredChunk]) -> list[str]:
        return [question, *(p.text for p in passages)]

    def revise(self, question: str, instruction: str, passages: Sequence[ScoredChunk]) -> Generation:
        """The question's answer, then the sentences the instruction asks for that it lacks: one
        query of both would let the instruction's words outvote the question's and drop the
        sentences that answered it."""
        answered = self.generate(question, passages)
        added = self.generate(instruction, passages)
        kept = [c for c in answered.citations]
        quotes = {c.quote for c in kept}
        kept += [c for c in added.citations if c.quote not in quotes]
        if not kept:
            return answered
        return Generation(answer=" ".join(c.quote for c in kept), citations=kept, model=self.model)

    def generate(self, question: str, passages: Sequence[ScoredChunk]) -> Generation:
        candidates = _distinct_sentences(passages)
        if not candidates:
            return Generation(answer=NO_ANSWER, citations=[], model=self.model)
        # Chains are followed only for multi-hop questions, and only with an entity finder.
        find = self._find_entities if is_multi_hop(question) else None
        first_hop = _first_hop(question, find) if find is not None else ""
        # One encoder call for everything: the sentences are embedded once, whatever they are scored against.
        vectors = self._embed([question, first_hop or question, *(s for _, s in candidates)])
        cosines, scores = self._scores(question, vectors[0], vectors[2:], passages, candidates)
        if max(cosines) < self._min_cosine:
            return Generation(
                answer=NO_ANSWER, citations=[], model=self.model, notes=["no sentence is close enough"]
            )
        if find is not None:
            anchor = (
                self._scores(first_hop, vectors[1], vectors[2:], passages, candidates)[1]
                if first_hop
                else scores
            )
            chosen = self._follow_chain(question, candidates, scores, anchor, find)
        else:
            chosen = self._best(scores)
        citations = [
            Citation(
                document_id=candidates[i][0].document_id,
                chunk_id=candidates[i][0].chunk_id,
                quote=candidates[i][1],
            )
            for i in chosen
        ]
        answer = " ".join(c.quote for c in citations)
        # No usage of its own to report: the generate step counts tokens with the encoder's tokenizer.
        return Generation(answer=answer, citations=citations, model=self.model)

    @staticmethod
    def _scores(
        question: str,
        question_vector: list[float],
        sentence_vectors: list[list[float]],
        passages: Sequence[ScoredChunk],
        candidates: list[tuple[ScoredChunk, str]],
    ) -> tuple[list[float], list[float]]:
        """Cosines to the question; and scores: cosine + a small prior for the reranker's order + coverage."""
        asked = terms(question)
        rank = {p.chunk_id: i for i, p in enumerate(passages)}
        cosines = [dot(question_vector, vector) for vector in sentence_vectors]
        scores = [
            cosine
            + 0.02 * (len(passages) - rank[passage.chunk_id]) / len(passages)
            + _coverage(asked, sentence)
            - (_PRONOUN_PENALTY if _PRONOUN_START.match(sentence) else 0.0)
            for (passage, sentence), cosine in zip(candidates, cosines, strict=True)
        ]
        return cosines, scores

    def _best(self, scores: list[float]) -> list[int]:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        best = scores[order[0]]
        return [i for i in order[: self._max_sentences] if scores[i] >= best * self._keep_ratio]

    def _follow_chain(
        self,
        question: str,
        candidates: list[tuple[ScoredChunk, str]],
        scores: list[float],
        anchor: list[float],
        find: FindEntities,
    ) -> list[int]:
        # Names found anywhere in the passages are known in each sentence: a sentence that opens
        # with a one-word name ("Kestrel is owned by …") gives no cue of its own.
        known = find(" ".join(p.text for p in dict.fromkeys(p for p, _ in candidates)), ())
        names = [{e.casefold() for e in find(s, known)} for _, s in candidates]
        seen = {e.casefold() for e in find(question, known)}
        # The chain starts at a sentence that names what the question names, when there is one.
        start = [i for i in range(len(candidates)) if names[i] & seen] or list(range(len(candidates)))
        chosen = [max(start, key=lambda i: anchor[i])]
        asked = terms(question)
        while len(chosen) < self._max_sentences:
            # Terms earlier hops already answered no longer count: the next hop must add the rest.
            covered = set().union(*(terms(candidates[i][1]) for i in chosen))
            remaining = asked - covered
            bridge = names[chosen[-1]] - seen
            pool = [i for i in range(len(candidates)) if i not in chosen and names[i] & bridge]
            # A hop moves forward: prefer sentences that do not go back to entities already covered.
            forward = [i for i in pool if not names[i] & seen]
            pool = forward or pool
            if not pool:
                break
            seen |= bridge
            chosen.append(
                max(
                    pool,
                    key=lambda i: (
                        scores[i]
                        - _coverage(asked, candidates[i][1])
                        + _coverage(remaining, candidates[i][1])
                    ),
                )
            )
        return chosen

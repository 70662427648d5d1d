"""An answerer that needs no LLM: the sentences of the reranked passages that answer the question.

It reads the question's structure, not any corpus's wording:
  - Every sentence is scored against the question: MiniLM cosine, plus how much of the question's
    terms it covers (its document's title counts half: "He was born in Leeds" is about the
    article it sits in), plus a small prior for the reranker's order.
  - A question whose answer sits one hop away (a bridge: "the director of film X was born
    where?") or that compares two things ("which started first, A or B?") needs two documents. So
    the best *pair* of sentences is chosen: both well scored, together covering the question, and
    from two linked documents — one names the other's subject (its title or a shared entity), or
    the question names both — or from one document (no link needed); a pair of unlinked documents
    costs. A chain goes one hop further when a third linked sentence covers what the pair left out
    ("the team that owns the system X depends on" → X's, the system's, the team's).
  - A question with a relative clause ("Who leads the team that Kwame Adeyemi is a member of?")
    is read in two parts: the first hop answers the clause and finds the bridge (his team), near
    the clause's own words; the second answers the main part about the bridge, not about the
    clause's subject. When that reading leads to no answer, the question is read whole.
  - Relations are read in both directions: a sentence with the question's name on the other side
    of its relation word ("Cinder depends on …" for "which systems depend on Cinder?", passives
    turned round) is scored down.
  - A lone sentence is the answer when no partner adds anything: single-fact questions stay short.
  - A quote that does not name its document's subject is shown after it ("Ilse Varga: She …"),
    and without the parenthetical asides and trailing clauses that hold nothing the question
    asks for (the citation keeps it whole).
Each sentence is quoted once, verbatim, and is its own citation. The answer states the fact: a
bridge's leading hop ("X is a film directed by Y.") is cited but not stated, so a two-hop answer
reads "Y was born in Z." with both documents cited; a comparison states both sides. Nothing here
is keyed to a corpus: the weights were set on HotpotQA dev (bench/answer_offline.py) and checked on
the demo questions.

`fit` (keel/core/models/answer_fit.py, shared with the grade step) measures whether the quoted
sentences answer the question; below `min_fit` the answerer says the documents do not answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keel.core.chunks import Citation, ScoredChunk
from keel.core.models.answer_fit import (
    MIN_FIT,
    coverage,
    display_title,
    fit,
    mentions,
    names_subject,
    subject_names,
    terms,
    title_terms,
    without_asides,
    without_tail,
)
from keel.core.models.base import Embed, Generation, dot, split_sentences

NO_ANSWER = "The indexed documents do not answer this question."
# Term coverage separates sentences MiniLM finds equally close ("depends on" vs "sponsored by").
_COVERAGE_WEIGHT = 0.8
# A partner sentence that names the other's subject, or shares a name with it that the question
# does not: the hop between two documents.
_LINK_BONUS = 0.25
# Two documents with no link between them: a sentence about another "Team Quill" is a distractor
# when the question asks about the team a first hop names.
_UNLINKED_COST = 0.1
# Candidates a pair is chosen among (the best-scored sentences): bounds the pair search.
_PAIR_POOL = 30
# Two sentences closer than cosine 0.5 to each other say much the same: the pair loses this
# times the excess.
_REDUNDANCY = 1.0
# Closer than this, two sentences state one fact (documents repeat each other): never a pair.
_SAME_FACT = 0.85
# A partner that is no hop joins only when it covers this much more of the question.
_PARTNER_GAIN = 0.05
# A question with a relative clause is a bridge in two parts: "Who leads the team | that Kwame
# Adeyemi is a member of?" The clause finds the bridge (his team); the main part asks about it.
_RELATIVE = re.compile(r"^(?P<main>\S.*?\S)\s+(?:that|who|whom)\s+(?P<clause>\S.*)$", re.IGNORECASE)
# Weight of how well a linked pair reads as clause-then-main (see `_Bridge.fit`).
_BRIDGE_WEIGHT = 0.4
# Within that, the weight of the clause's words standing next to the bridge name.
_NEAR_BRIDGE_WEIGHT = 1.5
# A sentence relating a name the question names the other way round ("Cinder does not depend on
# any other system" for "which systems depend on Cinder?") loses this.
_DIRECTION_COST = 0.2
# A relation word this close to a name (in words) says which side of the relation the name is on.
_RELATION_WINDOW = 3
_TOKEN = re.compile(r"[a-z0-9]+")
# (text, names already known from the context) → entity names in the text.
FindEntities = Callable[[str, Sequence[str]], list[str]]


# A sentence opening with a pronoun does not name its subject: its document's title does.
_PRONOUN_START = re.compile(r"^(he|she|it|they|this|these|its|their|his|her)\b", re.IGNORECASE)
_PRONOUN_PENALTY = 0.05
# A sentence holding the kind of fact asked for (a number for "how many", a date for "when", a
# name the question lacks for "who"/"which"), that the question does not already state.
_TYPE_BONUS = 0.2
# What kind of fact a question asks for, from its wording: a quantity, a time, or a name.
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|old|tall|far|large|big|high)\b|\bwhat (number|percentage|population)\b",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(
    r"^\s*when\b|\b(what|which) (year|date|month|day|decade|century)\b|\bwhen\b", re.IGNORECASE
)
_ASKS_YES_NO = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", re.IGNORECASE
)
_NUMBER = re.compile(r"\d[\d,.]*")
_INTEGER = re.compile(r"\d+")
_NUMBER_WORD = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundred|thousand|million|billion)\b",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b\d{3,4}s?\b|\b(January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
# An aside of capitalised words only: " (Canary Islands, Spain)", " (IBM)".
_NAMES_ONLY = re.compile(r"\s*\(\s*[A-Z][\w'&.-]*(?:[\s,]+[A-Z][\w'&.-]*)*\s*\)")
_CAPITALISED = re.compile(r"(?<!^)(?<![.!?] )\b[A-Z][\w'&.-]*")
# A question's wh-phrase: its first few terms after "what/which/how many", up to a function word.
_FOCUS = re.compile(
    r"\b(?P<wh>what|which|whose|how (?:many|much|long|old|tall|far|large|big|high))\s+(?=(?P<rest>[^?]*))",
    re.IGNORECASE,
)
_AFTER_PREPOSITION = re.compile(
    r"(?<!^)(?<!\w)(in|of|by|for|from|with|to|at|on|during|under|after|before)\s+$", re.IGNORECASE
)
_FOCUS_SKIP = frozenset({"is", "was", "are", "were", "the", "a", "an"})
_FOCUS_TERMS = 4


def answer_type(question: str) -> str:
    """What the answer to `question` must hold: "number", "time", "yes/no" or "name"."""
    if _ASKS_YES_NO.match(question):
        return "yes/no"
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_TIME.search(question):
        return "time"
    return "name"


def holds_type(sentence: str, kind: str, question: str) -> bool:
    """Whether `sentence` has something of the kind `kind` that the question does not already
    say: the answer is what the question lacks."""
    asked = question.casefold()
    if kind == "number":
        found = _NUMBER.findall(sentence) + _NUMBER_WORD.findall(sentence)
    elif kind == "time":
        found = [m.group() for m in _TIME.finditer(sentence)]
    elif kind == "name":
        found = _CAPITALISED.findall(sentence) + _INTEGER.findall(sentence)
    else:
        return True
    return any(f.casefold().strip(".") not in asked for f in found if f)


@dataclass
class _Sentence:
    passage: ScoredChunk
    text: str
    terms: set[str]
    context: set[str]  # its document title's terms
    tokens: list[str]  # its words, casefolded, in order: where a name stands
    names: set[str] = field(default_factory=set)  # entity names it mentions, casefolded
    vector: list[float] = field(default_factory=list)
    cosine: float = 0.0
    covered: float = 0.0  # coverage of the question
    score: float = 0.0


def relation_sides(text: str, name: str, relation: set[str]) -> dict[str, bool]:
    """For each relation term (stemmed) near `name` in `text`: whether the name is its object
    ("depend on Cinder", "Cinder is used by": True) rather than its subject ("Cinder depends
    on", "sponsored by Oren Delacroix": False). Word order, turned round by a passive "by" right
    after the relation word."""
    return _relation_sides(_TOKEN.findall(text.casefold()), name, relation)


def _relation_sides(tokens: list[str], name: str, relation: set[str]) -> dict[str, bool]:
    words = _TOKEN.findall(name)
    starts = _starts(tokens, words)
    if not starts:
        return {}
    first, last = starts[0], starts[0] + len(words)
    sides: dict[str, bool] = {}
    for k in range(max(0, first - _RELATION_WINDOW), min(len(tokens), last + _RELATION_WINDOW)):
        stem = terms(tokens[k])
        if first <= k < last or not stem & relation:
            continue
        passive = k + 1 < len(tokens) and tokens[k + 1] == "by"
        sides.setdefault(next(iter(stem & relation)), (k < first) != passive)
    return sides


def question_focus(question: str) -> set[str]:
    """The terms of the question's wh-phrase, what its answer is: "attended which British
    university?" → {british, university}; "located in what city?" → {city}. Empty when the
    question has none ("who…", "where…")."""
    matches = list(_FOCUS.finditer(question))
    # "The battle in which X lost his life secured what?": a "which" after a preposition opens a
    # relative clause when another wh-word follows; "… a mission with which tribe?" has none.
    found = next(
        (m for n, m in enumerate(matches) if n == len(matches) - 1 or not _relative(question, m)), None
    )
    if found is None:
        return set()
    words = found["rest"].split()
    while words and words[0].casefold() in _FOCUS_SKIP:
        words = words[1:]
    focus: list[str] = []
    for word in words:
        stems = terms(word)
        # The phrase ends at a function word: "how many staff work | in the office …".
        if not stems or len(focus) >= _FOCUS_TERMS:
            break
        focus += [t for t in stems if t not in focus]
    return set(focus[:_FOCUS_TERMS])


def _relative(question: str, wh: re.Match[str]) -> bool:
    """Whether a "which"/"whose" can open a relative clause: after a preposition ("The battle in
    which X lost his life …"), not at the question's start ("In which role …?")."""
    if wh["wh"].casefold() not in ("which", "whose"):
        return False
    return _AFTER_PREPOSITION.search(question[: wh.start()]) is not None


def _names_subject_of(s: _Sentence, t: _Sentence) -> bool:
    """Whether `s` names the subject of `t`'s document."""
    return any(mentions(s.text, n) for n in subject_names(t.passage.title))


@dataclass(frozen=True)
class _Choice:
    """The sentences an answer cites, in hop order, and those it states: a bridge's leading hop
    is cited but not stated ("Y was born in Z." for "where was the director of film X born?",
    citing "X is a film directed by Y.")."""

    cited: list[_Sentence]
    stated: list[_Sentence]

    @classmethod
    def whole(cls, sentences: list[_Sentence]) -> _Choice:
        """Every sentence cited is stated."""
        return cls(sentences, sentences)


@dataclass(frozen=True)
class _Bridge:
    """A bridge question's two parts: the relative clause's terms and names, and the main part's
    terms."""

    main: set[str]
    clause: set[str]
    clause_names: set[str]
    clause_words: set[str]  # the clause's terms that are not its names'

    def fit(self, first: _Sentence, second: _Sentence) -> float:
        """How well `first` answers the clause and `second` the main part, and how close, in
        `first`, the name that leads to `second` stands to the clause's own words: of "Atlas
        Portal depends on Wayfinder for arrival times and on Sablegate for customer sign-in", the
        clause "that Atlas Portal depends on for customer sign-in" leads to Sablegate. A second
        hop that names the clause's own subject answers something else about it ("Team Meridian
        owns Atlas Portal" for "the team that owns the system Atlas Portal depends on")."""
        about_clause = any(mentions(second.text, n) for n in self.clause_names)
        return (
            coverage(self.clause, first.terms, first.context)
            + coverage(self.main, second.terms, second.context)
            + _NEAR_BRIDGE_WEIGHT * self._near_bridge(first, second)
            - (1.0 if about_clause else 0.0)
        )

    def _near_bridge(self, first: _Sentence, second: _Sentence) -> float:
        """Share of the clause's words (its names aside) within a few words of where `first`
        names `second`'s subject, or a name both share."""
        if not self.clause_words:
            return 0.0
        links = [*subject_names(second.passage.title), *(first.names & second.names)]
        near = set().union(*(terms(" ".join(window)) for n in links for window in _around(first.tokens, n)))
        return len(self.clause_words & near) / len(self.clause_words)


def _starts(tokens: list[str], words: list[str]) -> list[int]:
    """Where the word sequence `words` (a name) starts in `tokens`."""
    if not words:
        return []
    return [i for i in range(len(tokens) - len(words) + 1) if tokens[i : i + len(words)] == words]


def _around(tokens: list[str], name: str) -> list[list[str]]:
    """The words within `_RELATION_WINDOW` of each mention of `name` (casefolded) in `tokens`."""
    words = _TOKEN.findall(name)
    return [
        tokens[max(0, i - _RELATION_WINDOW) : i + len(words) + _RELATION_WINDOW]
        for i in _starts(tokens, words)
    ]


def _distinct_sentences(passages: Sequence[ScoredChunk]) -> list[_Sentence]:
    """Each sentence once, from the best-ranked passage that has it: neighbouring chunks overlap
    (and documents repeat each other), and a sentence quoted twice made answers like "X. X."."""
    seen: set[str] = set()
    found = []
    for passage in passages:
        context = title_terms(passage.title)
        for sentence in split_sentences(passage.text):
            key = " ".join(sentence.split()).casefold()
            if key not in seen:
                seen.add(key)
                tokens = _TOKEN.findall(sentence.casefold())
                found.append(_Sentence(passage, sentence, terms(sentence), context, tokens))
    return found


def answer_text(quotes: Sequence[tuple[str, str]], question: str) -> str:
    """The (quote, its document's title) pairs as the answer shows them, in order; a quote that
    follows one of the same document continues it, so its subject is not shown again."""
    shown_quotes = []
    previous = None
    for quote, title in quotes:
        shown_quotes.append(shown(quote, title if title != previous else "", question))
        previous = title
    return " ".join(shown_quotes)


def shown(quote: str, title: str, question: str) -> str:
    """A quote as the answer shows it: without the parenthetical asides and the trailing clauses
    that hold nothing the question asks about (none of its terms, nor the kind of fact it asks
    for), and after its document's subject when it does not name it ("Gal Gadot: She started
    with …"), since a quote out of its article loses who "she" is. The citation keeps the whole
    quote."""
    kind = answer_type(question)
    asked = terms(question)
    # Question terms the quote has only in an aside ("Nola (born 1961)" for "born when?").
    asked_here = asked - terms(without_asides(quote))

    def wanted(aside: str) -> bool:
        return (
            bool(terms(aside) & asked_here)
            or (kind in ("number", "time") and holds_type(aside, kind, question))
            or _NAMES_ONLY.fullmatch(aside) is not None  # a place or another name: "(Canary Islands, Spain)"
        )

    def needed(clause: str) -> bool:
        return bool(terms(clause) & asked) or (kind != "yes/no" and holds_type(clause, kind, question))

    quote = without_tail(without_asides(quote, wanted), needed)
    subject = display_title(title)
    if not subject or any(mentions(quote, n) for n in subject_names(title)):
        return quote
    return f"{subject}: {quote}"


class ExtractiveProvider:
    """Quotes the sentences that answer the question; every sentence is its own citation."""

    name = "extractive"
    model = "extractive-minilm"
    max_output_tokens = 0  # it writes nothing of its own: its answer is quoted sentences

    def __init__(
        self,
        embed: Embed,
        find_entities: FindEntities | None = None,
        max_sentences: int = 3,
        min_fit: float = MIN_FIT,
    ) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        if not 0.0 <= min_fit < 1.0:
            raise ValueError("min_fit must be in [0, 1)")
        self._embed = embed
        self._find_entities = find_entities
        self._max_sentences = max_sentences
        self._min_fit = min_fit

    def prompt_texts(self, question: str, passages: Sequence[ScoredChunk]) -> list[str]:
        return [question, *(p.text for p in passages)]

    def revise(self, question: str, instruction: str, passages: Sequence[ScoredChunk]) -> Generation:
        """The question's answer, then the sentences the instruction asks for that it lacks: one
        query of both would let the instruction's words outvote the question's and drop the
        sentences that answered it."""
        answered = self.generate(question, passages)
        added = self.generate(instruction, passages)
        kept = list(answered.citations)
        quotes = {c.quote for c in kept}
        kept += [c for c in added.citations if c.quote not in quotes]
        if not kept:
            return answered
        titles = {p.chunk_id: p.title for p in passages}
        answer = answer_text([(c.quote, titles.get(c.chunk_id, "")) for c in kept], question)
        return Generation(answer=answer, citations=kept, model=self.model)

    def generate(self, question: str, passages: Sequence[ScoredChunk]) -> Generation:
        sentences = _distinct_sentences(passages)
        if not sentences:
            return Generation(answer=NO_ANSWER, citations=[], model=self.model)
        asked = terms(question)
        # One encoder call: the question and every sentence.
        vectors = self._embed([question, *(s.text for s in sentences)])
        rank = {p.chunk_id: i for i, p in enumerate(passages)}
        kind = answer_type(question)
        for sentence, vector in zip(sentences, vectors[1:], strict=True):
            sentence.vector = vector
            sentence.cosine = dot(vectors[0], vector)
            sentence.covered = coverage(asked, sentence.terms, sentence.context)
            sentence.score = (
                sentence.cosine
                + _COVERAGE_WEIGHT * sentence.covered
                + 0.02 * (len(passages) - rank[sentence.passage.chunk_id]) / len(passages)
                - (_PRONOUN_PENALTY if _PRONOUN_START.match(sentence.text) else 0.0)
                + (_TYPE_BONUS if holds_type(sentence.text, kind, question) else 0.0)
            )
        question_names = {n.casefold() for n in self._entities(question)}
        self._penalise_reversed(question, asked, question_names, sentences)
        if self._max_sentences > 1:  # names link the sentences of a pair
            self._name(question, sentences)
        bridge = self._bridge(question)
        choice = self._choose(question, asked, kind, question_names, sentences, bridge)
        quality = self._fit(asked, choice.cited)
        if quality < self._min_fit and bridge is not None:
            # The clause-then-main reading led nowhere (a relative clause can be read wrongly):
            # the question read whole may still be answered.
            choice = self._choose(question, asked, kind, question_names, sentences, None)
            quality = self._fit(asked, choice.cited)
        if quality < self._min_fit:
            note = f"no sentence answers the question well enough (fit {quality:.2f} < {self._min_fit})"
            return Generation(answer=NO_ANSWER, citations=[], model=self.model, notes=[note])
        citations = [
            Citation(document_id=s.passage.document_id, chunk_id=s.passage.chunk_id, quote=s.text)
            for s in choice.cited
        ]
        answer = answer_text([(s.text, s.passage.title) for s in choice.stated], question)
        # No usage of its own to report: the generate step counts tokens with the encoder's tokenizer.
        return Generation(answer=answer, citations=citations, model=self.model)

    # --- choosing the sentences ---------------------------------------------------------------

    @staticmethod
    def _fit(asked: set[str], chosen: list[_Sentence]) -> float:
        covered = coverage(
            asked, set().union(*(s.terms for s in chosen)), set().union(*(s.context for s in chosen))
        )
        named = any(names_subject(asked, s.passage.title) for s in chosen)
        return fit(max(s.cosine for s in chosen), covered, named)

    def _choose(
        self,
        question: str,
        asked: set[str],
        kind: str,
        question_names: set[str],
        sentences: list[_Sentence],
        bridge: _Bridge | None,
    ) -> _Choice:
        pool = sorted(sentences, key=lambda s: -s.score)[:_PAIR_POOL]
        best = pool[0]
        if self._max_sentences == 1:
            return _Choice.whole([best])
        named = self._named_in(question, pool)
        # What the question names: its entities, and the subjects of documents it names.
        asked_names = question_names | {
            n for s in pool for n in subject_names(s.passage.title) if mentions(question, n)
        }
        pairs = [
            (self._pair_score(a, b, asked, named, asked_names, bridge), a, b)
            for i, a in enumerate(pool)
            for b in pool[i + 1 :]
            if dot(a.vector, b.vector) < _SAME_FACT
        ]
        if not pairs:
            return _Choice.whole([best])
        _, a, b = max(pairs, key=lambda p: p[0])
        # A partner joins when it is a hop (linked, or the question names both documents) or when
        # it covers what the best sentence left out; otherwise one sentence answers.
        hop = self._hop(a, b, named, asked_names)
        gain = coverage(asked, a.terms | b.terms, a.context | b.context) - coverage(
            asked, best.terms, best.context
        )
        if not hop and gain < _PARTNER_GAIN:
            return _Choice.whole([best])
        chain = self._ordered(a, b, bridge if hop else None)
        if self._max_sentences >= 3:
            third = self._next_hop(chain, sentences, asked, asked_names)
            if third is not None:
                chain.append(third)
        # A comparison states both sides; two facts of one subject, or of unlinked documents,
        # both answer. A bridge's hop that only leads to the fact is cited, not stated.
        if not hop or {a.passage.document_id, b.passage.document_id} <= named:
            return _Choice.whole(chain)
        focus = question_focus(question)
        stated = [
            s for s in chain if not any(self._leads(s, t, focus, kind, question, asked_names) for t in chain)
        ]
        return _Choice(chain, stated or chain)

    def _pair_score(
        self,
        a: _Sentence,
        b: _Sentence,
        asked: set[str],
        named: set[str],
        asked_names: set[str],
        bridge: _Bridge | None,
    ) -> float:
        """Both sentences' closeness to the question, the coverage they reach together (what both
        cover counts once), less their closeness to each other (two wordings of one fact are no
        hop), and a bonus when they are linked (one names the other's subject, or they share a
        name the question does not have) or the question names both their documents. A linked
        pair of a bridge question also scores how well it reads as clause, then main part."""
        together = coverage(asked, a.terms | b.terms, a.context | b.context)
        linked = self._hop(a, b, named, asked_names)
        parts = max(bridge.fit(a, b), bridge.fit(b, a)) if bridge is not None and linked else 0.0
        return (
            _BRIDGE_WEIGHT * parts
            + a.score
            + b.score
            - _COVERAGE_WEIGHT * (a.covered + b.covered)
            + 2 * _COVERAGE_WEIGHT * together
            - _REDUNDANCY * max(0.0, dot(a.vector, b.vector) - 0.5)
            + (_LINK_BONUS if linked else 0.0)
            - (_UNLINKED_COST if not linked and a.passage.document_id != b.passage.document_id else 0.0)
        )

    def _hop(self, a: _Sentence, b: _Sentence, named: set[str], asked_names: set[str]) -> bool:
        """Two documents a chain crosses: linked, or both named by the question (a comparison).
        Two sentences of one document are no hop: they share its subject, and need no link."""
        if a.passage.document_id == b.passage.document_id:
            return False
        return self._linked(a, b, asked_names) or {a.passage.document_id, b.passage.document_id} <= named

    def _next_hop(
        self, chain: list[_Sentence], sentences: list[_Sentence], asked: set[str], asked_names: set[str]
    ) -> _Sentence | None:
        """A sentence that covers question terms the chain does not, linked to the chain's last
        (or in the same document: "Team Aurora owns Kestrel." → "Team Aurora is led by …")."""
        covered = set().union(*(s.terms for s in chain))
        remaining = asked - covered - set().union(*(s.context for s in chain))
        if not remaining:
            return None
        last = chain[-1]
        options = [
            s
            for s in sentences
            if s not in chain
            and remaining & s.terms
            and (
                self._linked(last, s, asked_names)
                # The same document is the same subject: a hop only when it answers what is left.
                or (s.passage.document_id == last.passage.document_id and coverage(remaining, s.terms) >= 0.5)
            )
        ]
        return max(options, key=lambda s: s.score + coverage(remaining, s.terms)) if options else None

    def _ordered(self, a: _Sentence, b: _Sentence, bridge: _Bridge | None) -> list[_Sentence]:
        """The hop order: a bridge question's clause first, then its main part; otherwise the
        sentence that names the other's subject comes first."""
        if bridge is not None:
            forward, backward = bridge.fit(a, b), bridge.fit(b, a)
            if forward != backward:
                return [a, b] if forward > backward else [b, a]
        if _names_subject_of(b, a) and not _names_subject_of(a, b):
            return [b, a]
        return [a, b]

    def _leads(
        self, s: _Sentence, t: _Sentence, focus: set[str], kind: str, question: str, asked_names: set[str]
    ) -> bool:
        """Whether `s` only leads to `t`: it is linked to `t` (and `t` does not name `s`'s
        subject), and `t` holds more of what is asked: more of the question's focus ("what
        city" → city), or, on a tie, the kind of fact asked for ("how many", "what year") where
        `s` has none."""
        if s.passage.document_id == t.passage.document_id or kind == "yes/no":
            return False
        if not self._linked(s, t, asked_names) or _names_subject_of(t, s):
            return False
        own, other = coverage(focus, s.terms, s.context), coverage(focus, t.terms, t.context)
        if own != other:
            return other > own
        return (
            kind != "name" and holds_type(t.text, kind, question) and not holds_type(s.text, kind, question)
        )

    def _linked(self, a: _Sentence, b: _Sentence, asked_names: set[str]) -> bool:
        """A hop between two documents: one sentence names the other's subject, or both name an
        entity; either one the question does not name (a link through the question's own
        subject leads nowhere new)."""
        for one, other in ((a, b), (b, a)):
            for name in subject_names(other.passage.title):
                if name not in asked_names and mentions(one.text, name):
                    return True
        return bool((a.names & b.names) - asked_names)

    @staticmethod
    def _named_in(question: str, sentences: list[_Sentence]) -> set[str]:
        """Documents whose subject the question names."""
        return {
            s.passage.document_id
            for s in sentences
            if any(mentions(question, n) for n in subject_names(s.passage.title))
        }

    @staticmethod
    def _penalise_reversed(
        question: str, asked: set[str], question_names: set[str], sentences: list[_Sentence]
    ) -> None:
        """Relations read in both directions: a sentence that has a name of the question on the
        other side of the question's relation word than the question does, and on the same side
        nowhere, answers the inverse question."""
        for name in question_names:
            relation = asked - terms(name)
            wanted = relation_sides(question, name, relation)
            if not wanted:
                continue
            for sentence in sentences:
                found = _relation_sides(sentence.tokens, name, relation)
                shared = found.keys() & wanted.keys()
                if shared and all(found[t] != wanted[t] for t in shared):
                    sentence.score -= _DIRECTION_COST

    def _bridge(self, question: str) -> _Bridge | None:
        """The question's two parts when a relative clause splits it, else None."""
        split = _RELATIVE.match(question.strip().rstrip("?").strip())
        if split is None:
            return None
        main, clause = terms(split["main"]), terms(split["clause"])
        if not main or not clause:
            return None
        names = {n.casefold() for n in self._entities(split["clause"])}
        return _Bridge(main, clause, names, clause - set().union(*(terms(n) for n in names)))

    def _entities(self, text: str, known: Sequence[str] = ()) -> list[str]:
        return self._find_entities(text, known) if self._find_entities is not None else []

    def _name(self, question: str, sentences: list[_Sentence]) -> None:
        """Each sentence's entity names, with the names its passages know (a sentence that opens
        with a one-word name, "Kestrel is owned by …", gives no capitalisation cue of its own)."""
        if self._find_entities is None:
            return
        known = self._entities(" ".join(dict.fromkeys(s.passage.text for s in sentences)))
        for sentence in sentences:
            sentence.names = {n.casefold() for n in self._entities(sentence.text, known)}

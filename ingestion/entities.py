"""Rule-based entity and relation extraction: capitalised phrases and verb patterns.

Good enough to link documents that name the same systems, teams and people, with
no model to download. Deterministic, so re-ingesting a document yields the same graph.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from retrieval.entity_names import entity_key, strip_the

# One capitalised word: "Kestrel", "Okafor", "McAllister", "Jean-Luc". All-caps
# tokens (UTC, SEV1) are left out on purpose: they are mostly units and acronyms.
_WORD = r"[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:-[A-Za-z]+)*"
# Only "of" joins two capitalised words ("Bank of Example"). "and"/"for" are not
# connectors: in lists like "Kestrel and Cinder" they separate two entities.
_PHRASE = re.compile(rf"(?<![\w-]){_WORD}(?:[ \t]+(?:of[ \t]+)?{_WORD})*(?![\w-])")
_LIST_HEAD = re.compile(r"[ \t]+(?:and|or)[ \t]+[A-Z]|,[ \t]+[A-Z][\w-]*,")
_OF = re.compile(r"[ \t]+of[ \t]+")
# A line prefix that makes the next word a block start: heading, list or quote marker.
_MARKER_PREFIX = re.compile(r"[ \t]*(?:#{1,6}|[-*+>]|\d+[.)])[ \t]+[\"'(*]*")
_TITLE = re.compile(r"^#[ \t]+(.+)$", re.MULTILINE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=[ \t]*(?:#|[-*+]\s|\d+[.)]\s))")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOP_WORDS = _word_set(
    """
    a about above after again against all also although an and any are as at be because
    before being below between both but by can could did do does during each either every
    for from further had has have having he her here hers him his how however i if in into
    is it its itself many may might more most much must my neither no nor not now of off
    on once only or other our ours out over own same she should since so some such than
    that the their theirs them then there these they this those though through thus to
    too under until up upon very was we were what when where whether which while who whom
    whose why will with within without would yes yet you your
    """
)
# Capitalised single words that are common English, not names.
_COMMON_WORDS = _word_set(
    """
    note notes example examples figure table section chapter summary overview introduction
    background conclusion appendix title owner owners status today tomorrow yesterday
    yes no ok please thanks hello new old raw
    one two three four five six seven eight nine ten first second third last next
    """
)
_CALENDAR = _word_set(
    """
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    """
)

_RELATION_PATTERNS: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    # (pattern, kind, reversed): reversed means the later entity is the source.
    (re.compile(r"\bowned by\b"), "OWNS", True),
    (re.compile(r"\bowns\b"), "OWNS", False),
    (re.compile(r"\bled by\b"), "LEADS", True),
    (re.compile(r"\bleads\b"), "LEADS", False),
    (re.compile(r"\bdepends? on\b"), "DEPENDS_ON", False),
    (re.compile(r"\bmember of\b"), "MEMBER_OF", False),
    (re.compile(r"\bworks in\b"), "MEMBER_OF", False),
)
RELATED_TO = "RELATED_TO"
# A gap that ends a list item: "A, B", "A and B", "A for X and on B".
_LIST_GLUE = re.compile(r"(?:,|\band|\bor)(?:\s+(?:on|in|of|the))?\s*$")
_TOKEN = re.compile(r"\w+")
_WORD_CHAR = re.compile(r"\w")
# A maximal run of word characters and hyphens: what `(?<![\w-])word(?![\w-])` can match.
_HYPHENATED_RUN = re.compile(r"[\w-]+")


@dataclass(frozen=True)
class Relation:
    source: str
    target: str
    kind: str


def extract_entities(text: str, known: Iterable[str] | KnownNames = ()) -> list[str]:
    """Proper-noun phrases and `known` names in `text`, unique, in first-appearance order.

    A capitalised word that only ever starts sentences is kept only when it also appears
    capitalised mid-sentence or in the `# ` title. When extracting from a chunk, pass the
    whole document's entities as `known` so such names are not lost at a chunk boundary
    (a `KnownNames` built once per document saves re-indexing them for every chunk).
    Linear in the length of `text`: every step is one pass, or a bounded window per match.
    """
    names = known if isinstance(known, KnownNames) else _known_names(tuple(known))
    found, masked = names.claim(text)
    context = _Context(_lowercase_runs(text), _name_evidence(masked, text))
    for match in _PHRASE.finditer(masked):
        # "Kestrel, Sablegate and Fathom depend on..." opens with a list of names.
        sentence_start = _starts_sentence(masked, match.start()) and not _LIST_HEAD.match(masked, match.end())
        for index, name in enumerate(_names_in_phrase(match.group(), sentence_start, context)):
            found.append((match.start(), index, name))
    return _unique(name for _, _, name in sorted(found, key=lambda item: item[:2]))


def extract_relations(text: str, entities: list[str]) -> list[Relation]:
    """Relations between entities named in the same sentence, unique, in text order.

    The kind comes from a verb pattern right after the first mention ("owned by", "leads",
    "depends on"...), carried across list glue ("A depends on B and C"), else RELATED_TO.
    A pair with a typed relation anywhere in the text gets no RELATED_TO edge.
    """
    relations: list[Relation] = []
    # Longest names claim their span first; equal lengths keep their order in `entities`.
    finder = _NameIndex(sorted(dict.fromkeys(entities), key=len, reverse=True))
    for sentence in _SENTENCE_SPLIT.split(text):
        relations.extend(_sentence_relations(sentence, finder.first_mentions(sentence)))
    # A typed edge says more than co-occurrence: drop RELATED_TO where one exists.
    typed = {frozenset((r.source, r.target)) for r in relations if r.kind != RELATED_TO}
    return list(
        dict.fromkeys(
            r for r in relations if r.kind != RELATED_TO or frozenset((r.source, r.target)) not in typed
        )
    )


class _NameIndex:
    """Whole-word occurrences (`(?<!\\w)name(?!\\w)`) of many names, found in one pass over a text.

    Names are indexed by their first run of word characters: a whole-word match can only start
    where such a run starts in the text, so each word of the text costs one dict lookup rather
    than one regex search per name. A name that does not start and end with a word character
    (none that `extract_entities` produces) is searched with its own regex, as before.
    """

    def __init__(self, ordered: Sequence[str]) -> None:
        self.rank = {name: index for index, name in enumerate(ordered)}
        # First word -> lengths of the names it starts: many names share a first word ("Maya
        # Okafor", "Maya Lindqvist"...), and there are far fewer lengths than names to try.
        lengths: dict[str, set[int]] = {}
        self._whole_words: set[str] = set()
        self._by_regex: dict[str, re.Pattern[str]] = {}
        for name in ordered:
            first = _TOKEN.match(name)
            if first is not None and _WORD_CHAR.fullmatch(name[-1]):
                lengths.setdefault(first.group(), set()).add(len(name))
                self._whole_words.add(name)
            else:
                self._by_regex[name] = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        self._lengths = {token: sorted(sizes) for token, sizes in lengths.items()}

    def occurrences(self, text: str) -> dict[str, list[int]]:
        """Start positions of every whole-word occurrence (overlaps included) of each indexed
        name found in `text`, by name; names whose own regex must run on the text are absent."""
        found: dict[str, list[int]] = {}
        for token in _TOKEN.finditer(text):
            start = token.start()
            for length in self._lengths.get(token.group(), ()):
                end = start + length
                candidate = text[start:end]
                # A name ending in a word character is whole only if the text's word ends with it.
                if candidate in self._whole_words and not _WORD_CHAR.match(text, end):
                    found.setdefault(candidate, []).append(start)
        return found

    def by_regex(self) -> dict[str, re.Pattern[str]]:
        return self._by_regex

    def in_rank_order(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=self.rank.__getitem__)

    def first_mentions(self, sentence: str) -> list[tuple[str, int, int]]:
        """First mention of each name, longest (earliest ranked) names claiming their span first."""
        taken = bytearray(len(sentence))
        found = self.occurrences(sentence)
        mentions: list[tuple[str, int, int]] = []
        for name in self.in_rank_order([*found, *self._by_regex]):
            regex = self._by_regex.get(name)
            spans = (
                [(m.start(), m.end()) for m in regex.finditer(sentence)]
                if regex is not None
                else _non_overlapping(found[name], len(name))
            )
            for start, end in spans:
                if taken.find(1, start, end) == -1:
                    taken[start:end] = b"\1" * (end - start)
                    mentions.append((name, start, end))
                    break
        return sorted(mentions, key=lambda mention: mention[1])


def _non_overlapping(starts: list[int], length: int) -> list[tuple[int, int]]:
    """The spans `finditer` would yield: each match resumes the scan at the previous one's end."""
    spans: list[tuple[int, int]] = []
    for start in starts:
        if not spans or start >= spans[-1][1]:
            spans.append((start, start + length))
    return spans


class KnownNames:
    """Names to find in texts as they are, before the capitalisation rules run; index once, reuse.

    Longest first, so "Atlas Portal" wins over a known "Atlas" inside it; names of equal
    length in alphabetical order (so the result never depends on hash order).
    """

    def __init__(self, names: Iterable[str]) -> None:
        unique = {n.strip() for n in names if n.strip()}
        self._index = _NameIndex(sorted(unique, key=lambda name: (-len(name), name)))

    def claim(self, text: str) -> tuple[list[tuple[int, int, str]], str]:
        """(position, 0, name) of every occurrence a longer name has not claimed already, and
        `text` with those spans blanked out (NULs), so the phrase scan cannot re-read them."""
        index = self._index
        taken = bytearray(len(text))
        found: list[tuple[int, int, str]] = []
        occurrences = index.occurrences(text)
        for name in index.in_rank_order([*occurrences, *index.by_regex()]):
            regex = index.by_regex().get(name)
            if regex is not None:
                # Boundaries of an odd name depend on what is blanked already: search the masked text.
                spans = [(m.start(), m.end()) for m in regex.finditer(_masked(text, taken))]
            else:
                spans = _unclaimed(occurrences[name], len(name), taken)
            for start, end in spans:
                taken[start:end] = b"\1" * (end - start)
                found.append((start, 0, name))
        return found, _masked(text, taken)


def _unclaimed(starts: list[int], length: int, taken: bytearray) -> list[tuple[int, int]]:
    """What the name's regex would find in the masked text: occurrences clear of blanked spans
    (a blanked neighbour is a non-word character, as was the name's original neighbour)."""
    spans: list[tuple[int, int]] = []
    for start in starts:
        end = start + length
        if (not spans or start >= spans[-1][1]) and taken.find(1, start, end) == -1:
            spans.append((start, end))
    return spans


def _masked(text: str, taken: bytearray) -> str:
    pieces: list[str] = []
    position = 0
    while (start := taken.find(1, position)) != -1:
        end = taken.find(0, start)
        end = len(text) if end == -1 else end
        pieces += [text[position:start], "\0" * (end - start)]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


@functools.lru_cache(maxsize=8)
def _known_names(names: tuple[str, ...]) -> KnownNames:
    # A caller passing the same document-wide list for every chunk indexes it once.
    return KnownNames(names)


def _lowercase_runs(text: str) -> frozenset[str]:
    """Every lowercase word (hyphens included) of the text, collected in one pass."""
    return frozenset(run for run in _HYPHENATED_RUN.findall(text) if run.islower())


@dataclass(frozen=True)
class _Context:
    lowercase_words: frozenset[str]  # to tell "Receipts ..." from a name: "receipts" also occurs
    evidence: frozenset[str]  # words seen capitalised where position does not explain it


def _name_evidence(masked: str, text: str) -> frozenset[str]:
    words = {m.group() for m in _PHRASE.finditer(masked) if not _starts_sentence(masked, m.start())}
    title = _TITLE.search(text)
    if title is not None:
        words.update(_PHRASE.findall(title.group(1)))
    # Only standalone words count: "Access" in "Access Review Policy" is no evidence.
    return frozenset(word for word in words if " " not in word)


def _names_in_phrase(phrase: str, sentence_start: bool, context: _Context) -> list[str]:
    """Clean a phrase; "X of Y" stays whole only when X is one word that is a name itself."""
    parts = _OF.split(phrase)
    names: list[str] = []
    for index, part in enumerate(parts):
        name = _clean_part(part, sentence_start and index == 0, context)
        joinable = names and " " not in names[-1]
        if name and joinable and len(part.split()) == len(name.split()) and index > 0:
            names[-1] = f"{names[-1]} of {name}"
        elif name:
            names.append(name)
    return names


def _clean_part(part: str, sentence_start: bool, context: _Context) -> str:
    words = part.split()
    # Leading function words ("The", "During", "Every") are capitalised only by position.
    while words and words[0].casefold() in _STOP_WORDS | _CALENDAR:
        words = words[1:]
        sentence_start = False
    while words and words[-1].casefold() in _CALENDAR:
        words = words[:-1]
    if len(words) != 1:
        return " ".join(words)
    word = words[0]
    if word.casefold() in _COMMON_WORDS:
        return ""
    if not sentence_start:
        return word
    # "Receipts must ... receipts" is an ordinary word capitalised by position.
    if word.lower() in context.lowercase_words:
        return ""
    return word if word in context.evidence else ""


def _starts_sentence(text: str, position: int) -> bool:
    """Whether `position` opens a sentence, a paragraph, a heading or a list item."""
    window = text[max(0, position - 400) : position]
    if _MARKER_PREFIX.fullmatch(window.rsplit("\n", 1)[-1]):
        return True
    before = window.rstrip(" \t\n\"'(*")
    if not before:
        return True
    # Not ":" or ";": a capitalised word after them is more often a name than a sentence.
    return before[-1] in ".!?" or window[len(before) :].count("\n") >= 2


def _unique(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        key = entity_key(name)
        if key and key not in seen:
            seen.add(key)
            result.append(strip_the(name))
    return result


def _sentence_relations(sentence: str, mentions: list[tuple[str, int, int]]) -> list[Relation]:
    """A relation for every pair of mentions of different entities, in text order.

    Each gap is examined once (its verb, whether it is list glue), so a sentence costs the
    number of pairs it yields, not that times the gaps between them.
    """
    # gaps[k] is the text between mention k and mention k + 1.
    gaps = [sentence[a[2] : b[1]] for a, b in pairwise(mentions)]
    verbs = [_verb(gap) for gap in gaps]
    glue = [bool(_LIST_GLUE.search(gap)) and verb is None for gap, verb in zip(gaps, verbs, strict=True)]
    keys = [entity_key(name) for name, _, _ in mentions]
    relations: list[Relation] = []
    for i, (first, _, _) in enumerate(mentions):
        only_glue_since = True  # every gap after gaps[i] up to the second mention is list glue
        for j in range(i + 1, len(mentions)):
            if j - 1 > i:
                only_glue_since = only_glue_since and glue[j - 1]
            if keys[i] != keys[j]:
                relations.append(_relation(first, mentions[j][0], verbs[i] if only_glue_since else None))
    return relations


def _relation(first: str, second: str, verb: tuple[str, bool] | None) -> Relation:
    """Typed relation when the verb follows `first` directly and only list glue follows.

    "A depends on B and on C" gives A DEPENDS_ON C; "A is owned by B, which is led
    by C" gives A RELATED_TO C, because the verb before C belongs to B.
    """
    if verb is None:
        return Relation(first, second, RELATED_TO)
    kind, reverse = verb
    return Relation(second, first, kind) if reverse else Relation(first, second, kind)


def _verb(gap: str) -> tuple[str, bool] | None:
    hits = [(m.start(), kind, rev) for pattern, kind, rev in _RELATION_PATTERNS if (m := pattern.search(gap))]
    if not hits:
        return None
    _, kind, reverse = min(hits)
    return kind, reverse

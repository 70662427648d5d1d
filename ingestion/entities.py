"""Rule-based entity and relation extraction: capitalised phrases and verb patterns.

Good enough to link documents that name the same systems, teams and people, with
no model to download. Deterministic, so re-ingesting a document yields the same graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


@dataclass(frozen=True)
class Relation:
    source: str
    target: str
    kind: str


def extract_entities(text: str, known: Iterable[str] = ()) -> list[str]:
    """Proper-noun phrases and `known` names in `text`, unique, in first-appearance order.

    A capitalised word that only ever starts sentences is kept only when it also appears
    capitalised mid-sentence or in the `# ` title. When extracting from a chunk, pass the
    whole document's entities as `known` so such names are not lost at a chunk boundary.
    """
    found: list[tuple[int, int, str]] = []
    masked = text
    # Longest first, so "Atlas Portal" wins over a known "Atlas" inside it.
    for name in sorted({n.strip() for n in known if n.strip()}, key=len, reverse=True):
        pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        found.extend((match.start(), 0, name) for match in pattern.finditer(masked))
        # Blank out known spans so the phrase scan cannot re-read them differently.
        masked = pattern.sub(lambda m: "\0" * len(m.group()), masked)
    context = _Context(text, _name_evidence(masked, text))
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
    for sentence in _SENTENCE_SPLIT.split(text):
        mentions = _mentions(sentence, entities)
        # gaps[k] is the text between mention k and mention k + 1.
        gaps = [sentence[a[2] : b[1]] for a, b in pairwise(mentions)]
        for i, (first, _, _) in enumerate(mentions):
            for j in range(i + 1, len(mentions)):
                second = mentions[j][0]
                if entity_key(first) != entity_key(second):
                    relations.append(_relation(first, second, gaps[i], gaps[i + 1 : j]))
    # A typed edge says more than co-occurrence: drop RELATED_TO where one exists.
    typed = {frozenset((r.source, r.target)) for r in relations if r.kind != RELATED_TO}
    return list(
        dict.fromkeys(
            r for r in relations if r.kind != RELATED_TO or frozenset((r.source, r.target)) not in typed
        )
    )


@dataclass(frozen=True)
class _Context:
    text: str
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
    if re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", context.text):
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


def _mentions(sentence: str, entities: list[str]) -> list[tuple[str, int, int]]:
    """First mention of each entity, longest names claiming their span first."""
    taken = [False] * len(sentence)
    mentions: list[tuple[str, int, int]] = []
    for name in sorted(dict.fromkeys(entities), key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", sentence):
            if not any(taken[match.start() : match.end()]):
                taken[match.start() : match.end()] = [True] * (match.end() - match.start())
                mentions.append((name, match.start(), match.end()))
                break
    return sorted(mentions, key=lambda mention: mention[1])


def _relation(first: str, second: str, gap: str, later_gaps: list[str]) -> Relation:
    """Typed relation when the verb follows `first` directly and only list glue follows.

    "A depends on B and on C" gives A DEPENDS_ON C; "A is owned by B, which is led
    by C" gives A RELATED_TO C, because the verb before C belongs to B.
    """
    verb = _verb(gap)
    if verb is None or not all(_LIST_GLUE.search(g) and _verb(g) is None for g in later_gaps):
        return Relation(first, second, RELATED_TO)
    kind, reverse = verb
    return Relation(second, first, kind) if reverse else Relation(first, second, kind)


def _verb(gap: str) -> tuple[str, bool] | None:
    hits = [(m.start(), kind, rev) for pattern, kind, rev in _RELATION_PATTERNS if (m := pattern.search(gap))]
    if not hits:
        return None
    _, kind, reverse = min(hits)
    return kind, reverse

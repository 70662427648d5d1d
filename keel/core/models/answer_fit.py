"""Whether quoted sentences answer a question: shared by the extractive answerer (which says "not
answered" below `MIN_FIT`) and the grade step (which sends a weak answer to a reviewer).

Three signals, none tied to a corpus's wording:
  cosine   the best quote's MiniLM cosine to the question;
  covered  the share of the question's terms the quotes have (their documents' titles count
           half: "He was born in Leeds" is about the article it sits in);
  named    some quoted document is about what the question names (its title's terms all in the
           question): an answer drawn only from documents about other things is suspect.
Calibrated on HotpotQA dev_250 (bench/answer_offline.py), each question asked against the whole
pool and again with its supporting paragraphs taken out: fit below 0.37 refused 0.100 of the
answerable questions and 0.808 of the unanswerable ones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from keel.core.names import designated_name

# The calibrated weights: fit = (cosine + 0.7 covered + 0.4 named - 0.8) / 1.2, clamped to [0, 1].
_COVERED_WEIGHT = 0.7
_NAMED_WEIGHT = 0.4
_OFFSET = 0.8
_SPAN = 1.2
# Below this the extractive answerer says the documents do not answer.
MIN_FIT = 0.37

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has", "have",
        "how", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were",
        "what", "when", "where", "which", "who", "whom", "whose", "why", "with",
    }
)  # fmt: skip
_IRREGULAR = {"led": "lead", "ran": "run", "held": "hold", "built": "build", "kept": "keep", "paid": "pay"}
# A parenthetical aside, innermost first (nested ones are rare), with the space before it.
_ASIDE = re.compile(r"\s*\([^()]*\)")
# A quote is cut short after a comma or semicolon between clauses ("9,984" has no space); a part
# of this many words or fewer is an item of a list, not a clause.
_CLAUSE_BREAK = re.compile(r"(?<=[,;])(?=\s)")
_LIST_ITEM = 3
# A quote cut short ends so; fewer words than `_LEAST_CUT` are not worth the cut.
CUT = " …"
_LEAST_CUT = 4
# What a title carries besides the name of its subject: "(film)", a file's extension.
_TITLE_NOISE = re.compile(r"\([^)]*\)|\.(md|markdown|txt|html?|pdf|docx)$", re.IGNORECASE)


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


@functools.lru_cache(maxsize=4096)
def subject_names(title: str) -> tuple[str, ...]:
    """The names a document's title gives its subject, casefolded: "Nola (film)" → "nola",
    "gate-codes.md" → "gate codes", and the name it designates, as ingestion links it:
    "Salford City F.C." → "salford city f.c.", "salford city" (`keel.core.names`).

    Cached: the answerer asks again for every pair of sentences it weighs (545 times for two
    answers over 7 passages), always about the same few titles."""
    name = " ".join(_TITLE_NOISE.sub(" ", title).replace("_", " ").replace("-", " ").split())
    names = dict.fromkeys(n.casefold() for n in [name, *designated_name(name)])
    return tuple(n for n in names if len(n) >= 3)


def display_title(title: str) -> str:
    """A title as a reader names its subject: "Nola (film)" → "Nola", "gate-codes.md" → "gate-codes"."""
    return " ".join(_TITLE_NOISE.sub(" ", title).split())


def without_asides(text: str, keep: Callable[[str], bool] = lambda _aside: False) -> str:
    """`text` without the parenthetical asides `keep` does not want ("Gal Gadot (born 30 April
    1985) is …" → "Gal Gadot is …"): an encyclopedia's first sentence can spend a third of its
    words on dates, pronunciations and names in other languages."""
    return _ASIDE.sub(lambda m: m.group() if keep(m.group()) else "", text)


def without_tail(text: str, keep: Callable[[str], bool]) -> str:
    """`text` cut after its last clause (", …", "; …") that `keep` wants, ending in CUT: "Jerry
    Glanville is a former American football player and coach, former NASCAR driver and owner,
    and sportscaster." for "who is younger, …?" keeps its first clause. Cut only where that saves
    `_LEAST_CUT` words or more; the first clause always stays."""
    clauses: list[str] = []
    for part in _CLAUSE_BREAK.split(text):
        # A short part is an item of a list ("director, writer, and producer"): one clause.
        if clauses and len(part.split()) <= _LIST_ITEM:
            clauses[-1] += part
        else:
            clauses.append(part)
    last = max(i for i, clause in enumerate(clauses) if i == 0 or keep(clause))
    if sum(len(clause.split()) for clause in clauses[last + 1 :]) < _LEAST_CUT:
        return text
    return "".join(clauses[: last + 1]).rstrip(" .,;:") + CUT


def shown_as(sentence: str, quote: str) -> bool:
    """Whether an answer sentence is `quote` as an answer shows it: after its document's subject
    ("Gal Gadot: She …"), without some parenthetical asides, or cut short at a clause."""
    shown, whole = without_asides(sentence), without_asides(quote)
    if whole in shown:
        return True
    if not shown.endswith(CUT):
        return False
    # A cut keeps the quote's opening: the shown text, or what follows its subject's "X: ".
    head = shown.removesuffix(CUT)
    return any(len(part.split()) >= 3 and whole.startswith(part) for part in (head, head.partition(": ")[2]))


def title_terms(title: str) -> set[str]:
    return terms(" ".join(subject_names(title)))


def mentions(text: str, name: str) -> bool:
    """`name` (casefolded) in `text` as whole words."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text.casefold()) is not None


def coverage(asked: set[str], own: set[str], context: set[str] | frozenset[str] = frozenset()) -> float:
    """Share of the question's terms a text has; `context` (its document's title terms) counts half."""
    if not asked:
        return 0.0
    return (len(asked & own) + 0.5 * len((asked & context) - own)) / len(asked)


def names_subject(asked: set[str], title: str) -> bool:
    """The question names the document's subject: every term of its title is in the question."""
    subject = title_terms(title)
    return bool(subject) and subject <= asked


def fit(cosine: float, covered: float, named: bool) -> float:
    """How well quotes answer a question, in [0, 1] (see the module's docstring)."""
    raw = cosine + _COVERED_WEIGHT * covered + (_NAMED_WEIGHT if named else 0.0)
    return max(0.0, min(1.0, (raw - _OFFSET) / _SPAN))

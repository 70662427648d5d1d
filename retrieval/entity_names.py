"""Entity names: the key a name is stored under, and which surface form an entity is shown by.

Shared by ingestion (which writes entities) and retrieval (which looks names up and reports why
forms were merged): both must normalise a name the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def entity_key(name: str) -> str:
    """Canonical node key: casefolded, whitespace collapsed, no leading "the"."""
    return strip_the(" ".join(name.split())).casefold()


EXACT = "exact"
ALIAS = "alias"
NORMALIZED = "normalized"


def merge_reason(canonical: str, surface: str) -> str:
    """Why the surface form `surface` was merged into the entity named `canonical`.

    "exact" when the two are equal. "normalized: " and what differs, in this order, when
    they share an `entity_key`: "case" (of the words after any leading article),
    "whitespace" (the gaps between or around words; the gap after an article only when
    both have one) and "article" (a leading "The"/"the" in one only, or cased differently).
    "alias" when their keys differ: the writer gave both one key, no rule merged them.
    """
    if surface == canonical:
        return EXACT
    if entity_key(surface) != entity_key(canonical):
        return ALIAS
    (article_c, words_c, gaps_c), (article_s, words_s, gaps_s) = _shape(canonical), _shape(surface)
    if bool(article_c) != bool(article_s):
        # That gap comes and goes with the article: "article" says it already.
        gaps_c, gaps_s = _without_article_gap(gaps_c, article_c), _without_article_gap(gaps_s, article_s)
    differences = (
        ("case", words_c != words_s),
        ("whitespace", gaps_c != gaps_s),
        ("article", article_c != article_s),
    )
    return f"{NORMALIZED}: " + ", ".join(aspect for aspect, differs in differences if differs)


def canonical_name(forms: Iterable[str]) -> str:
    """The name an entity is shown by, whatever order its surface `forms` were read in.

    The form that needs the least normalising (no leading article, single spaces, not all
    one case), then the smallest by code point.
    """
    return min(
        forms, key=lambda f: (bool(_shape(f)[0]), f != " ".join(f.split()), f.islower() or f.isupper(), f)
    )


def _shape(name: str) -> tuple[str, list[str], list[str]]:
    """(leading article or "", the words after it, the whitespace gaps around all words)."""
    words = name.split()
    # The article entity_key strips: "The"/"the" followed by another word.
    article = words[0] if len(words) > 1 and words[0] in ("The", "the") else ""
    return article, words[1:] if article else words, re.split(r"\S+", name)


def _without_article_gap(gaps: list[str], article: str) -> list[str]:
    return gaps[:1] + gaps[2:] if article else gaps


def strip_the(name: str) -> str:
    return name[4:] if name.startswith(("The ", "the ")) else name

"""Text made safe for both stores: no NUL, no stray control characters, no lone surrogates.

FalkorDB reads Cypher as a C string (a NUL cuts the query short: a syntax error, retried in
vain) and neither store can encode a lone surrogate as UTF-8. Documents are cleaned rather
than refused: a user would rather have a PDF extract indexed without its stray bytes than
not at all; what was changed is counted so the caller can record it. Layout characters
(tab, newline, carriage return) stay; vertical tab and form feed (page breaks in extracted
text) become newlines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# C0 controls but tab, newline, vertical tab, form feed, carriage return; DEL; C1 controls.
_DROPPED = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\x0b\x0c]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a store cannot take or an id must not hold: the check for text that was not cleaned.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class CleanText:
    text: str
    dropped: int = 0  # control characters removed
    replaced: int = 0  # lone surrogates replaced by U+FFFD

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.replaced)


def clean_text(text: str) -> CleanText:
    """`text` without the characters a store refuses; paired surrogates become the character
    they encode, lone ones U+FFFD."""
    if not _UNSAFE.search(text):  # the common case: one scan, no copy
        return CleanText(text)
    replaced = 0
    if _SURROGATE.search(text):
        # Through UTF-16: a valid pair joins into its character, a lone half becomes U+FFFD.
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        replaced = joined.count("\ufffd") - text.count("\ufffd")
        text = joined
    text = _LINE_BREAKS.sub("\n", text)
    text, dropped = _DROPPED.subn("", text)
    return CleanText(text, dropped, replaced)


def unsafe_character(text: str) -> str | None:
    """The first character of `text` a store would refuse (or that no id should hold), as
    U+XXXX, or None when there is none."""
    found = _UNSAFE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None

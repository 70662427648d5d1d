"""Split documents into retrieval-sized chunks along paragraph and sentence boundaries."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by
# whitespace and something that can start a sentence. Requiring that next character,
# and refusing "x.y." before it, keeps "e.g. The" and "costs 3.5 hours" in one sentence.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))(?<!\b[A-Za-z]\.[A-Za-z]\.)\s+(?=[A-Z0-9\"'(\[*#-])"
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Markdown lines that start a new block even without a blank line before them.
_BLOCK_START = re.compile(r"^\s*(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|>)")
# A heading is one line: the line under it starts the text it heads.
_HEADING = re.compile(r"^\s*#{1,6}\s")
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_PARAGRAPH_SEPARATOR = "\n\n"
_LINE_SEPARATOR = "\n"
_SENTENCE_SEPARATOR = " "


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an over-long one) and what goes before it inside a chunk."""

    text: str
    # A paragraph's first unit follows a blank line; a heading's or list item's own line, and
    # the line under a heading, follow a line break: answerers read them as lines of their own.
    separator: str = _SENTENCE_SEPARATOR


def chunk_text(text: str, max_chars: int = 700, overlap_chars: int = 100) -> list[str]:
    """Pack whole sentences into chunks of at most `max_chars` characters.

    Up to `overlap_chars` of the previous chunk's trailing whole sentences are repeated
    at the start of the next chunk so that a fact split across a boundary stays findable.
    A sentence longer than `max_chars` is split at word boundaries; only a single word
    longer than `max_chars` can produce a chunk above the limit.
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if overlap_chars < 0:
        raise ValueError(f"overlap_chars must not be negative, got {overlap_chars}")
    if overlap_chars >= max_chars:
        raise ValueError(f"overlap_chars ({overlap_chars}) must be smaller than max_chars ({max_chars})")
    units = [piece for unit in _units(text) for piece in _fit(unit, max_chars)]
    return _pack(units, max_chars, overlap_chars)


def parse_markdown_title(text: str, fallback: str) -> str:
    """The first level-one `# ` heading of a Markdown text, or `fallback` when there is none."""
    match = _TITLE.search(text)
    if match is None or not match.group(1).strip():
        return fallback
    return match.group(1).strip()


def _units(text: str) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        for block_index, block in enumerate(_blocks(paragraph)):
            opening = _LINE_SEPARATOR if block_index else _PARAGRAPH_SEPARATOR
            for sentence_index, sentence in enumerate(_SENTENCE_END.split(block)):
                cleaned = " ".join(sentence.split())
                if cleaned:
                    units.append(_Unit(cleaned, opening if sentence_index == 0 else _SENTENCE_SEPARATOR))
    return units


def _blocks(paragraph: str) -> list[str]:
    """Join wrapped lines, but keep headings and list items as blocks of their own."""
    # Lines are gathered and joined once: re-concatenating a growing block for every wrapped
    # line costs the square of a long paragraph.
    blocks: list[list[str]] = []
    for line in paragraph.split("\n"):
        if not line.strip():
            continue
        if blocks and not _BLOCK_START.match(line) and not _HEADING.match(blocks[-1][0]):
            blocks[-1].append(line.strip())
        else:
            blocks.append([line.strip()])
    return [" ".join(lines) for lines in blocks]


def _fit(unit: _Unit, max_chars: int) -> list[_Unit]:
    """Split a unit longer than `max_chars` greedily at spaces."""
    if len(unit.text) <= max_chars:
        return [unit]
    pieces: list[str] = []
    current = ""
    for word in unit.text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = candidate
    pieces.append(current)
    return [_Unit(piece, unit.separator if i == 0 else _SENTENCE_SEPARATOR) for i, piece in enumerate(pieces)]


def _pack(units: list[_Unit], max_chars: int, overlap_chars: int) -> list[str]:
    chunks: list[str] = []
    current: list[_Unit] = []
    for unit in units:
        if current and len(_join([*current, unit])) > max_chars:
            chunks.append(_join(current))
            current = _tail(current, overlap_chars)
            # The overlap is a courtesy: drop it rather than exceed the limit.
            while current and len(_join([*current, unit])) > max_chars:
                current = current[1:]
        current.append(unit)
    if current:
        chunks.append(_join(current))
    return chunks


def _tail(units: list[_Unit], overlap_chars: int) -> list[_Unit]:
    """The longest run of trailing units whose joined text fits in `overlap_chars`."""
    tail: list[_Unit] = []
    for unit in reversed(units):
        if len(_join([unit, *tail])) > overlap_chars:
            break
        tail.insert(0, unit)
    return tail


def _join(units: list[_Unit]) -> str:
    parts: list[str] = []
    for i, unit in enumerate(units):
        if i > 0:
            parts.append(unit.separator)
        parts.append(unit.text)
    return "".join(parts)

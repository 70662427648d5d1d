"""Chunking: sentence packing, limits, overlap, titles."""

from __future__ import annotations

from itertools import pairwise

import pytest

from ingestion.chunking import chunk_text, parse_markdown_title

pytestmark = pytest.mark.unit

SENTENCES = [f"Sentence number {i} talks about Kestrel and Team Aurora." for i in range(20)]


def test_empty_and_whitespace_give_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text("  \n\n \t ") == []


def test_short_text_is_one_chunk_with_whitespace_normalised() -> None:
    assert chunk_text("Kestrel is owned by\nTeam Aurora.  It runs 9 brokers.") == [
        "Kestrel is owned by Team Aurora. It runs 9 brokers."
    ]


def test_paragraphs_are_kept_apart_inside_a_chunk() -> None:
    assert chunk_text("# Kestrel (system)\n\nFirst para.\n\nSecond para.") == [
        "# Kestrel (system)\n\nFirst para.\n\nSecond para."
    ]


def test_chunks_respect_the_limit_and_end_on_sentence_boundaries() -> None:
    chunks = chunk_text(" ".join(SENTENCES), max_chars=200, overlap_chars=0)
    assert len(chunks) > 1
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert all(chunk.endswith("Team Aurora.") for chunk in chunks)
    # Without overlap, the chunks are exactly the sentences, in order.
    assert " ".join(chunks).split(". ") == " ".join(SENTENCES).split(". ")


def test_overlap_repeats_the_trailing_whole_sentence() -> None:
    chunks = chunk_text(" ".join(SENTENCES), max_chars=200, overlap_chars=60)
    for previous, current in pairwise(chunks):
        last_sentence = previous.rsplit("Sentence number", 1)[1]
        assert current.startswith("Sentence number" + last_sentence)
    assert all(len(chunk) <= 200 for chunk in chunks)


def test_overlap_smaller_than_a_sentence_carries_nothing() -> None:
    chunks = chunk_text(" ".join(SENTENCES), max_chars=200, overlap_chars=20)
    assert chunks[1].startswith(SENTENCES[3])


def test_long_sentence_is_split_at_word_boundaries() -> None:
    words = [f"word{i:03d}" for i in range(100)]
    chunks = chunk_text(" ".join(words) + ".", max_chars=50, overlap_chars=10)
    assert all(len(chunk) <= 50 for chunk in chunks)
    assert " ".join(chunks).split() == [*words[:-1], "word099."]


def test_chunking_is_deterministic() -> None:
    text = "\n\n".join(" ".join(SENTENCES[i : i + 4]) for i in range(0, 20, 4))
    assert chunk_text(text, 300, 80) == chunk_text(text, 300, 80)


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    chunks = chunk_text("Costs rose by 3.5 percent, e.g. The fleet grew. Next sentence.", 40, 0)
    assert chunks == ["Costs rose by 3.5 percent, e.g. The", "fleet grew. Next sentence."]


@pytest.mark.parametrize(("max_chars", "overlap"), [(0, 0), (-5, 0), (100, 100), (100, 150), (100, -1)])
def test_invalid_sizes_raise(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"max_chars|overlap_chars"):
        chunk_text("Some text.", max_chars=max_chars, overlap_chars=overlap)


def test_title_is_first_level_one_heading() -> None:
    assert parse_markdown_title("intro\n## Sub\n# Kestrel (system)\n# Later", "x") == "Kestrel (system)"


def test_title_falls_back_without_heading() -> None:
    assert parse_markdown_title("No heading here.\n## Only a subheading", "doc-1") == "doc-1"
    assert parse_markdown_title("#NoSpace", "doc-2") == "doc-2"


# Markdown blocks keep their own lines: an answerer drops heading lines and reads each list item
# as a sentence, which it cannot do once they are merged into the text around them (issue 17).
@pytest.mark.parametrize(
    ("text", "chunk"),
    [
        ("# Gate codes\nThe west gate code is 4417.\n", "# Gate codes\nThe west gate code is 4417."),
        ("# Gate codes\r\nThe west gate code is 4417\r\n", "# Gate codes\nThe west gate code is 4417"),
        ("# Gate codes\r\n\r\nThe west gate code is 4417.", "# Gate codes\n\nThe west gate code is 4417."),
        ("## Parking\nVisitors park\nin lot C", "## Parking\nVisitors park in lot C"),
        (
            "# Parking\n- Visitors park in lot C\n- Staff park in the\n  **garage**\n1. Show a pass",
            "# Parking\n- Visitors park in lot C\n- Staff park in the **garage**\n1. Show a pass",
        ),
        ("Intro line.\n## Later\nMore text. Even more.", "Intro line.\n## Later\nMore text. Even more."),
    ],
)
def test_headings_and_list_items_stay_on_lines_of_their_own(text: str, chunk: str) -> None:
    assert chunk_text(text) == [chunk]


def test_overlap_starts_a_chunk_at_a_list_item_without_a_leading_break() -> None:
    items = "\n".join(f"- Item {i} says something about Kestrel." for i in range(6))
    chunks = chunk_text(f"# List\n{items}", max_chars=120, overlap_chars=50)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk) <= 120 and not chunk.startswith("\n")
        assert all(line.startswith(("# ", "- ")) for line in chunk.split("\n"))

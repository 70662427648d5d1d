"""What reaches a store: text without NUL, stray control characters or lone surrogates."""

from __future__ import annotations

import pytest

from retrieval.clean_text import CleanText, clean_text, unsafe_character

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("plain text, tabs\tand\nlines\r\n", CleanText("plain text, tabs\tand\nlines\r\n")),
        ("nul\x00 byte", CleanText("nul byte", dropped=1)),
        ("colour \x1b[31mred\x1b[0m", CleanText("colour [31mred[0m", dropped=2)),
        ("page\x0cbreak\x0bhere", CleanText("page\nbreak\nhere")),
        ("del\x7f and c1\x85", CleanText("del and c1", dropped=2)),
        ("lone \ud800 and \udfff", CleanText("lone \ufffd and \ufffd", replaced=2)),
        ("a pair \ud83d\ude00 joins", CleanText("a pair \U0001f600 joins")),
        ("kept \ufffd already", CleanText("kept \ufffd already")),
    ],
)
def test_clean_text(raw: str, cleaned: CleanText) -> None:
    assert clean_text(raw) == cleaned
    assert unsafe_character(cleaned.text) is None
    cleaned.text.encode("utf-8")  # never refused for encoding


def test_unsafe_character_names_the_first_one() -> None:
    assert unsafe_character("ok \x00 \ud800") == "U+0000"
    assert unsafe_character("ok \ud800") == "U+D800"
    assert unsafe_character("naïve café — 東京") is None

"""Answer metrics: the official HotpotQA script's normalisation and F1, and Keel's fact and yes/no."""

from __future__ import annotations

import pytest

from keel.core.answer_metrics import (
    answer_words,
    best_f1,
    f1_score,
    fact_found,
    normalize_answer,
    yes_no_correct,
    yes_no_gold,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  A  cat,  an owl and THE dog. ", "cat owl and dog"),
        ("Greenwich Village, New York City", "greenwich village new york city"),
        ("U.S.", "us"),  # punctuation is removed, not replaced by a space
        ("theatre another", "theatre another"),  # articles only as whole words
        ("", ""),
    ],
)
def test_normalize_answer_as_the_official_script(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


def test_f1_is_token_overlap_of_normalised_texts() -> None:
    assert f1_score("the Greenwich Village", "Greenwich Village, New York City") == pytest.approx(
        2 * (2 / 2) * (2 / 5) / (2 / 2 + 2 / 5)
    )
    assert f1_score("New York City", "new york city.") == 1.0
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("", "London") == 0.0


def test_f1_counts_repeated_tokens_once_per_occurrence() -> None:
    # Counter intersection: "york york" shares one "york" with "new york".
    assert f1_score("york york", "new york") == pytest.approx(0.5)


def test_f1_yes_no_special_case() -> None:
    """The script: when either side normalises to yes/no/noanswer and they differ, F1 is 0."""
    assert f1_score("yes", "yes") == 1.0
    assert f1_score("Yes.", "yes") == 1.0
    assert f1_score("yes, both were born in 1950", "yes") == 0.0
    assert f1_score("no", "no way") == 0.0
    assert f1_score("noanswer", "answer") == 0.0


def test_best_f1_takes_the_closest_gold() -> None:
    assert best_f1("7 days", ["one week", "7 days"]) == 1.0
    assert best_f1("anything", []) == 0.0


def test_fact_is_the_gold_contained_on_word_boundaries() -> None:
    assert fact_found("Events are kept for 7 days, then deleted.", ["7 days"])
    assert fact_found("It is in the Greenwich Village, New York City.", ["Greenwich Village, New York City"])
    assert not fact_found("kept for 17 days", ["7 days"])
    assert not fact_found("This is not it", ["no"])
    assert fact_found("Acknowledge in 15 minutes", ["one hour", "15 minutes"])
    assert not fact_found("anything", ["", "the"])  # a gold that normalises to nothing never matches


def test_yes_no_gold_and_correctness() -> None:
    assert yes_no_gold(["Yes"]) == "yes"
    assert yes_no_gold(["no."]) == "no"
    assert yes_no_gold(["Norway"]) is None
    assert yes_no_correct("Yes, both are American.", "yes")
    assert yes_no_correct("No.", "no")
    assert not yes_no_correct("There is no evidence.", "no")  # first word only
    assert not yes_no_correct("", "yes")


def test_answer_words() -> None:
    assert answer_words("  Team  Aurora owns it. ") == 4
    assert answer_words("") == 0

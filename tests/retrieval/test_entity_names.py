"""Entity names: the key a name is stored under, the form it is shown by, why forms merged."""

from __future__ import annotations

import pytest

from retrieval.entity_names import canonical_name, entity_key, merge_reason

pytestmark = pytest.mark.unit


def test_entity_key_is_canonical() -> None:
    assert entity_key("  Team   Aurora ") == "team aurora"
    assert entity_key("The Kestrel") == entity_key("kestrel") == "kestrel"


@pytest.mark.parametrize(
    ("canonical", "surface", "reason"),
    [
        ("Kestrel", "Kestrel", "exact"),
        ("Kestrel", "kestrel", "normalized: case"),
        ("Team Aurora", "Team  Aurora", "normalized: whitespace"),
        ("Team Aurora", " Team\tAurora", "normalized: whitespace"),
        ("Kestrel", "The Kestrel", "normalized: article"),
        ("The Kestrel", "the Kestrel", "normalized: article"),
        # The gap after an article that only one form has goes with the article.
        ("Kestrel", "The  Kestrel", "normalized: article"),
        ("The Kestrel", "The  Kestrel", "normalized: whitespace"),
        ("The Kestrel", "The KESTREL", "normalized: case"),
        ("Kestrel", " the  KESTREL", "normalized: case, whitespace, article"),
        # Different keys: only the writer's choice of key merged them.
        ("Payments team", "Payments", "alias"),
        ("Kestrel", "THE Kestrel", "alias"),
    ],
)
def test_merge_reason_names_exactly_what_differs(canonical: str, surface: str, reason: str) -> None:
    assert merge_reason(canonical, surface) == reason
    assert merge_reason(surface, canonical) == reason


def test_canonical_name_prefers_the_least_normalised_form_in_any_order() -> None:
    forms = ["the Kestrel", "KESTREL", "Kestrel", "The Kestrel", "kestrel", "Kestrel "]
    assert canonical_name(forms) == canonical_name(reversed(forms)) == "Kestrel"
    assert canonical_name(["The Beatles"]) == "The Beatles"
    assert canonical_name(["McAllister", "Mcallister"]) == "McAllister"  # then by code point
    with pytest.raises(ValueError):
        canonical_name([])

"""Rule-based entity and relation extraction."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ingestion.chunking import chunk_text, parse_markdown_title
from ingestion.entities import KnownNames, Relation, extract_entities, extract_relations

pytestmark = pytest.mark.unit

HALCYON = (
    "# Project Halcyon (project)\n\n"
    "Project Halcyon depends on Kestrel. Kestrel is owned by Team Aurora, which is led by Maya Okafor. "
    "The project started on Monday 3 March 2025."
)


def test_proper_noun_phrases_in_first_appearance_order() -> None:
    assert extract_entities(HALCYON) == ["Project Halcyon", "Kestrel", "Team Aurora", "Maya Okafor"]


def test_sentence_initial_common_words_months_and_days_are_dropped() -> None:
    text = (
        "The Team Aurora met. Every Monday in March it rains. "
        "Receipts are checked. Keep receipts. During Kestrel."
    )
    assert extract_entities(text) == ["Team Aurora", "Kestrel"]


def test_sentence_initial_word_needs_evidence_elsewhere() -> None:
    assert extract_entities("Handover is at nine. Osprey sends pings.") == []
    assert extract_entities("Osprey sends pings to Wayfinder. Data reaches Osprey.") == [
        "Osprey",
        "Wayfinder",
    ]


def test_a_list_opening_a_sentence_is_kept() -> None:
    assert extract_entities("Kestrel, Sablegate, Larkspur and Fathom depend on Cinder.") == [
        "Kestrel",
        "Sablegate",
        "Larkspur",
        "Fathom",
        "Cinder",
    ]


def test_of_joins_only_after_a_single_word_name() -> None:
    text = "She met the Bank of Norland and the Chief Operating Officer of Northwind Atlas."
    assert extract_entities(text) == ["Bank of Norland", "Chief Operating Officer", "Northwind Atlas"]


def test_known_names_are_matched_whole_word_and_case_sensitive() -> None:
    text = "Tern robots use kestrel-ish topics. Tern started. We saw Ternary, not Tern."
    assert extract_entities(text, known=["Tern", "Kestrel"]) == ["Tern", "Ternary"]


def test_known_longer_name_wins_over_the_phrase_scan() -> None:
    assert extract_entities("we use Atlas Portal Beta daily", known=["Atlas Portal"]) == [
        "Atlas Portal",
        "Beta",
    ]


def test_duplicates_and_leading_the_are_collapsed() -> None:
    assert extract_entities("We saw the Kestrel cluster. Later, The Kestrel grew and Kestrel shrank.") == [
        "Kestrel"
    ]


def test_relation_kinds_and_directions() -> None:
    entities = extract_entities(HALCYON)
    assert extract_relations(HALCYON, entities) == [
        Relation("Project Halcyon", "Kestrel", "DEPENDS_ON"),
        Relation("Team Aurora", "Kestrel", "OWNS"),
        # The verb before Maya Okafor belongs to Team Aurora, so this pair stays untyped.
        Relation("Kestrel", "Maya Okafor", "RELATED_TO"),
        Relation("Maya Okafor", "Team Aurora", "LEADS"),
    ]


def test_verb_carries_across_a_list() -> None:
    text = (
        "Ledgerline depends on Kestrel for events and on Larkspur. "
        "Team Lantern owns Fathom, Cinder and Pagewell."
    )
    relations = extract_relations(
        text, ["Ledgerline", "Kestrel", "Larkspur", "Team Lantern", "Fathom", "Cinder", "Pagewell"]
    )
    assert relations == [
        Relation("Ledgerline", "Kestrel", "DEPENDS_ON"),
        Relation("Ledgerline", "Larkspur", "DEPENDS_ON"),
        Relation("Kestrel", "Larkspur", "RELATED_TO"),
        Relation("Team Lantern", "Fathom", "OWNS"),
        Relation("Team Lantern", "Cinder", "OWNS"),
        Relation("Team Lantern", "Pagewell", "OWNS"),
        Relation("Fathom", "Cinder", "RELATED_TO"),
        Relation("Fathom", "Pagewell", "RELATED_TO"),
        Relation("Cinder", "Pagewell", "RELATED_TO"),
    ]


def test_member_of_and_works_in() -> None:
    text = "Jonah Pereira is a member of Team Aurora. Hana Whitlock works in Team Quill."
    assert extract_relations(text, ["Jonah Pereira", "Team Aurora", "Hana Whitlock", "Team Quill"]) == [
        Relation("Jonah Pereira", "Team Aurora", "MEMBER_OF"),
        Relation("Hana Whitlock", "Team Quill", "MEMBER_OF"),
    ]


def test_relations_stay_inside_a_sentence_and_are_unique() -> None:
    text = "Osprey is fast. Wayfinder is slow. Osprey owns Wayfinder. Osprey owns Wayfinder."
    assert extract_relations(text, ["Osprey", "Wayfinder"]) == [Relation("Osprey", "Wayfinder", "OWNS")]


def test_known_names_index_matches_a_plain_list() -> None:
    text = "Maya Okafor met Maya Lindqvist and Maya. Atlas Portal Team Alpha met Portal Team Alpha."
    names = ["Maya Okafor", "Maya Lindqvist", "Maya", "Atlas Portal", "Portal Team Alpha", "Atlas"]
    assert extract_entities(text, known=KnownNames(names)) == extract_entities(text, known=names)
    # The longest known name claims its span first, wherever it starts.
    assert extract_entities(text, known=names) == [
        "Maya Okafor",
        "Maya Lindqvist",
        "Maya",
        "Atlas",
        "Portal Team Alpha",
    ]


def test_known_names_with_odd_edges_are_still_whole_word() -> None:
    # Names that do not start and end with a word character take the per-name path.
    assert extract_entities("we ship .NET and (Osprey) to Quill", known=[".NET", "(Osprey)"]) == [
        ".NET",
        "(Osprey)",
        "Quill",
    ]


def test_mentions_sharing_a_first_word_each_relate() -> None:
    text = "Maya Okafor leads Maya Lindqvist and Maya Varga."
    assert extract_relations(text, ["Maya", "Maya Okafor", "Maya Lindqvist", "Maya Varga"]) == [
        Relation("Maya Okafor", "Maya Lindqvist", "LEADS"),
        Relation("Maya Okafor", "Maya Varga", "LEADS"),
        Relation("Maya Lindqvist", "Maya Varga", "RELATED_TO"),
    ]


# The demo corpus extracted as the indexer does it (document, then chunks with the document's
# names known), pinned when extraction was made linear: a rewrite for speed must not move the graph.
# If the corpus or the rules change on purpose, print `_demo_corpus_extraction()` and re-pin.
DEMO_CORPUS_EXTRACTION_SHA256 = "81063749d81d3bcf1d2d17394f0063ec1bdc16a716fae20362a01bea88440e8c"
DEMO_CORPUS = Path(__file__).resolve().parents[2] / "keel" / "app" / "demo" / "corpus"


def _demo_corpus_extraction() -> str:
    extracted = {}
    for path in sorted(DEMO_CORPUS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title_entities = extract_entities(parse_markdown_title(text, path.stem).split("(")[0])
        known = list(dict.fromkeys(title_entities + extract_entities(text)))
        chunks = []
        for piece in chunk_text(text, 700, 100):
            names = list(dict.fromkeys(title_entities + extract_entities(piece, known=known)))
            chunks.append([names, [list(vars(r).values()) for r in extract_relations(piece, names)]])
        extracted[path.name] = {"entities": known, "chunks": chunks}
    return json.dumps(extracted, sort_keys=True)


def test_demo_corpus_extraction_is_pinned() -> None:
    extraction = _demo_corpus_extraction()
    assert hashlib.sha256(extraction.encode()).hexdigest() == DEMO_CORPUS_EXTRACTION_SHA256

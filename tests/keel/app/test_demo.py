"""The demo corpus and its questions: sizes, ids, titles, and graph links for two-hop questions."""

from __future__ import annotations

import json
import re
from itertools import pairwise

import pytest

from ingestion.chunking import parse_markdown_title
from ingestion.entities import extract_entities
from keel.app.demo import CORPUS_DIR, QUESTIONS_FILE
from retrieval.entity_names import entity_key

pytestmark = pytest.mark.unit

CORPUS = CORPUS_DIR
# Named in every document, so it would link everything and prove nothing.
ORGANISATION = entity_key("Northwind Atlas")


def _documents() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.md"))}


def _questions() -> list[dict[str, object]]:
    questions = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))
    assert isinstance(questions, list)
    return questions


def _keys(text: str) -> set[str]:
    return {entity_key(name) for name in extract_entities(text)} - {ORGANISATION}


def test_corpus_size_and_document_ids() -> None:
    documents = _documents()
    assert 30 <= len(documents) <= 60
    assert all(
        re.fullmatch(r"(person|team|system|project|policy)-[a-z0-9]+(-[a-z0-9]+)*", d) for d in documents
    )


def test_every_document_has_a_title_naming_its_entity_and_a_sane_length() -> None:
    for doc_id, text in _documents().items():
        title = parse_markdown_title(text, fallback="")
        assert text.startswith(f"# {title}\n"), doc_id
        kind = doc_id.split("-", 1)[0]
        assert title.endswith(f"({kind})"), doc_id
        assert 80 <= len(text.split()) <= 250, doc_id


def test_each_title_entity_is_extracted_from_its_own_document() -> None:
    for doc_id, text in _documents().items():
        name = parse_markdown_title(text, fallback="").rsplit(" (", 1)[0]
        assert name in extract_entities(text), doc_id


def test_the_flagship_chain_is_extracted() -> None:
    documents = _documents()
    assert {"Kestrel", "Atlas Portal", "Oren Delacroix"} <= set(
        extract_entities(documents["project-halcyon"])
    )
    assert {"Kestrel", "Team Aurora", "Maya Okafor"} <= set(extract_entities(documents["system-kestrel"]))
    assert {"Team Aurora", "Maya Okafor", "Kestrel"} <= set(extract_entities(documents["team-aurora"]))


def test_questions_are_well_formed_and_cite_existing_documents() -> None:
    documents = _documents()
    questions = _questions()
    assert 20 <= len(questions) <= 30
    assert len({q["id"] for q in questions}) == len(questions)
    assert sum(q["hops"] == 2 for q in questions) >= 8
    for q in questions:
        assert set(q) == {"id", "question", "answer", "documents", "hops"}, q["id"]
        assert q["question"] and q["answer"], q["id"]
        assert q["hops"] in (1, 2), q["id"]
        cited = q["documents"]
        assert isinstance(cited, list) and cited, q["id"]
        assert set(cited) <= set(documents), q["id"]
        assert len(cited) >= q["hops"], q["id"]


def test_two_hop_chains_are_linked_through_named_entities() -> None:
    """Each hop must be an entity the graph can follow: a document names the next one's subject."""
    documents = _documents()
    for q in _questions():
        if q["hops"] != 2:
            continue
        cited = list(q["documents"])
        for here, there in pairwise(cited):
            subject_here = entity_key(parse_markdown_title(documents[here], "").rsplit(" (", 1)[0])
            subject_there = entity_key(parse_markdown_title(documents[there], "").rsplit(" (", 1)[0])
            linked = subject_there in _keys(documents[here]) or subject_here in _keys(documents[there])
            assert linked, (q["id"], here, there)


def test_answers_appear_in_the_cited_documents() -> None:
    documents = _documents()
    for q in _questions():
        text = " ".join(documents[d] for d in q["documents"]).casefold()
        answer = str(q["answer"]).casefold()
        # Answers like "Every quarter" quote the documents; compare their key words.
        words = [w for w in re.findall(r"[\w,.-]+", answer) if w not in {"from", "every", "to"}]
        assert all(w in text for w in words), (q["id"], words)

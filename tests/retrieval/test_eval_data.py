from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrieval.eval_data import DatasetError, load_beir, load_hotpotqa
from retrieval.types import SourceDocument

pytestmark = pytest.mark.unit

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces fever."},
    {"_id": "d2", "title": "", "text": "Ibuprofen is an NSAID."},
    {"_id": "d3", "text": "No title field at all."},
]
QUERIES = [
    {"_id": "q1", "text": "what reduces fever"},
    {"_id": "q2", "text": "what is ibuprofen"},
    {"_id": "q10", "text": "unjudged in train"},
]
TRAIN = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def beir_dir(root: Path, splits: dict[str, str] | None = None) -> Path:
    directory = root / "tinyfact"
    (directory / "qrels").mkdir(parents=True)
    write_jsonl(directory / "corpus.jsonl", CORPUS)
    write_jsonl(directory / "queries.jsonl", QUERIES)
    for split, text in (splits or {"train": TRAIN}).items():
        (directory / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return directory


def test_load_beir(tmp_path: Path) -> None:
    data = load_beir(beir_dir(tmp_path), "train")
    assert data.name == "tinyfact/train"
    assert data.documents == [
        SourceDocument("d1", "Aspirin", "Aspirin reduces fever."),
        SourceDocument("d2", "", "Ibuprofen is an NSAID."),
        SourceDocument("d3", "", "No title field at all."),
    ]
    # Only the split's judged queries are kept; grade-0 judgements are kept as given.
    assert data.queries == {"q1": "what reduces fever", "q2": "what is ibuprofen"}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
    assert len(data.fingerprint) == 16


def test_qrels_without_header_and_with_blank_jsonl_lines(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"test": "q1\td1\t1\n"})
    with (directory / "corpus.jsonl").open("a") as corpus:
        corpus.write("\n   \n")
    assert load_beir(directory, "test").qrels == {"q1": {"d1": 1}}


def test_fingerprint_follows_the_corpus(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path)
    first = load_beir(directory, "train").fingerprint
    assert load_beir(directory, "train").fingerprint == first
    write_jsonl(directory / "corpus.jsonl", [*CORPUS, {"_id": "d4", "text": "new"}])
    assert load_beir(directory, "train").fingerprint != first


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a directory"):
        load_beir(tmp_path / "nope", "test")


def test_unknown_split_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown split 'validation': expected one of train, dev, test"):
        load_beir(beir_dir(tmp_path), "validation")


def test_missing_split_names_the_available_ones(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"dev": TRAIN, "test": TRAIN})
    with pytest.raises(
        DatasetError, match=r"train\.tsv does not exist; splits with judgements here: dev, test"
    ):
        load_beir(directory, "train")


def test_bad_score(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"train": TRAIN + "q1\td2\thigh\n"})
    with pytest.raises(DatasetError, match=r"train\.tsv:5: score 'high' is not an integer"):
        load_beir(directory, "train")


def test_short_qrels_row(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"train": TRAIN + "q1\td2\n"})
    with pytest.raises(DatasetError, match=r"train\.tsv:5: expected query-id, corpus-id, score"):
        load_beir(directory, "train")


def test_empty_qrels(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"train": "query-id\tcorpus-id\tscore\n"})
    with pytest.raises(DatasetError, match="has no judgements"):
        load_beir(directory, "train")


def test_judged_query_missing_from_queries(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path, {"train": TRAIN + "q9\td1\t1\nq8\td1\t1\n"})
    with pytest.raises(DatasetError, match=r"2 judged queries are not in queries\.jsonl, e\.g\. q8"):
        load_beir(directory, "train")


def test_malformed_json_line(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path)
    with (directory / "corpus.jsonl").open("a") as corpus:
        corpus.write('{"_id": "d4", "text": \n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:4: not JSON"):
        load_beir(directory, "train")


def test_row_missing_a_required_field(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path)
    write_jsonl(directory / "queries.jsonl", [*QUERIES, {"_id": "q3"}])
    with pytest.raises(DatasetError, match=r"queries\.jsonl:4: missing text"):
        load_beir(directory, "train")


def test_missing_corpus_file(tmp_path: Path) -> None:
    directory = beir_dir(tmp_path)
    (directory / "corpus.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"corpus\.jsonl does not exist"):
        load_beir(directory, "train")


def test_sliced_keeps_the_first_judged_queries_in_id_order_and_the_whole_corpus(tmp_path: Path) -> None:
    train = TRAIN + "q10\td3\t1\n"
    data = load_beir(beir_dir(tmp_path, {"train": train}), "train")
    small = data.sliced(2)
    # String order: "q10" sorts before "q2".
    assert small.queries == {"q1": "what reduces fever", "q10": "unjudged in train"}
    assert small.qrels == {"q1": {"d1": 1}, "q10": {"d3": 1}}
    assert small.documents == data.documents
    assert (small.name, small.fingerprint) == (data.name, data.fingerprint)
    assert data.sliced(100) == data


def hotpot_row(qid: str, question: str, contexts: list[tuple[str, str, bool]]) -> dict[str, Any]:
    return {
        "question_id": qid,
        "question_text": question,
        "contexts": [
            {"title": title, "paragraph_text": text, "is_supporting": supporting}
            for title, text, supporting in contexts
        ],
    }


def test_load_hotpotqa_pools_paragraphs_by_title(tmp_path: Path) -> None:
    path = tmp_path / "hotpot_dev.jsonl"
    write_jsonl(
        path,
        [
            hotpot_row(
                "h1",
                "Which river flows through the birthplace of X?",
                [
                    ("X", "X was born in Y.", True),
                    ("Y", "Y lies on the Z river.", True),
                    ("W", "Noise.", False),
                ],
            ),
            hotpot_row(
                "h2",
                "Who founded W?",
                # "Y" again, with different text: the first paragraph seen is kept.
                [("W", "W was founded by V.", True), ("V", "V was a baker.", True), ("Y", "Other.", False)],
            ),
        ],
    )
    data = load_hotpotqa(path)
    assert data.name == "hotpot_dev"
    assert data.documents == [
        SourceDocument("X", "X", "X was born in Y."),
        SourceDocument("Y", "Y", "Y lies on the Z river."),
        SourceDocument("W", "W", "Noise."),
        SourceDocument("V", "V", "V was a baker."),
    ]
    assert data.queries == {"h1": "Which river flows through the birthplace of X?", "h2": "Who founded W?"}
    assert data.qrels == {"h1": {"X": 1, "Y": 1}, "h2": {"W": 1, "V": 1}}
    assert len(data.fingerprint) == 16


def test_hotpotqa_question_without_supporting_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "hotpot.jsonl"
    write_jsonl(
        path, [hotpot_row("h1", "Q?", [("A", "a", True)]), hotpot_row("h2", "Q?", [("B", "b", False)])]
    )
    with pytest.raises(DatasetError, match="question h2 has no supporting paragraph"):
        load_hotpotqa(path)


def test_hotpotqa_paragraph_without_title(tmp_path: Path) -> None:
    path = tmp_path / "hotpot.jsonl"
    write_jsonl(path, [hotpot_row("h1", "Q?", [("", "a", True)])])
    with pytest.raises(DatasetError, match="question h1 has a paragraph without a title"):
        load_hotpotqa(path)


def test_hotpotqa_missing_file_and_missing_field(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_hotpotqa(tmp_path / "absent.jsonl")
    path = tmp_path / "hotpot.jsonl"
    write_jsonl(path, [{"question_id": "h1", "question_text": "Q?"}])
    with pytest.raises(DatasetError, match=r"hotpot\.jsonl:1: missing contexts"):
        load_hotpotqa(path)

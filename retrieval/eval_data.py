"""Evaluation datasets: BEIR directories and HotpotQA question files, read into one shape."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.types import SourceDocument

SPLITS = ("train", "dev", "test")


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EvalDataset:
    """A corpus, the queries to run, and which documents answer each (graded relevance)."""

    name: str
    documents: list[SourceDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    # Content hash of what was read: an index built from it can be reused while it matches.
    fingerprint: str = field(default="")

    def sliced(self, max_queries: int) -> EvalDataset:
        """The first `max_queries` judged queries (in id order), with the whole corpus."""
        keep = sorted(self.qrels)[:max_queries]
        return EvalDataset(
            self.name,
            self.documents,
            {q: self.queries[q] for q in keep},
            {q: self.qrels[q] for q in keep},
            self.fingerprint,
        )


def load_beir(directory: Path, split: str) -> EvalDataset:
    """`corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` of a BEIR dataset directory."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        present = sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))
        raise DatasetError(
            f"{qrels_path} does not exist; splits with judgements here: {', '.join(present) or 'none'}"
        )
    documents = [
        SourceDocument(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _jsonl(directory / "corpus.jsonl", required=("_id",))
    ]
    all_queries = {
        str(row["_id"]): str(row["text"])
        for row in _jsonl(directory / "queries.jsonl", required=("_id", "text"))
    }
    qrels = _read_qrels(qrels_path)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise DatasetError(
            f"{qrels_path}: {len(missing)} judged queries are not in queries.jsonl, e.g. {missing[0]}"
        )
    return EvalDataset(
        name=f"{directory.name}/{split}",
        documents=documents,
        queries={q: all_queries[q] for q in sorted(qrels)},
        qrels=qrels,
        fingerprint=_fingerprint(directory / "corpus.jsonl"),
    )


def load_hotpotqa(path: Path) -> EvalDataset:
    """Pool every question's paragraphs into one corpus; a question's relevant ones are its supporting pair.

    Paragraph titles are Wikipedia article titles, unique across the pool, so the title is the id.
    """
    documents: dict[str, SourceDocument] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row in _jsonl(path, required=("question_id", "question_text", "contexts")):
        qid = str(row["question_id"])
        queries[qid] = str(row["question_text"])
        qrels[qid] = {}
        for context in row["contexts"]:
            title = str(context.get("title") or "")
            if not title:
                raise DatasetError(f"{path}: question {qid} has a paragraph without a title")
            documents.setdefault(
                title, SourceDocument(title, title, str(context.get("paragraph_text") or ""))
            )
            if context.get("is_supporting"):
                qrels[qid][title] = 1
        if not qrels[qid]:
            raise DatasetError(f"{path}: question {qid} has no supporting paragraph")
    return EvalDataset(
        name=path.stem,
        documents=list(documents.values()),
        queries=queries,
        qrels=qrels,
        fingerprint=_fingerprint(path),
    )


def _jsonl(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{number}: not JSON ({err.msg})") from None
            absent = [key for key in required if key not in row]
            if absent:
                raise DatasetError(f"{path}:{number}: missing {', '.join(absent)}")
            yield row


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as rows:
        reader = csv.reader(rows, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if number == 1 and row and row[-1].strip().lower() == "score":
                continue  # the header line (BEIR: query-id, corpus-id, score)
            if len(row) < 3:
                raise DatasetError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError:
                raise DatasetError(f"{path}:{number}: score {row[2]!r} is not an integer") from None
    if not qrels:
        raise DatasetError(f"{path} has no judgements")
    return qrels


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]

"""The answer step alone, on retrieval's real passages: fast iterations on the answerer and grade.

`keel eval --answers` runs the whole agent on a real Temporal (the acceptance figure, ~12 min for
HotpotQA dev_250). This bench keeps the retrieval part fixed: it indexes the pooled corpus once
(keel/app/eval_index.py, reused while corpus and settings are unchanged), runs the agent's
pipeline (retrieve, rerank, cut to `retrieval.rerank_k`) for every question, and keeps those
passages in a JSON dump. Then it runs the answerer and the grade over the dump and scores them as
`keel eval --answers` does, for two sets:
  answerable    the question against the whole pool;
  unanswerable  the same question with its supporting paragraphs taken out of the pool (dropped
                from the candidates before reranking, so the reranker never sees them).
It prints fact, F1, both supporting documents cited, abstention, words, CPU per answer, and the
grade's calibration: for each threshold, the share of wrong answers a review would catch against
the share of right answers it would hold up.

    cd bench && HF_HUB_OFFLINE=1 ../.venv/bin/python answer_offline.py
        [--hotpotqa ../../shared/assets/hotpotqa/dev_250.jsonl] [--dump FILE.json] [--limit N]
        [--out FILE.json] [--vector-cache FILE]
  Without --hotpotqa: the demo questions over the demo corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ingestion.entities import extract_entities
from keel.app.answer_eval import (
    Question,
    Record,
    calibration,
    demo_set,
    hotpotqa_set,
    score_answer,
    summarise,
)
from keel.app.eval_index import TENANT, falkordb_url, index_directory, open_index
from keel.core.chunks import ScoredChunk
from keel.core.models.extractive import ExtractiveProvider
from keel.core.models.grounding import assess
from keel.core.pipelines import pipeline_named
from keel.core.settings import Settings
from retrieval.encoders import SparseEncoder
from retrieval.eval_data import EvalDataset, load_hotpotqa
from retrieval.factories import make_dense_encoder, make_reranker
from retrieval.pipeline import Retriever
from retrieval.types import SourceDocument


def _passage(chunk: ScoredChunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "document_id": chunk.document_id,
        "title": chunk.title,
        "text": chunk.text,
        "score": chunk.score,
        "signals": chunk.signals,
    }


def _demo() -> tuple[EvalDataset, dict[str, list[str]]]:
    """The demo questions over the demo corpus, as a dataset (expected documents as qrels)."""
    answers = demo_set()
    documents = [SourceDocument(i, title, text) for i, title, text in answers.documents]
    digest = hashlib.sha256(json.dumps(answers.documents).encode()).hexdigest()[:16]
    dataset = EvalDataset(
        "demo",
        documents,
        {q.id: q.text for q in answers.questions},
        {q.id: {d: 1 for d in q.documents} for q in answers.questions},
        fingerprint=digest,
    )
    return dataset, {q.id: q.answers for q in answers.questions}


def dump_passages(path: Path | None, settings: Settings, limit: int) -> dict[str, Any]:
    """Every question's passages as the agent's first round gets them, with and without its
    supporting paragraphs in the pool."""
    if path is not None:
        dataset, golds = load_hotpotqa(path), {q.id: q.answers for q in hotpotqa_set(path).questions}
    else:
        dataset, golds = _demo()
    dense = make_dense_encoder(settings)
    sparse = SparseEncoder()
    pipeline = pipeline_named(settings.retrieval.pipeline)
    params = settings.retrieval.params()
    rows = []
    with (
        falkordb_url(settings, index_directory(dataset, settings)) as graph_url,
        open_index(dataset, settings, graph_url, dense, sparse) as index,
    ):
        retriever = Retriever(
            index.vectors, dense, sparse, index.graph, make_reranker(settings, dense), params
        )
        for n, qid in enumerate(list(dataset.queries)[: limit or None]):
            question = dataset.queries[qid]
            supporting = set(dataset.qrels[qid])
            found = retriever.candidates(TENANT, question, pipeline)
            with_all = retriever.ranked(TENANT, question, found.chunks[: params.rerank_depth], pipeline)
            pool = [c for c in found.chunks if c.document_id not in supporting]
            without = retriever.ranked(TENANT, question, pool[: params.rerank_depth], pipeline)
            texts = {
                c.chunk_id: c
                for c in index.vectors.get_chunks(TENANT, [c.chunk_id for c in with_all + without])
            }
            rows.append(
                {
                    "id": qid,
                    "question": question,
                    "gold": golds[qid],
                    "supporting": sorted(supporting),
                    "answerable": [_passage(replace(texts[c.chunk_id], signals=c.signals)) for c in with_all],
                    "unanswerable": [
                        _passage(replace(texts[c.chunk_id], signals=c.signals)) for c in without
                    ],
                }
            )
            if n % 25 == 0:
                sys.stderr.write(f"  retrieved {n + 1} questions\n")
    return {"dataset": str(path), "pipeline": pipeline.name, "rows": rows}


def _chunks(passages: list[dict[str, Any]]) -> list[ScoredChunk]:
    return [
        ScoredChunk(
            p["chunk_id"],
            p["document_id"],
            p["score"],
            title=p["title"],
            text=p["text"],
            signals=p["signals"],
        )
        for p in passages
    ]


def score_answers(dump: dict[str, Any], settings: Settings, vector_cache: Path | None) -> dict[str, Any]:
    dense = make_dense_encoder(settings)
    # As the worker encodes them: ONNX (int8 by default) with a cache of recent sentences.
    embed = dense.encode_sentences
    if vector_cache is not None:  # iterations on the answerer: the same sentences every run
        embed = _cached(dense.encode_sentences, vector_cache)
    provider = ExtractiveProvider(embed, find_entities=extract_entities)
    records: dict[str, list[Record]] = {"answerable": [], "unanswerable": []}
    cpu: dict[str, float] = {"generate": 0.0, "grade": 0.0}
    for row in dump["rows"]:
        question = Question(row["id"], row["question"], row["gold"], row["supporting"])
        for kind in records:
            passages = _chunks(row[kind])
            start = time.process_time()
            gen = provider.generate(row["question"], passages)
            cpu["generate"] += time.process_time() - start
            start = time.process_time()
            grade = assess(row["question"], gen, passages, embed)
            cpu["grade"] += time.process_time() - start
            cited = [c.document_id for c in gen.citations]
            records[kind].append(score_answer(question, gen.answer, cited, gen.model, grade.score))
    return {"records": records, "cpu_s": cpu, "answers": sum(len(r) for r in records.values())}


def _cached(embed: Any, path: Path) -> Any:
    import atexit
    import pickle

    known: dict[str, list[float]] = pickle.loads(path.read_bytes()) if path.is_file() else {}
    atexit.register(lambda: path.write_bytes(pickle.dumps(known)))

    def cached(texts: Any) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        known.update(zip(missing, embed(missing), strict=True))
        return [known[t] for t in texts]

    return cached


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.3f})" if whole else "0/0"


def report(scored: dict[str, Any]) -> str:
    answerable, unanswerable = scored["records"]["answerable"], scored["records"]["unanswerable"]
    a, u = summarise(answerable), summarise(unanswerable)
    lines = [
        f"answerable {a['n']}: fact {_share(a['fact'], a['fact_n'])}  F1 {a['f1'] or 0:.3f}"
        f"  yes/no {_share(a['yes_no'], a['yes_no_n'])}  both cited {_share(a['docs_cited'], a['docs_n'])}"
        f"  refused {_share(a['abstained'], a['n'])}  median words {a['median_words']:.0f}",
        f"unanswerable {u['n']}: abstained {_share(u['abstained'], u['n'])}",
        f"CPU per answer: generate {scored['cpu_s']['generate'] / scored['answers'] * 1000:.1f} ms,"
        f" grade {scored['cpu_s']['grade'] / scored['answers'] * 1000:.1f} ms",
        "",
        "grade calibration (keel eval's): answers sent, held back when the grade < t",
        f"{'t':>5} {'wrong caught':>18} {'right held':>18}",
    ]
    table = calibration(answerable, unanswerable)
    for row in table["rows"]:
        caught = _share(row["wrong_caught"], table["wrong_n"])
        held = _share(row["right_held"], table["right_n"])
        lines.append(f"{row['threshold']:>5.2f} {caught:>18} {held:>18}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hotpotqa", type=Path, help="HotpotQA jsonl; without it, the demo questions")
    parser.add_argument("--dump", type=Path, required=True, help="passages kept here; reused when present")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--vector-cache",
        type=Path,
        help="keep sentence vectors here between runs (CPU figures then mean nothing)",
    )
    args = parser.parse_args()
    settings = Settings()
    if args.dump.is_file():
        dump = json.loads(args.dump.read_text())
    else:
        dump = dump_passages(args.hotpotqa, settings, args.limit)
        args.dump.write_text(json.dumps(dump))
        sys.stderr.write(f"passages kept in {args.dump}\n")
    if args.limit:
        dump["rows"] = dump["rows"][: args.limit]
    scored = score_answers(dump, settings, args.vector_cache)
    print(report(scored))
    if args.out:
        records = {kind: [asdict(r) for r in rs] for kind, rs in scored["records"].items()}
        args.out.write_text(json.dumps({**scored, "records": records}, indent=1))


if __name__ == "__main__":
    main()

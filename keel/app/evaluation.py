"""`keel eval`: every retrieval pipeline over an isolated index of one dataset, scored and timed.

Supervised stages learn from the train split only. Evaluating another split, they are fit
once on all of train; evaluating train itself, they are cross-fitted (each fold is scored by
stages fit on the other folds), so no figure is measured on queries it was tuned on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from keel.app.eval_index import TENANT, EvalIndex, falkordb_url, index_directory, open_index
from keel.core.chunks import ScoredChunk
from keel.core.pipelines import PIPELINES, Pipeline
from keel.core.settings import Settings
from retrieval.encoders import SparseEncoder
from retrieval.eval_data import EvalDataset
from retrieval.factories import make_dense_encoder, make_reranker
from retrieval.feedback import QueryAdapter, train_query_adapter
from retrieval.fusion import convex_fusion
from retrieval.metrics import all_found_at, mrr_at, ndcg_at, recall_at
from retrieval.pipeline import Retrieval, Retriever

FOLDS = 5
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
# Every candidate is kept, so Recall@100 sees the whole fused list, not the agent's top 20.
EVAL_LIMIT = 10_000
RUN_DEPTH = 100  # documents per query handed to the metrics
WARMUP_QUERIES = 5


@dataclass
class Tuning:
    """What the supervised stages learnt for one group of evaluated queries."""

    dense_weight: float
    adapter: QueryAdapter | None
    fit_on: int  # train queries it learnt from


@dataclass
class PipelineResult:
    name: str
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]


def metric_table(hotpotqa: bool) -> dict[str, Callable[[Any, Any], float]]:
    table: dict[str, Callable[[Any, Any], float]] = {}
    if hotpotqa:
        table["both@5"] = lambda q, r: all_found_at(q, r, 5)
        table["both@10"] = lambda q, r: all_found_at(q, r, 10)
    table["nDCG@10"] = lambda q, r: ndcg_at(q, r, 10)
    table["R@10"] = lambda q, r: recall_at(q, r, 10)
    table["R@100"] = lambda q, r: recall_at(q, r, 100)
    table["MRR@10"] = lambda q, r: mrr_at(q, r, 10)
    return table


def document_run(chunks: Sequence[ScoredChunk], depth: int = RUN_DEPTH) -> dict[str, float]:
    """Chunks best first -> documents best first (a document ranks where its best chunk does)."""
    order = list(dict.fromkeys(c.document_id for c in chunks))[:depth]
    # Scores by rank, so the metrics' tie-breaking never reorders what the pipeline ranked.
    return {doc: float(len(order) - i) for i, doc in enumerate(order)}


def evaluate(
    dataset: EvalDataset,
    train: EvalDataset | None,
    settings: Settings,
    pipeline_names: Sequence[str],
    hotpotqa: bool = False,
    rebuild: bool = False,
    save_adapter: Path | None = None,
) -> dict[str, Any]:
    """Index the corpus (or reuse its index), fit on train, run every pipeline; the report as a dict."""
    for name in pipeline_names:
        if name not in PIPELINES:
            raise ValueError(f"unknown pipeline {name!r}; expected some of {', '.join(PIPELINES)}")
    if save_adapter is not None and train is None:
        raise ValueError("--save-adapter needs a train split to learn from")
    dense = make_dense_encoder(settings)
    sparse = SparseEncoder()
    # Built only when a pipeline reranks: a reranker whose weights are missing or broken
    # must not stop the evaluation of first stages (train_reranker.py needs exactly that).
    needs_reranker = any(PIPELINES[name].rerank for name in pipeline_names)
    reranker = make_reranker(settings, dense) if needs_reranker else None
    params = replace(settings.retrieval.params(), limit=EVAL_LIMIT)
    with (
        falkordb_url(settings, index_directory(dataset, settings)) as graph_url,
        open_index(dataset, settings, graph_url, dense, sparse, rebuild) as index,
    ):
        base = Retriever(index.vectors, dense, sparse, index.graph, reranker, params)
        reranker_name = reranker.name if reranker else "none"
        _progress(
            f"{len(index.chunk_ids)} chunks, {len(dataset.documents)} documents; reranker {reranker_name}"
        )
        queries = _train_queries(train, base, index) if train is not None else {}
        groups = _tuned_groups(dataset, train, queries, index, params.dense_weight)
        if save_adapter is not None and train is not None:
            _save_full_adapter(train, queries, index, groups, save_adapter)
        # Untimed warm-up: first calls pay for lazy imports, allocations and cold caches.
        for qid in sorted(dataset.qrels)[:WARMUP_QUERIES]:
            base.retrieve(TENANT, dataset.queries[qid], PIPELINES["hybrid-graph"])
        results = []
        for name in pipeline_names:
            pipeline = PIPELINES[name]
            if pipeline.feedback and any(t.adapter is None for _, t in groups):
                _progress(f"{name}: skipped (no train split to learn feedback from)")
                continue
            results.append(_run_pipeline(pipeline, groups, base, dataset, hotpotqa))
            _progress(f"{name}: " + "  ".join(f"{k} {v:.4f}" for k, v in results[-1].metrics.items()))
        chunks = len(index.chunk_ids)
    return {
        "dataset": dataset.name,
        "queries": len(dataset.qrels),
        "documents": len(dataset.documents),
        "chunks": chunks,
        "reranker": reranker_name,
        "default_pipeline": settings.retrieval.pipeline,
        "tuning": [
            {
                "queries": len(qids),
                "fit_on_train_queries": t.fit_on,
                "dense_weight": t.dense_weight,
                "feedback_adapter": t.adapter.digest if t.adapter else None,
            }
            for qids, t in groups
        ],
        "pipelines": {r.name: {"metrics": r.metrics, "latency_ms": r.latency_ms} for r in results},
    }


@dataclass
class TrainQuery:
    """What fitting needs of one train query, computed once for every fold."""

    dense_hits: list[ScoredChunk]
    bm25_hits: list[ScoredChunk]
    vector: np.ndarray  # the plain dense query vector
    positives: list[int]  # rows of index.chunk_vectors that belong to its relevant documents


def _train_queries(train: EvalDataset, base: Retriever, index: EvalIndex) -> dict[str, TrainQuery]:
    """One hybrid search per train query: its two lists, its vector, its positive chunks."""
    rows_of: dict[str, list[int]] = {}
    for row, doc in enumerate(index.chunk_documents):
        rows_of.setdefault(doc, []).append(row)
    hybrid = PIPELINES["hybrid-convex"]
    out = {}
    for qid in sorted(train.qrels):
        found = base.candidates(TENANT, train.queries[qid], hybrid)
        assert found.query_vector is not None  # hybrid-convex searches dense, without feedback
        out[qid] = TrainQuery(
            found.hits.get("dense", []),
            found.hits.get("bm25", []),
            np.asarray(found.query_vector, dtype=np.float32),
            [row for doc, grade in train.qrels[qid].items() if grade > 0 for row in rows_of.get(doc, [])],
        )
    return out


def _tuned_groups(
    dataset: EvalDataset,
    train: EvalDataset | None,
    queries: dict[str, TrainQuery],
    index: EvalIndex,
    default_weight: float,
) -> list[tuple[list[str], Tuning]]:
    """(evaluated query ids, the tuning they are scored with), covering every evaluated query."""
    qids = sorted(dataset.qrels)
    if train is None:
        return [(qids, Tuning(default_weight, None, 0))]
    train_ids = sorted(train.qrels)
    if set(qids) & set(train_ids):  # evaluating (part of) train: cross-fit
        folds = [qids[f::FOLDS] for f in range(FOLDS)]
        groups = []
        for number, fold in enumerate(folds, start=1):
            held_out = set(fold)
            fit_ids = [q for q in train_ids if q not in held_out]
            _progress(f"fold {number}/{FOLDS}: fitting on {len(fit_ids)} train queries")
            groups.append((fold, _fit(train, fit_ids, queries, index)))
        return groups
    _progress(f"fitting on {len(train_ids)} train queries")
    return [(qids, _fit(train, train_ids, queries, index))]


def _save_full_adapter(
    train: EvalDataset,
    queries: dict[str, TrainQuery],
    index: EvalIndex,
    groups: list[tuple[list[str], Tuning]],
    path: Path,
) -> None:
    """The adapter for the agent: fit on all of train (cross-fitted folds each left part out)."""
    train_ids = sorted(train.qrels)
    if len(groups) == 1 and groups[0][1].fit_on == len(train_ids) and groups[0][1].adapter is not None:
        adapter = groups[0][1].adapter
    else:
        adapter = _fit_adapter(train, train_ids, queries, index)
    adapter.save(path)
    _progress(f"saved the feedback adapter {adapter.digest} ({adapter.trained_on}) to {path}")


def _fit(train: EvalDataset, fit_ids: list[str], queries: dict[str, TrainQuery], index: EvalIndex) -> Tuning:
    qrels = {q: train.qrels[q] for q in fit_ids}
    lists = {q: [queries[q].dense_hits, queries[q].bm25_hits] for q in fit_ids}

    def score(weight: float) -> float:
        run = {q: document_run(convex_fusion(lists[q], [weight, 1 - weight])) for q in fit_ids}
        return ndcg_at(qrels, run, 10)

    # Best nDCG@10 on the fitted queries; ties go to the weight nearer an even blend.
    weight = max(WEIGHT_GRID, key=lambda w: (round(score(w), 6), -abs(w - 0.5)))
    return Tuning(weight, _fit_adapter(train, fit_ids, queries, index), len(fit_ids))


def _fit_adapter(
    train: EvalDataset, fit_ids: list[str], queries: dict[str, TrainQuery], index: EvalIndex
) -> QueryAdapter:
    return train_query_adapter(
        np.vstack([queries[q].vector for q in fit_ids]),
        index.chunk_vectors,
        [queries[q].positives for q in fit_ids],
        trained_on=f"{train.name} ({len(fit_ids)} queries)",
    )


def _run_pipeline(
    pipeline: Pipeline,
    groups: list[tuple[list[str], Tuning]],
    base: Retriever,
    dataset: EvalDataset,
    hotpotqa: bool,
) -> PipelineResult:
    run: dict[str, dict[str, float]] = {}
    stages: dict[str, list[float]] = {}
    for qids, tuning in groups:
        retriever = base.tuned(replace(base.params, dense_weight=tuning.dense_weight), tuning.adapter)
        for qid in qids:
            start = time.perf_counter()
            found: Retrieval = retriever.retrieve(TENANT, dataset.queries[qid], pipeline)
            total = (time.perf_counter() - start) * 1000
            run[qid] = document_run(found.chunks)
            for stage, ms in {**found.stages_ms, "total": total}.items():
                stages.setdefault(stage, []).append(ms)
    metrics = {name: round(fn(dataset.qrels, run), 4) for name, fn in metric_table(hotpotqa).items()}
    latency = {
        stage: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
        for stage, v in stages.items()
    }
    return PipelineResult(pipeline.name, metrics, latency)


def format_report(report: dict[str, Any]) -> str:
    """The report as two plain-text tables: quality, then latency per stage (p50 / p95 ms)."""
    pipelines = report["pipelines"]
    if not pipelines:
        return "no pipeline ran"
    metric_names = list(next(iter(pipelines.values()))["metrics"])
    stage_names = ["encode_dense", "dense", "encode_bm25", "bm25", "fuse", "graph", "rerank", "total"]
    default = report.get("default_pipeline", "")
    note = f"* the agent's pipeline (settings: retrieval.pipeline = {default})"
    if default not in pipelines and default.replace("+feedback", "") in pipelines:
        # No train split, so no adapter: the agent's pipeline runs as its feedback-free twin.
        default = default.replace("+feedback", "")
        note += f", which without a feedback adapter is {default}"

    def label(name: str) -> str:
        return f"{name} *" if name == default else name

    width = max(len(label(n)) for n in pipelines) + 2
    lines = [
        f"{report['dataset']}: {report['queries']} queries, {report['documents']} documents "
        f"({report['chunks']} chunks); reranker {report['reranker']}",
        "tuning: "
        + "; ".join(
            f"{t['queries']} queries <- fit on {t['fit_on_train_queries']} (dense weight {t['dense_weight']}"
            f"{', adapter ' + t['feedback_adapter'] if t['feedback_adapter'] else ''})"
            for t in report["tuning"]
        ),
        "",
        "pipeline".ljust(width) + "".join(m.rjust(9) for m in metric_names),
    ]
    for name, result in pipelines.items():
        lines.append(label(name).ljust(width) + "".join(f"{result['metrics'][m]:9.4f}" for m in metric_names))
    if default in pipelines:
        lines.append(note)
    lines += ["", "latency ms p50/p95".ljust(width) + "".join(s.rjust(13) for s in stage_names)]
    for name, result in pipelines.items():
        cells = []
        for stage in stage_names:
            t = result["latency_ms"].get(stage)
            cells.append((f"{t['p50']:.1f}/{t['p95']:.1f}" if t else "-").rjust(13))
        lines.append(label(name).ljust(width) + "".join(cells))
    return "\n".join(lines)


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")

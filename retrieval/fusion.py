"""Fusion of ranked chunk lists: reciprocal rank fusion, and a convex combination of normalised scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from keel.core.chunks import ScoredChunk


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[ScoredChunk]],
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Fuse lists by sum of weight / (k + rank), rank from 1; ties broken by chunk_id."""
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if weights is None:
        weights = [1.0] * len(ranked_lists)
    elif len(weights) != len(ranked_lists):
        raise ValueError(f"{len(weights)} weights for {len(ranked_lists)} ranked lists")

    scores: dict[str, float] = {}
    first: dict[str, ScoredChunk] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        seen: set[str] = set()
        for rank, chunk in enumerate(ranked, start=1):
            # A list that repeats a chunk counts it once, at its best rank.
            if chunk.chunk_id in seen:
                continue
            seen.add(chunk.chunk_id)
            scores[chunk.chunk_id] = scores.get(chunk.chunk_id, 0.0) + weight / (k + rank)
            first[chunk.chunk_id] = _merge(first.get(chunk.chunk_id), chunk)

    return _fused(first, scores, raw_scores(ranked_lists), limit)


def convex_fusion(
    ranked_lists: Sequence[Sequence[ScoredChunk]],
    weights: Sequence[float],
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Fuse lists by sum of weight * min-max normalised score; a chunk absent from a list gets 0 there.

    Unlike RRF it keeps how far apart the scores are, which is what makes a tuned weight
    worth having (on SciFact train it beat RRF by 0.01 nDCG@10: 0.734 vs 0.724). Each list is
    normalised over its own depth, so the lists must be cut at comparable depths.
    """
    if len(weights) != len(ranked_lists):
        raise ValueError(f"{len(weights)} weights for {len(ranked_lists)} ranked lists")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must not be negative, got {list(weights)}")
    scores: dict[str, float] = {}
    first: dict[str, ScoredChunk] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        best: dict[str, float] = {}
        for chunk in ranked:
            best[chunk.chunk_id] = max(best.get(chunk.chunk_id, chunk.score), chunk.score)
            first[chunk.chunk_id] = _merge(first.get(chunk.chunk_id), chunk)
        if not best:
            continue
        low, high = min(best.values()), max(best.values())
        span = high - low
        for chunk_id, score in best.items():
            # A list whose scores are all equal says only "these matched": full marks to each.
            normalised = (score - low) / span if span > 0 else 1.0
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * normalised
    for chunk_id in first:
        scores.setdefault(chunk_id, 0.0)
    return _fused(first, scores, raw_scores(ranked_lists), limit)


# Retrievers whose raw scores become signals (graph or fused lists carry theirs already).
RETRIEVERS = ("dense", "bm25")


def raw_scores(ranked_lists: Sequence[Sequence[ScoredChunk]]) -> dict[str, dict[str, float]]:
    """chunk_id -> {retriever: its best raw score}, for the lists a retriever produced."""
    raw: dict[str, dict[str, float]] = {}
    for ranked in ranked_lists:
        for chunk in ranked:
            if chunk.source in RETRIEVERS:
                per_chunk = raw.setdefault(chunk.chunk_id, {})
                per_chunk[chunk.source] = max(per_chunk.get(chunk.source, chunk.score), chunk.score)
    return raw


def _fused(
    first: dict[str, ScoredChunk],
    scores: dict[str, float],
    raw: dict[str, dict[str, float]],
    limit: int | None,
) -> list[ScoredChunk]:
    """Best first, ties by chunk_id; each chunk's signals gain its raw scores and the fused one."""
    ordered = sorted(scores, key=lambda cid: (-scores[cid], cid))
    if limit is not None:
        ordered = ordered[:limit]
    return [
        rescored(
            first[cid], scores[cid], "fused", {**first[cid].signals, **raw.get(cid, {}), "fused": scores[cid]}
        )
        for cid in ordered
    ]


def rescored(chunk: ScoredChunk, score: float, source: str, signals: dict[str, float]) -> ScoredChunk:
    """`chunk` with a new score, source and signals. Built directly: `dataclasses.replace` took
    4x as long, 1 ms of a hybrid query's 1.5 ms of fusion at 200 candidates."""
    return ScoredChunk(
        chunk_id=chunk.chunk_id,
        document_id=chunk.document_id,
        score=score,
        title=chunk.title,
        text=chunk.text,
        source=source,
        version=chunk.version,
        dense=chunk.dense,
        signals=signals,
    )


def _merge(kept: ScoredChunk | None, new: ScoredChunk) -> ScoredChunk:
    """Keep the first non-empty text/title/version/document_id seen for a chunk."""
    if kept is None:
        return new
    complete = kept.document_id and kept.title and kept.text and kept.version
    if complete and not new.signals and (kept.dense is not None or new.dense is None):
        return kept  # nothing to fill in: skip the copy (fusion is on every query's path)
    return replace(
        kept,
        document_id=kept.document_id or new.document_id,
        title=kept.title or new.title,
        text=kept.text or new.text,
        version=kept.version or new.version,
        dense=kept.dense if kept.dense is not None else new.dense,
        signals={**new.signals, **kept.signals},
    )

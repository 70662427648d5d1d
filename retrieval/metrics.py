"""Ranking metrics, as trec_eval computes them (tests check them against pytrec_eval).

`qrels` maps query id → {document id: graded relevance}; `run` maps query id →
{document id: score}. Every query in `qrels` counts: a query the run has no
ranking for scores 0, so a pipeline cannot look better by answering less.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]
PerQuery = Callable[[Mapping[str, int], list[str]], float]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first; ties broken by id descending, as trec_eval does."""
    # trec_eval sorts equal scores by strcmp descending ("ab" before "a"): sort by id
    # descending first, then stably by score.
    return sorted(sorted(scores, reverse=True), key=lambda doc: -scores[doc])


def ndcg_at(qrels: Qrels, run: Run, k: int) -> float:
    """Mean nDCG@k with linear gains (trec_eval's ndcg_cut)."""
    return _mean(qrels, run, lambda rels, docs: _ndcg(rels, docs, k))


def recall_at(qrels: Qrels, run: Run, k: int) -> float:
    """Mean fraction of each query's relevant documents found in its top k."""
    return _mean(qrels, run, lambda rels, docs: _recall(rels, docs, k))


def mrr_at(qrels: Qrels, run: Run, k: int) -> float:
    """Mean reciprocal rank of the first relevant document within the top k (0 if none)."""
    return _mean(qrels, run, lambda rels, docs: _reciprocal_rank(rels, docs, k))


def all_found_at(qrels: Qrels, run: Run, k: int) -> float:
    """Fraction of queries with every relevant document in the top k (HotpotQA: both paragraphs)."""
    return _mean(qrels, run, lambda rels, docs: float(_recall(rels, docs, k) == 1.0))


def _mean(qrels: Qrels, run: Run, per_query: PerQuery) -> float:
    judged = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    if not judged:
        raise ValueError("no query has a relevant document: nothing to measure")
    total = 0.0
    for query in judged:
        total += per_query(qrels[query], ranked(run.get(query, {})))
    return total / len(judged)


def _ndcg(rels: Mapping[str, int], docs: list[str], k: int) -> float:
    dcg = sum(max(rels.get(doc, 0), 0) / math.log2(rank + 2) for rank, doc in enumerate(docs[:k]))
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def _recall(rels: Mapping[str, int], docs: list[str], k: int) -> float:
    relevant = {doc for doc, g in rels.items() if g > 0}
    return len(relevant.intersection(docs[:k])) / len(relevant)


def _reciprocal_rank(rels: Mapping[str, int], docs: list[str], k: int) -> float:
    for rank, doc in enumerate(docs[:k], start=1):
        if rels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0

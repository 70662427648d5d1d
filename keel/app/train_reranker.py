"""Train the no-download reranker (retrieval/weights/ltr.json) on a BEIR train split.

    .venv/bin/python -m keel.app.train_reranker --dataset ../shared/assets/beir/scifact

Candidates are what the reranker sees in production: the top `rerank_depth` of the
hybrid-graph pipeline, with the same signals. The model is a pairwise logistic regression
(relevant minus non-relevant candidate of one query) over `retrieval.ltr.FEATURES`.
It prints 5-fold cross-validated nDCG@10 (first stage vs reranked) on train, fits on all
of train and writes the weights with those figures. Only the train split is read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from keel.app.eval_index import TENANT, falkordb_url, index_directory, open_index
from keel.app.evaluation import FOLDS, document_run
from keel.core.chunks import ScoredChunk
from keel.core.pipelines import PIPELINES
from keel.core.settings import Settings
from retrieval.encoders import SparseEncoder
from retrieval.eval_data import DatasetError, EvalDataset, load_beir
from retrieval.factories import make_dense_encoder
from retrieval.ltr import DEFAULT_WEIGHTS, FEATURES, LinearModel, feature_matrix
from retrieval.metrics import ndcg_at
from retrieval.pipeline import Retriever

PIPELINE = "hybrid-graph"
SEED = 0


class _Capture:
    """A reranker that keeps its input order: lets Retriever.rerank prepare candidates as in production."""

    name = "capture"

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]:
        return list(chunks)[:limit]


def candidates(train: EvalDataset, retriever: Retriever) -> dict[str, tuple[list[ScoredChunk], np.ndarray]]:
    pipeline = PIPELINES[PIPELINE]
    out = {}
    for qid in sorted(train.qrels):
        query = train.queries[qid]
        found = retriever.candidates(TENANT, query, pipeline)
        head = retriever.rerank(
            TENANT, query, found.chunks[: retriever.params.rerank_depth], pipeline, found.query_vector
        )
        out[qid] = (head, feature_matrix(query, head))
    return out


def fit(
    qids: list[str], data: dict[str, tuple[list[ScoredChunk], np.ndarray]], train: EvalDataset
) -> LinearModel:
    every = np.vstack([data[q][1] for q in qids])
    mean, scale = every.mean(axis=0), every.std(axis=0)
    scale[scale == 0] = 1.0
    differences = []
    for q in qids:
        chunks, matrix = data[q]
        z = (matrix - mean) / scale
        relevant = np.array([train.qrels[q].get(c.document_id, 0) > 0 for c in chunks])
        for i in np.flatnonzero(relevant):
            for j in np.flatnonzero(~relevant):
                differences.append(z[i] - z[j])
    x = np.asarray(differences)
    # Each pair both ways round: a symmetric problem, so no intercept is needed.
    model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=1000, random_state=SEED)
    model.fit(np.vstack([x, -x]), np.r_[np.ones(len(x)), np.zeros(len(x))])
    return LinearModel(
        mean, scale, model.coef_[0].astype(np.float64), trained_on=f"{train.name}, {len(qids)} queries"
    )


def score(
    qids: list[str],
    data: dict[str, tuple[list[ScoredChunk], np.ndarray]],
    train: EvalDataset,
    model: LinearModel | None,
) -> float:
    run = {}
    for q in qids:
        chunks, matrix = data[q]
        if model is None:
            ordered = chunks
        else:
            learned = model.score(matrix)
            order = sorted(range(len(chunks)), key=lambda i: (-learned[i], chunks[i].chunk_id))
            ordered = [chunks[i] for i in order]
        run[q] = document_run(ordered)
    return ndcg_at({q: train.qrels[q] for q in qids}, run, 10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a BEIR directory with qrels/train.tsv")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args()
    try:
        train = load_beir(args.dataset, "train")
    except DatasetError as err:
        sys.stderr.write(f"train_reranker: {err}\n")
        return 2
    settings = Settings()
    dense = make_dense_encoder(settings)
    sparse = SparseEncoder()
    with (
        falkordb_url(settings, index_directory(train, settings)) as url,
        open_index(train, settings, url, dense, sparse) as index,
    ):
        retriever = Retriever(
            index.vectors, dense, sparse, index.graph, _Capture(), settings.retrieval.params()
        )
        data = candidates(train, retriever)
    qids = sorted(data)
    folds = [qids[f::FOLDS] for f in range(FOLDS)]
    first, reranked = [], []
    for fold in folds:
        held_out = set(fold)
        model = fit([q for q in qids if q not in held_out], data, train)
        first.append(score(fold, data, train, None) * len(fold))
        reranked.append(score(fold, data, train, model) * len(fold))
    cv_first, cv_reranked = sum(first) / len(qids), sum(reranked) / len(qids)
    sys.stdout.write(
        f"{PIPELINE} top {settings.retrieval.rerank_depth}, {FOLDS}-fold CV on {len(qids)} train queries: "
        f"nDCG@10 first stage {cv_first:.4f}, reranked {cv_reranked:.4f}\n"
    )
    model = fit(qids, data, train)
    weights = ", ".join(f"{n} {w:+.3f}" for n, w in zip(FEATURES, model.weights, strict=True))
    sys.stdout.write(f"weights: {weights}\n")
    model.save(
        args.out,
        {
            "pipeline": PIPELINE,
            "cv_ndcg@10": {"first_stage": round(cv_first, 4), "reranked": round(cv_reranked, 4)},
        },
    )
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from retrieval.metrics import Qrels, Run, all_found_at, mrr_at, ndcg_at, ranked, recall_at

pytestmark = pytest.mark.unit

# Ids where one is a prefix of another ("d1", "d10") make the tie order matter.
DOCS = [f"d{i}" for i in range(150)]
# Few distinct scores, so many documents tie.
SCORES = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]


def random_case(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Graded qrels (some queries judged only non-relevant) and a run missing some queries."""
    rng = random.Random(seed)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {doc: rng.choice([0, 1, 1, 2, 3]) for doc in rng.sample(DOCS, rng.randint(1, 8))}
        if q % 10 == 3:
            qrels[qid] = dict.fromkeys(qrels[qid], 0)
        if q % 7 == 0:
            continue  # the run has no ranking for this query
        depth = rng.choice([0, 3, 10, 40, 150])
        # Rankings drawn partly from the judged documents, so the metrics are not all 0.
        pool = list(dict.fromkeys([*rng.sample(list(qrels[qid]), len(qrels[qid])), *rng.sample(DOCS, depth)]))
        run[qid] = {doc: rng.choice(SCORES) for doc in pool[:depth]}
    run["unjudged"] = {"d1": 1.0}  # a query the qrels do not know is ignored by both
    return qrels, run


def reference(qrels: Qrels, run: Run, measure: str) -> float:
    """pytrec_eval's per-query values, averaged our way.

    pytrec_eval skips a query the run has no ranking for; ours counts it as 0. So: sum over the
    queries pytrec_eval scores, divided by every query with at least one relevant document.
    """
    judged = {q: dict(rels) for q, rels in qrels.items() if any(g > 0 for g in rels.values())}
    family = measure.rsplit("_", 1)[0] if measure != "recip_rank" else measure
    per_query = pytrec_eval.RelevanceEvaluator(judged, {family}).evaluate(
        {q: dict(scores) for q, scores in run.items()}
    )
    return sum(values[measure] for q, values in per_query.items() if q in judged) / len(judged)


def top(run: Run, k: int) -> dict[str, dict[str, float]]:
    """Each ranking cut to its first k, ordered as trec_eval orders (score, then id, descending)."""
    cut = {}
    for q, scores in run.items():
        order = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
        cut[q] = dict(order[:k])
    return cut


SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [5, 10, 100])
def test_ndcg_and_recall_match_trec_eval(seed: int, k: int) -> None:
    qrels, run = random_case(seed)
    assert ndcg_at(qrels, run, k) == pytest.approx(reference(qrels, run, f"ndcg_cut_{k}"), abs=1e-9)
    assert recall_at(qrels, run, k) == pytest.approx(reference(qrels, run, f"recall_{k}"), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_mrr_at_10_matches_trec_eval_on_runs_cut_at_10(seed: int) -> None:
    # recip_rank has no cutoff: compare on rankings no deeper than 10.
    qrels, run = random_case(seed)
    cut = top(run, 10)
    expected = reference(qrels, cut, "recip_rank")
    assert mrr_at(qrels, run, 10) == pytest.approx(expected, abs=1e-9)
    assert mrr_at(qrels, cut, 10) == pytest.approx(expected, abs=1e-9)


def test_random_cases_exercise_ties_missing_queries_and_misses() -> None:
    # Guards the comparison itself: the cases must contain what they claim to.
    qrels, run = random_case(0)
    assert any(q not in run for q in qrels)
    assert any(len(set(scores.values())) < len(scores) for scores in run.values())
    assert any(not any(rels.values()) for rels in qrels.values())
    assert 0 < ndcg_at(qrels, run, 10) < 1
    assert 0 < mrr_at(qrels, run, 10) < 1


def test_ties_are_ordered_by_id_descending_as_trec_eval_does() -> None:
    scores = {"a": 1.0, "ab": 1.0, "b": 1.0, "c": 2.0, "d1": 1.0, "d10": 1.0}
    assert ranked(scores) == ["c", "d10", "d1", "b", "ab", "a"]
    # trec_eval puts "ab" before "a": with "a" relevant it is found at rank 2.
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "ab": 1.0}}
    assert mrr_at(qrels, run, 10) == pytest.approx(reference(qrels, run, "recip_rank")) == 0.5


def test_ndcg_by_hand() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"b": 0.9, "c": 0.8, "a": 0.5}}
    dcg = 1 / math.log2(2) + 0 + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(qrels, run, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at(qrels, run, 1) == pytest.approx(1 / 2)


def test_all_found_at_by_hand() -> None:
    qrels = {
        "both-found-late": {"a": 1, "b": 1},
        "one-needed": {"c": 2, "x": 0},  # a grade-0 judgement is not something to find
        "missing-from-run": {"d": 1, "e": 1},
        "nothing-relevant": {"f": 0},  # does not count at all
    }
    run = {
        "both-found-late": {"a": 0.9, "z": 0.8, "b": 0.7},
        "one-needed": {"c": 0.3},
    }
    assert all_found_at(qrels, run, 1) == pytest.approx(1 / 3)
    assert all_found_at(qrels, run, 2) == pytest.approx(1 / 3)
    assert all_found_at(qrels, run, 3) == pytest.approx(2 / 3)
    assert recall_at(qrels, run, 2) == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_mrr_is_cut_at_k() -> None:
    qrels = {"q": {"hit": 1}}
    run = {"q": {**{f"m{i}": 1.0 - i / 100 for i in range(10)}, "hit": 0.5}}
    assert mrr_at(qrels, run, 10) == 0.0
    assert mrr_at(qrels, run, 11) == pytest.approx(1 / 11)


def test_no_relevant_document_anywhere_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query has a relevant document"):
        ndcg_at({"q": {"a": 0}}, {"q": {"a": 1.0}}, 10)
    with pytest.raises(ValueError, match="no query has a relevant document"):
        recall_at({}, {}, 10)

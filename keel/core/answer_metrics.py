"""Answer quality metrics, pure: what `keel eval --answers` and bench/routing.py score answers by.

`normalize_answer` and `f1_score` follow the official HotpotQA evaluation script
(hotpot_evaluate_v1.py, github.com/hotpotqa/hotpot): its `normalize_answer` (lowercase, drop
punctuation, drop the articles a/an/the, collapse whitespace) and its `f1_score` (token overlap of
the normalised texts; 0 when either side is "yes", "no" or "noanswer" and they differ). The
script's exact match is an equality of normalised texts: too strict for free-text answers, so
Keel reports *fact* instead (`fact_found`), the normalised gold contained in the normalised answer
on word boundaries, and scores yes/no questions apart (`yes_no_correct`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Golds on which the script's f1_score gives 0 to any different prediction.
_SPECIAL = ("yes", "no", "noanswer")
YES_NO = ("yes", "no")


def normalize_answer(text: str) -> str:
    """The official script's normalize_answer: lower, remove punctuation, articles, extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1_score(prediction: str, gold: str) -> float:
    """The official script's f1_score (its F1; precision and recall dropped)."""
    pred, truth = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or truth in _SPECIAL) and pred != truth:
        return 0.0
    pred_tokens, truth_tokens = pred.split(), truth.split()
    same = sum((Counter(pred_tokens) & Counter(truth_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: Sequence[str]) -> float:
    """F1 against the closest of several acceptable golds (the script's max over ground truths)."""
    return max((f1_score(prediction, g) for g in golds), default=0.0)


def fact_found(prediction: str, golds: Sequence[str]) -> bool:
    """Some normalised gold inside the normalised answer on word boundaries ("no" is not in "not")."""
    pred = f" {normalize_answer(prediction)} "
    return any(f" {gold} " in pred for g in golds if (gold := normalize_answer(g)))


def yes_no_gold(golds: Sequence[str]) -> str | None:
    """The gold when it is yes or no (a HotpotQA comparison question), else None."""
    found = {normalize_answer(g) for g in golds}
    return next((g for g in YES_NO if g in found), None)


def yes_no_correct(prediction: str, gold: str) -> bool:
    """A yes/no question answered right: the normalised answer's first word is the gold.

    Keel's definition (the script has none beyond exact match): an answer to a yes/no question
    starts with it, and a sentence merely containing "no" somewhere ("no later than…") is no
    answer, so containment is not enough.
    """
    words = normalize_answer(prediction).split()
    return bool(words) and words[0] == gold


def answer_words(text: str) -> int:
    """Words in an answer as written (whitespace-separated)."""
    return len(text.split())

"""The answer cache's similarity threshold, chosen on the committed paraphrase set.

Encodes both questions of every pair in bench/data/paraphrases.jsonl with the worker's query
encoder (settings.embedding.query_runtime, ONNX int8 by default) and prints, for thresholds
0.80..0.99, the hit rate on true paraphrases and the false-hit rate on hard negatives (another
entity, number, date, direction, negation or attribute): for the cosine alone, with the
`same_specifics` guard as well, and with the stricter `same_wording` guard
(keel/core/answer_cache.py). The chosen threshold is the lowest with no false hit on this set
(else the lowest with the fewest); a false hit serves a wrong answer, a missed paraphrase only
costs one agent run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/answer_cache_threshold.py [--data-dir .keel] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.core.answer_cache import same_specifics, same_wording
from keel.core.settings import Settings
from retrieval.factories import make_dense_encoder

PAIRS = Path(__file__).parent / "data" / "paraphrases.jsonl"
THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(20)]
# Hard negatives shown with their cosine: the ones a threshold must stay above.
HARDEST_SHOWN = 12


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    cosine: float
    guard: bool  # same_specifics(a, b)
    wording: bool  # same_wording(a, b)


@dataclass(frozen=True)
class Row:
    threshold: float
    hit_rate: float  # true paraphrases served from cache
    false_hit_rate: float  # hard negatives served from cache: a wrong answer
    false_hits: int


def load_pairs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def encode_pairs(rows: list[dict[str, Any]], settings: Settings) -> tuple[list[Pair], str, float]:
    """Each pair with its cosine; also the runtime that encoded queries and its mean ms a query."""
    encoder = make_dense_encoder(settings)
    encoder.encode_query("warm up")
    started = time.perf_counter()
    pairs = []
    for row in rows:
        a, b = np.asarray(encoder.encode_query(row["a"])), np.asarray(encoder.encode_query(row["b"]))
        guarded = same_specifics(row["a"], row["b"]), same_wording(row["a"], row["b"])
        pairs.append(Pair(row["a"], row["b"], bool(row["same"]), float(a @ b), *guarded))
    ms_per_query = (time.perf_counter() - started) * 1000 / (2 * len(rows))
    return pairs, encoder.query_runtime, ms_per_query


def table(pairs: list[Pair], hit: Callable[[Pair, float], bool]) -> list[Row]:
    positives = [p for p in pairs if p.same]
    negatives = [p for p in pairs if not p.same]
    rows = []
    for threshold in THRESHOLDS:
        false_hits = sum(hit(p, threshold) for p in negatives)
        rows.append(
            Row(
                threshold,
                sum(hit(p, threshold) for p in positives) / len(positives),
                false_hits / len(negatives),
                false_hits,
            )
        )
    return rows


def choose(rows: list[Row]) -> Row:
    """The lowest threshold with the fewest false hits (none, when any threshold manages it)."""
    fewest = min(r.false_hits for r in rows)
    return next(r for r in rows if r.false_hits == fewest)


def print_table(title: str, rows: list[Row], negatives: int) -> Row:
    print(f"\n{title}")
    print(f"  {'threshold':>9}  {'hit rate':>8}  {'false-hit rate':>14}")
    for r in rows:
        false_hits = f"{r.false_hit_rate:>8.1%} ({r.false_hits:>2}/{negatives})"
        print(f"  {r.threshold:>9.2f}  {r.hit_rate:>8.1%}  {false_hits}")
    chosen = choose(rows)
    print(
        f"  chosen: {chosen.threshold:.2f} (hit rate {chosen.hit_rate:.1%}, "
        f"false-hit rate {chosen.false_hit_rate:.1%} = {chosen.false_hits}/{negatives})"
    )
    return chosen


def print_extremes(pairs: list[Pair], chosen: float) -> None:
    negatives = sorted((p for p in pairs if not p.same), key=lambda p: -p.cosine)
    print(f"\nthe {HARDEST_SHOWN} hard negatives most similar to their pair:")
    for p in negatives[:HARDEST_SHOWN]:
        print(f"  {p.cosine:.3f} {guards(p)}  {p.a!r} / {p.b!r}")
    served = sorted((p for p in pairs if p.same and p.cosine >= chosen and p.wording), key=lambda p: p.cosine)
    print(f"\nparaphrases served with same_wording at {chosen:.2f}:")
    for p in served:
        print(f"  {p.cosine:.3f} {guards(p)}  {p.a!r} / {p.b!r}")


def guards(p: Pair) -> str:
    specifics = "pass" if p.guard else "stop"
    wording = "pass" if p.wording else "stop"
    return f"specifics={specifics} wording={wording}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the ONNX query encoder is exported (default: KEEL_DATA_DIR)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings() if args.data_dir is None else Settings(data_dir=args.data_dir)
    rows = load_pairs(args.pairs)
    pairs, runtime, ms = encode_pairs(rows, settings)
    positives, negatives = sum(p.same for p in pairs), sum(not p.same for p in pairs)
    print(f"{len(pairs)} pairs from {args.pairs.name}: {positives} paraphrases, {negatives} hard negatives")
    print(f"query encoder: {runtime} ({ms:.1f} ms a question)")
    cosine_only = table(pairs, lambda p, t: p.cosine >= t)
    guarded = table(pairs, lambda p, t: p.cosine >= t and p.guard)
    alone = print_table("cosine >= threshold", cosine_only, negatives)
    with_guard = print_table("cosine >= threshold and same_specifics", guarded, negatives)
    worded = table(pairs, lambda p, t: p.cosine >= t and p.wording)
    with_wording = print_table("cosine >= threshold and same_wording", worded, negatives)
    print_extremes(pairs, with_wording.threshold)
    if args.out:
        figures = {
            "runtime": runtime,
            "pairs": len(pairs),
            "cosine_only": [r.__dict__ for r in cosine_only],
            "with_same_specifics": [r.__dict__ for r in guarded],
            "with_same_wording": [r.__dict__ for r in worded],
            "chosen_cosine_only": alone.__dict__,
            "chosen_with_same_specifics": with_guard.__dict__,
            "chosen_with_same_wording": with_wording.__dict__,
        }
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Answer-time sentence encoding: torch `encode_documents` against `encode_sentences` on ONNX Runtime.

The answer step scores a task's short sentences (25-60) against the question. This bench takes
`--batches` such sets from an `answer_offline.py` dump (each row's answerable passages, split into
sentences, deduplicated), builds the encoder as the worker does (`make_dense_encoder`) once per
runtime, and prints CPU and wall ms per batch for torch's `encode_documents` and for
`encode_sentences` with a fresh cache (so every sentence is encoded), then again with the cache
warm, and each runtime's min and mean cosine to torch's vectors. These machines are shared:
compare figures within one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/sentence_encoding.py [--dump FILE.json]
        [--data-dir DIR] [--batches 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from keel.core.models.base import split_sentences
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder
from retrieval.factories import make_dense_encoder

Encode = Callable[[Sequence[str]], list[list[float]]]
WARMUP = 3


def sentence_batches(dump: Path, count: int) -> list[list[str]]:
    """One batch per dump row: its answerable passages' sentences, each once, in passage order."""
    rows = json.loads(dump.read_text())["rows"]
    batches = []
    for row in rows[:count]:
        sentences = (s for passage in row["answerable"] for s in split_sentences(passage["text"]))
        batches.append(list(dict.fromkeys(sentences)))
    return batches


def timed(encode: Encode, batches: list[list[str]]) -> tuple[list[np.ndarray], float, float]:
    """Vectors of every batch, and mean CPU and wall ms per batch."""
    vectors, cpu, wall = [], 0.0, 0.0
    for batch in batches:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        vectors.append(np.asarray(encode(batch), dtype=np.float32))
        cpu += time.process_time() - cpu0
        wall += time.perf_counter() - wall0
    return vectors, 1000 * cpu / len(batches), 1000 * wall / len(batches)


def cosines(vectors: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([(a * b).sum(axis=1) for a, b in zip(vectors, reference, strict=True)])


def encoder(data_dir: Path, runtime: str) -> DenseEncoder:
    dense = make_dense_encoder(Settings(data_dir=data_dir, embedding={"query_runtime": runtime}))
    if dense.query_runtime != runtime:
        raise SystemExit(f"runtime {runtime!r} fell back to {dense.query_runtime!r}: see the log")
    return dense


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dump", type=Path, default=Path("/work/.offline_dump.json"))
    parser.add_argument("--data-dir", type=Path, default=Path("/work/.keel-offline"))
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()

    batches = sentence_batches(args.dump, args.batches)
    sizes = [len(b) for b in batches]
    print(f"{len(batches)} batches, {min(sizes)}-{max(sizes)} sentences (mean {statistics.mean(sizes):.1f})")

    torch_dense = encoder(args.data_dir, "torch")
    warm = batches[:WARMUP]
    timed(torch_dense.encode_documents, warm)
    reference, cpu, wall = timed(torch_dense.encode_documents, batches)
    print(f"{'':34} {'CPU ms':>8} {'wall ms':>8} {'min cos':>8} {'mean cos':>9}")
    print(f"{'torch encode_documents':34} {cpu:8.1f} {wall:8.1f} {'':>8} {'':>9}")
    for runtime in ("onnx-int8", "onnx", "torch"):
        dense = torch_dense if runtime == "torch" else encoder(args.data_dir, runtime)
        # Warm on other texts than the measured ones, so the cache stays cold for them.
        timed(dense.encode_sentences, [[f"{s} (warm-up)" for s in b] for b in warm])
        for label in ("cold", "warm"):
            before = dense.encode_calls
            vectors, cpu, wall = timed(dense.encode_sentences, batches)
            similar = cosines(vectors, reference)
            name = f"{runtime} encode_sentences, {label}"
            encoded = dense.encode_calls - before
            print(
                f"{name:34} {cpu:8.1f} {wall:8.1f} {similar.min():8.5f} {similar.mean():9.5f}"
                f"   ({encoded} texts encoded)"
            )


if __name__ == "__main__":
    main()

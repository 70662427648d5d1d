"""Dense (sentence-transformers) and sparse (BM25) encoders for chunks and queries.

Bulk work (ingestion) and interactive work (a question someone waits for) share one dense model in
the worker process. Threads marked bulk (`mark_bulk_thread`, the ingest worker's activity threads)
encode in small slices, and a slice waits while any interactive encoding waits or runs: a query
then waits for at most one slice, never for a whole batch.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.onnx_query import OnnxQueryEncoder, load_or_export
from retrieval.types import SparseVec

QUERY_RUNTIMES = ("onnx-int8", "onnx", "torch")
# Texts per bulk slice: the longest a query waits behind bulk work is one slice (~8 chunks of
# MiniLM on 2 cores, tens of ms); smaller slices cost more per-call overhead for ingestion.
BULK_SLICE = 8
# Sentence vectors kept by `encode_sentences`: the grade step re-encodes the sentences the generate
# step just encoded, and popular passages recur across tasks. As float32 rows, ~35 MB when full.
SENTENCE_CACHE_SIZE = 20_000

_thread_role = threading.local()


def mark_bulk_thread() -> None:
    """Mark the calling thread's encoding as bulk for its lifetime (a thread pool's initializer)."""
    _thread_role.bulk = True


def is_bulk_thread() -> bool:
    return getattr(_thread_role, "bulk", False)


@contextmanager
def bulk_work() -> Iterator[None]:
    """Encode as bulk within this block, on the calling thread."""
    before = is_bulk_thread()
    _thread_role.bulk = True
    try:
        yield
    finally:
        _thread_role.bulk = before


class PriorityGate:
    """One inference at a time, interactive callers first: a bulk caller enters only when the
    model is idle and no interactive caller waits. (A plain lock is first come, first served: a
    query queued behind a 256-chunk batch waited for all of it.)

    It also knows when an interactive step (an agent activity, `interactive_step`) is running:
    bulk work defers to it at its checkpoints (`defer_to_interactive`, before each bulk slice and
    each ingestion store call), because on 2 cores every bulk slice or store write that runs during
    a step slows that step: it takes the CPU, the GIL (Qdrant Edge and torch calls hold it for their
    whole length) or the store's lock. A deferral lasts at most `max_defer_s`, so a saturated agent
    slows ingestion without stalling it past its heartbeat timeout.
    """

    def __init__(self, grace_s: float = 0.3, max_defer_s: float = 0.2) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._interactive_waiting = 0
        self._interactive_steps = 0
        # Longer than the gap between one agent step and the next, and between one task and the next
        # of a caller asking in turn (a workflow task, a start: 50-150 ms on a loaded machine).
        self._grace_s = grace_s
        # The balance between the two (bench/interactive_under_ingest.py, 2 cores, tasks asked
        # back to back): 0.5 s kept the agent's p50 at 1.03x quiet but let ingestion index 0.2
        # documents/s; 0.15 s, 1.27x and 0.7/s; no deferral, 2.4x and 2.9/s. And between two
        # heartbeats an ingestion activity passes ~32 checkpoints (256 texts in slices of
        # BULK_SLICE): 32 x 0.2 s stays well inside its 30 s heartbeat timeout.
        self._max_defer_s = max_defer_s
        self._last_step_end = float("-inf")

    @contextmanager
    def interactive_step(self) -> Iterator[None]:
        """An interactive step runs within this block: bulk work defers to it."""
        with self._changed:
            self._interactive_steps += 1
        try:
            yield
        finally:
            with self._changed:
                self._interactive_steps -= 1
                self._last_step_end = time.monotonic()
                self._changed.notify_all()

    def defer_to_interactive(self) -> None:
        """Bulk work's checkpoint: wait while an interactive step runs or has just ended."""
        deadline = time.monotonic() + self._max_defer_s
        with self._changed:
            while (now := time.monotonic()) < deadline:
                quiet_at = self._last_step_end + self._grace_s
                if not self._interactive_steps and now >= quiet_at:
                    return
                self._changed.wait(
                    deadline - now if self._interactive_steps else min(quiet_at, deadline) - now
                )

    @contextmanager
    def interactive(self) -> Iterator[None]:
        with self._changed:
            self._interactive_waiting += 1
            try:
                self._changed.wait_for(lambda: not self._busy)
            finally:
                self._interactive_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        self.defer_to_interactive()
        with self._changed:
            self._changed.wait_for(lambda: not self._busy and not self._interactive_waiting)
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def for_this_thread(self) -> Iterator[None]:
        with self.bulk() if is_bulk_thread() else self.interactive():
            yield

    def _release(self) -> None:
        with self._changed:
            self._busy = False
            self._changed.notify_all()


class DenseEncoder:
    """A sentence-transformers model on CPU; embeddings are L2-normalised.

    `query_runtime` "onnx" or "onnx-int8" encodes queries with ONNX Runtime, from a graph
    exported into `model_cache_dir` on first use (2-3x faster for one short text; see
    retrieval/onnx_query.py), when the model allows it and the exported graph reproduces
    torch's vectors; otherwise, and with "torch", queries are encoded by torch. The same
    runtime encodes the short sentences of `encode_sentences`.
    """

    def __init__(
        self,
        model_path: str,
        batch_size: int = 32,
        query_runtime: str = "torch",
        model_cache_dir: Path | None = None,
    ) -> None:
        if not model_path:
            raise ValueError("model_path is empty: point it at a sentence-transformers model directory")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if query_runtime not in QUERY_RUNTIMES:
            raise ValueError(f"query_runtime {query_runtime!r}: expected one of {', '.join(QUERY_RUNTIMES)}")
        if query_runtime != "torch" and model_cache_dir is None:
            raise ValueError(f"query_runtime {query_runtime!r} needs a model_cache_dir to export into")
        # The model ships in a pip package; a hub lookup would only hang on these machines.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        # Setting the intra-op thread count explicitly, once, is what makes inference in other
        # threads (activities, eval and bench pools) run as fast as in the main thread: without
        # it a query took 15.8 ms in a pool thread and 6.0 ms in the main one (2 cores).
        torch.set_num_threads(torch.get_num_threads())
        self._model: Any = SentenceTransformer(model_path, device="cpu")
        self._batch_size = batch_size
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ValueError(f"model at {model_path} does not report an embedding dimension")
        self._dimension = int(dim)
        # Number of texts encoded so far: tests and metrics count encoder work.
        self.encode_calls = 0
        # One inference at a time, on all cores: concurrent callers queue here instead of
        # oversubscribing the CPU with torch threads (which starves everything else in the process);
        # interactive callers go ahead of bulk slices.
        self._gate = PriorityGate()
        self._sentences = _LruVectors(SENTENCE_CACHE_SIZE)
        self._direct = _direct_query_parts(self._model)
        self._onnx: OnnxQueryEncoder | None = None
        self._query_runtime = "torch"
        if query_runtime != "torch" and model_cache_dir is not None and self._direct is not None:
            tokenizer, transformer, max_length = self._direct
            self._onnx = load_or_export(
                tokenizer, transformer, model_path, max_length, Path(model_cache_dir),
                threads=torch.get_num_threads(), reference=self._encode_query_directly,
                int8=query_runtime == "onnx-int8",
            )  # fmt: skip
            self._query_runtime = query_runtime if self._onnx is not None else "torch"
            self.encode_calls = 0  # the agreement probes are not the caller's work

    @property
    def gate(self) -> PriorityGate:
        """Who goes first on this model; the worker's interactive steps and bulk stores share it."""
        return self._gate

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def query_runtime(self) -> str:
        """What encodes queries, one of QUERY_RUNTIMES: said at start-up."""
        return self._query_runtime

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages, in input order. On a bulk thread, slice by slice, each slice yielding
        to interactive callers; otherwise at once, ahead of any bulk slice."""
        if not texts:
            return []
        if not is_bulk_thread():
            with self._gate.interactive():
                return self._encode_passages(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BULK_SLICE):
            with self._gate.bulk():
                vectors.extend(self._encode_passages(texts[start : start + BULK_SLICE]))
        return vectors

    def _encode_passages(self, texts: Sequence[str]) -> list[list[float]]:
        self.encode_calls += len(texts)
        vectors = self._model.encode_document(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]

    def encode_sentences(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed short texts scored at answer time (sentences against a question), in input order.

        With an ONNX query runtime they run on ONNX Runtime, batched: a few dozen sentences cost
        a fraction of torch's CPU (bench/sentence_encoding.py); otherwise as `encode_documents`.
        Vectors are cached by exact text: a cached text costs no encoding and no `encode_calls`.
        """
        found = self._sentences.get_many(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            with self._gate.for_this_thread():
                if self._onnx is not None:
                    self.encode_calls += len(missing)
                    rows = self._onnx.encode_batch(missing)
                else:
                    rows = np.asarray(self._encode_passages(missing), dtype=np.float32)
            # Copies: a row kept as a view would keep its whole batch alive in the cache.
            fresh = {text: row.copy() for text, row in zip(missing, rows, strict=True)}
            self._sentences.put_many(fresh)
            found.update(fresh)
        return [found[t].tolist() for t in texts]

    def encode_query(self, text: str) -> list[float]:
        """Embed one search query."""
        if self._onnx is not None:
            with self._gate.for_this_thread():
                self.encode_calls += 1
                vector = self._onnx.encode(text)
            return [float(x) for x in vector]
        if self._direct is not None:
            return self._encode_query_directly(text)
        with self._gate.for_this_thread():
            self.encode_calls += 1
            vectors = self._model.encode_query(
                [text],
                batch_size=1,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [float(x) for x in vectors[0]]

    def _encode_query_directly(self, text: str) -> list[float]:
        """Tokenizer, transformer, mean pooling, L2 norm: what `encode_query` computes for this
        model, without its per-call batching machinery (about 2 of 7 ms a query on 2 cores)."""
        import torch

        assert self._direct is not None
        tokenizer, transformer, max_length = self._direct
        with self._gate.for_this_thread(), torch.inference_mode():
            self.encode_calls += 1
            tokens = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_length)
            hidden = transformer(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vector = torch.nn.functional.normalize(pooled, dim=1)[0]
        return [float(x) for x in vector]


def _direct_query_parts(model: Any) -> tuple[Any, Any, int] | None:
    """(tokenizer, transformer, max length) when the model is exactly Transformer -> mean
    Pooling -> Normalize with no query prompt; else None, and queries go through `encode_query`."""
    if [type(module).__name__ for module in model] != ["Transformer", "Pooling", "Normalize"]:
        return None
    if (
        getattr(model[1], "pooling_mode", None) != "mean"
        or model.prompts.get("query")
        or model.default_prompt_name
    ):
        return None
    transformer = getattr(model[0], "auto_model", None)
    if transformer is None:
        return None
    return model.tokenizer, transformer, int(model[0].max_seq_length)


class _LruVectors:
    """Vectors by text, the least recently used dropped past `capacity`; shared by threads."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                row = self._rows.get(text)
                if row is not None:
                    self._rows.move_to_end(text)
                    found[text] = row
        return found

    def put_many(self, rows: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._rows.update(rows)
            for text in rows:
                self._rows.move_to_end(text)
            while len(self._rows) > self._capacity:
                self._rows.popitem(last=False)


class SparseEncoder:
    """BM25 term weights from qdrant_edge; IDF is applied by the store (Modifier.IDF)."""

    def __init__(self, language: str = "english") -> None:
        from qdrant_edge import Bm25, Bm25Config

        self._bm25 = Bm25(Bm25Config(language=language))

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVec]:
        """Term-frequency weights of each passage."""
        return [_to_sparse(self._bm25.embed_document(text)) for text in texts]

    def encode_document(self, text: str) -> SparseVec:
        return _to_sparse(self._bm25.embed_document(text))

    def encode_query(self, text: str) -> SparseVec:
        """Weight 1 per unique query token."""
        return _to_sparse(self._bm25.embed_query(text))


def _to_sparse(vector: Any) -> SparseVec:
    return SparseVec(indices=list(vector.indices), values=list(vector.values))

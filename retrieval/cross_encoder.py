"""A sentence-transformers CrossEncoder from a local path as a Reranker, optionally int8 on CPU."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from keel.core.chunks import ScoredChunk


class CrossEncoderReranker:
    """Scores (query, "title\\ntext") pairs with a CrossEncoder that outputs one relevance score."""

    def __init__(self, model_path: str, int8: bool = False, batch_size: int = 32) -> None:
        if not model_path:
            raise ValueError("model_path is empty: point it at a CrossEncoder model directory")
        path = Path(model_path)
        if not path.exists():
            raise ValueError(f"cross-encoder model_path {model_path!r} does not exist")
        if not path.is_dir():
            raise ValueError(f"cross-encoder model_path {model_path!r} is not a directory")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # A local model only: a hub lookup would only hang on machines without internet.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self._model: Any = CrossEncoder(str(path), device="cpu")
        if self._model.num_labels != 1:
            raise ValueError(
                f"cross-encoder at {model_path!r} has {self._model.num_labels} labels; a reranker needs 1"
            )
        if int8:
            _quantize_int8(self._model)
        self._batch_size = batch_size
        self.name = f"cross-encoder:{model_path}{'+int8' if int8 else ''}"
        # One inference at a time, on all cores (as DenseEncoder): concurrent activities queue here
        # instead of oversubscribing the CPU with torch threads.
        self._lock = threading.Lock()

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]:
        """The `limit` best chunks by the model's score, best first (ties by chunk_id)."""
        if not chunks:
            return []
        pairs = [(query, f"{c.title}\n{c.text}") for c in chunks]
        with self._lock:
            scores = self._model.predict(pairs, batch_size=self._batch_size, show_progress_bar=False)
        scored = [
            replace(c, score=float(s), source="rerank", dense=None)
            for c, s in zip(chunks, scores, strict=True)
        ]
        scored.sort(key=lambda c: (-c.score, c.chunk_id))
        return scored[:limit]


def _quantize_int8(model: Any) -> None:
    """Dynamic int8 weights for every nn.Linear, in place; activations are quantized per batch."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    # Per-channel scales: one per output row, so a row with large weights does not coarsen
    # the others' quantization (per-tensor scales share one). Same speed on CPU.
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to torchao; it still works, and torchao
        # would be a new dependency for one call.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
        quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )

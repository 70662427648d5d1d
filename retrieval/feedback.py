"""Relevance feedback for dense retrieval: a low-rank query adapter learnt from judged pairs.

The encoder stays as shipped; only the query vector moves: q' = normalise(q + U (Vᵀ q)).
Trained on (query, relevant document) pairs of one corpus, against that corpus's own
chunk vectors, it teaches the query side what this corpus's relevant passages look
like. It helps most where new questions ask about documents earlier questions were
judged on (cross-fitted on SciFact train: hybrid nDCG@10 0.734 -> 0.792), and slightly
less than nothing where they do not: which is why it is per corpus and optional.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class AdapterError(ValueError):
    """An adapter file is missing, malformed or made for another encoder."""


@dataclass(frozen=True)
class QueryAdapter:
    up: np.ndarray  # (dimension, rank)
    down: np.ndarray  # (dimension, rank)
    trained_on: str  # what it learnt from, e.g. "scifact train (809 queries)"

    @property
    def dimension(self) -> int:
        return int(self.up.shape[0])

    @property
    def rank(self) -> int:
        return int(self.up.shape[1])

    @property
    def digest(self) -> str:
        """Short content hash: names the adapter in traces and in `keel eval` output."""
        return hashlib.sha256(self.up.tobytes() + self.down.tobytes()).hexdigest()[:12]

    def apply(self, vector: Sequence[float]) -> list[float]:
        q = np.asarray(vector, dtype=np.float32)
        if q.shape != (self.dimension,):
            raise AdapterError(f"query vector has {q.shape[0]} dimensions, the adapter {self.dimension}")
        moved = q + self.up @ (self.down.T @ q)
        norm = float(np.linalg.norm(moved))
        return (moved / norm if norm > 0 else q).tolist()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"trained_on": self.trained_on})
        with path.open("wb") as out:
            np.savez_compressed(out, up=self.up, down=self.down, meta=np.array(meta))

    @classmethod
    def load(cls, path: Path, dimension: int) -> QueryAdapter:
        if not path.is_file():
            raise AdapterError(f"query adapter {str(path)!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                up, down = data["up"].astype(np.float32), data["down"].astype(np.float32)
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as err:
            raise AdapterError(f"query adapter {str(path)!r} is not an adapter file: {err}") from err
        if up.shape != down.shape or up.ndim != 2 or up.shape[0] != dimension:
            raise AdapterError(
                f"query adapter {str(path)!r} has shape {up.shape}; the encoder has {dimension} dimensions"
            )
        return cls(up=up, down=down, trained_on=str(meta.get("trained_on", "")))


def train_query_adapter(
    query_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    positives: Sequence[Sequence[int]],
    trained_on: str,
    rank: int = 64,
    epochs: int = 20,
    learning_rate: float = 1e-3,
    temperature: float = 0.05,
    batch_size: int = 64,
    seed: int = 0,
) -> QueryAdapter:
    """Fit U, V so each query's softmax over ALL chunks puts its mass on its positive chunks.

    A softmax over the whole corpus (not sampled negatives) is affordable at these sizes
    (14k chunks: seconds on CPU) and leaves nothing to tune about negative sampling.
    Defaults are the ones that cross-validated best on SciFact train (rank 64, 20 epochs,
    lr 1e-3, temperature 0.05); U starts at zero, so step 0 is the unadapted encoder.
    """
    import torch

    if len(query_vectors) != len(positives):
        raise ValueError(f"{len(query_vectors)} query vectors for {len(positives)} positive lists")
    keep = [i for i, p in enumerate(positives) if len(p) > 0]
    if not keep:
        raise ValueError("no query has a positive chunk: nothing to learn from")
    generator = torch.Generator().manual_seed(seed)
    queries = torch.tensor(np.asarray(query_vectors, dtype=np.float32)[keep])
    chunks = torch.tensor(np.asarray(chunk_vectors, dtype=np.float32))
    mask = torch.zeros(len(keep), chunks.shape[0], dtype=torch.bool)
    for row, i in enumerate(keep):
        mask[row, list(positives[i])] = True
    dimension = queries.shape[1]
    up = torch.zeros(dimension, rank, requires_grad=True)
    down = (torch.randn(dimension, rank, generator=generator) * 0.05).requires_grad_(True)
    optimiser = torch.optim.Adam([up, down], lr=learning_rate)
    for _ in range(epochs):
        order = torch.randperm(len(keep), generator=generator)
        for start in range(0, len(keep), batch_size):
            batch = order[start : start + batch_size]
            q = queries[batch]
            moved = q + (q @ down) @ up.T
            logits = (moved / moved.norm(dim=1, keepdim=True)) @ chunks.T / temperature
            on_positives = torch.logsumexp(logits.masked_fill(~mask[batch], float("-inf")), dim=1)
            loss = (torch.logsumexp(logits, dim=1) - on_positives).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return QueryAdapter(up=up.detach().numpy(), down=down.detach().numpy(), trained_on=trained_on)

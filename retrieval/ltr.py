"""A learned reranker that needs no download: a linear model over what retrieval already knows.

Features per candidate: its fused first-stage score, its dense cosine and BM25 score (each
relative to the best candidate), and how much of the question its text and its title
cover. The weights come from `keel/app/train_reranker.py` (SciFact train only) and are
committed in `retrieval/weights/ltr.json`: a few numbers, nothing to fetch.

Graph expansion's boost is not a feature (the training split has no multi-hop links to
learn it from); it is added back to the learned score, rescaled to [0, 1], exactly as
graph expansion adds it to the fused score, so a bridge passage keeps its lift.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from keel.core.chunks import ScoredChunk
from retrieval.rerank import text_terms

FEATURES = ("fused", "dense", "bm25", "coverage", "title_coverage")
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "ltr.json"


def feature_matrix(query: str, chunks: Sequence[ScoredChunk]) -> np.ndarray:
    """One row per chunk, columns as FEATURES; scores are relative to this query's candidates."""
    asked = text_terms(query)
    rows = []
    for chunk in chunks:
        s = chunk.signals
        title = text_terms(chunk.title)
        body = title | text_terms(chunk.text)
        rows.append(
            [
                s.get("fused", 0.0),
                s.get("dense", 0.0),
                s.get("bm25", 0.0),
                len(asked & body) / max(1, len(asked)),
                len(asked & title) / max(1, len(asked)),
            ]
        )
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(chunks), len(FEATURES))
    for column in (FEATURES.index("fused"), FEATURES.index("bm25")):
        top = matrix[:, column].max(initial=0.0)
        if top > 0:
            matrix[:, column] /= top
    return matrix


@dataclass(frozen=True)
class LinearModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    trained_on: str

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.scale) @ self.weights

    def save(self, path: Path, notes: dict[str, object]) -> None:
        body = {
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "trained_on": self.trained_on,
            **notes,
        }
        path.write_text(json.dumps(body, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        try:
            body = json.loads(path.read_text())
            if body["features"] != list(FEATURES):
                raise ValueError(f"features {body['features']} are not {list(FEATURES)}")
            model = cls(
                np.asarray(body["mean"], dtype=np.float64),
                np.asarray(body["scale"], dtype=np.float64),
                np.asarray(body["weights"], dtype=np.float64),
                str(body.get("trained_on", "")),
            )
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"reranker weights {str(path)!r} are unusable: {err}") from err
        if not (model.mean.shape == model.scale.shape == model.weights.shape == (len(FEATURES),)):
            raise ValueError(f"reranker weights {str(path)!r} do not have {len(FEATURES)} values per array")
        return model


class LearnedReranker:
    """Reorders candidates by the linear model, plus graph expansion's boost."""

    def __init__(self, model: LinearModel) -> None:
        self._model = model
        self.name = f"ltr-linear ({model.trained_on})"

    @classmethod
    def from_file(cls, path: Path = DEFAULT_WEIGHTS) -> LearnedReranker:
        return cls(LinearModel.load(path))

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], limit: int) -> list[ScoredChunk]:
        if not chunks:
            return []
        learned = self._model.score(feature_matrix(query, chunks))
        low, high = float(learned.min()), float(learned.max())
        relative = (learned - low) / (high - low) if high > low else np.ones_like(learned)
        scored = [
            replace(chunk, score=float(r) + chunk.signals.get("graph", 0.0), source="rerank", dense=None)
            for chunk, r in zip(chunks, relative, strict=True)
        ]
        scored.sort(key=lambda c: (-c.score, c.chunk_id))
        return scored[:limit]

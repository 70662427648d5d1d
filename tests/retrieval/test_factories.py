"""What the settings choose, built: the vector store, and which reranker (or a refusal, named)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keel.core.settings import QdrantSettings, RetrievalSettings, Settings
from retrieval.encoders import DenseEncoder
from retrieval.factories import make_reranker, make_vector_store, reranker_name
from retrieval.ltr import DEFAULT_WEIGHTS, LearnedReranker
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.rerank import FeatureReranker
from retrieval.types import StoreUnavailableError
from tests.support.servers import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning"),
]


def test_factory_builds_edge_store_without_url(tmp_path: Path) -> None:
    store = make_vector_store(Settings(data_dir=tmp_path))
    try:
        assert isinstance(store, QdrantEdgeStore)
        assert store.count("default") == 0
        assert (tmp_path / "qdrant").is_dir()
    finally:
        store.close()


def test_factory_with_unreachable_server_raises_unavailable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, qdrant=QdrantSettings(url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(StoreUnavailableError, match="keel_chunks"):
        make_vector_store(settings)


def test_edge_upsert_survives_sigkill(tmp_path: Path) -> None:
    """An acknowledged upsert is on disk: the writer is SIGKILLed right after it returns."""
    path = tmp_path / "qdrant"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from retrieval.qdrant_edge_store import QdrantEdgeStore
        from retrieval.types import ChunkRecord, SparseVec
        store = QdrantEdgeStore(Path({str(path)!r}))
        store.upsert([ChunkRecord("t", "d", f"d#{{i}}", i, "", "x", "v", [1.0] + [0.0] * 383,
                                  SparseVec([1], [1.0])) for i in range(3)])
        store.delete_document("t", "d", keep_chunk_ids=["d#0", "d#1"])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    store = QdrantEdgeStore(path)
    try:
        assert store.count("t") == 2
    finally:
        store.close()


# --- rerankers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dense() -> DenseEncoder:
    return DenseEncoder(Settings().embedding_model_path())


def test_default_is_the_committed_learned_reranker(dense: DenseEncoder) -> None:
    settings = Settings()
    reranker = make_reranker(settings, dense)
    assert isinstance(reranker, LearnedReranker)
    assert reranker_name(settings) == reranker.name == LearnedReranker.from_file().name


def test_feature_reranker(dense: DenseEncoder) -> None:
    settings = Settings(retrieval=RetrievalSettings(reranker="feature"))
    assert isinstance(make_reranker(settings, dense), FeatureReranker)
    assert reranker_name(settings) == FeatureReranker.name


def test_weights_path_is_used(tmp_path: Path, dense: DenseEncoder) -> None:
    body = json.loads(DEFAULT_WEIGHTS.read_text())
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**body, "trained_on": "my corpus"}))
    settings = Settings(retrieval=RetrievalSettings(ltr_weights_path=str(path)))
    assert make_reranker(settings, dense).name == reranker_name(settings) == "ltr-linear (my corpus)"


def test_bad_weights_path_is_rejected(tmp_path: Path, dense: DenseEncoder) -> None:
    missing = tmp_path / "missing.json"
    settings = Settings(retrieval=RetrievalSettings(ltr_weights_path=str(missing)))
    with pytest.raises(ValueError, match=r"missing\.json"):
        make_reranker(settings, dense)
    with pytest.raises(ValueError, match=r"missing\.json"):
        reranker_name(settings)


def test_missing_cross_encoder_is_rejected_without_a_download(tmp_path: Path, dense: DenseEncoder) -> None:
    path = tmp_path / "no-such-model"
    settings = Settings(retrieval=RetrievalSettings(cross_encoder_path=str(path), cross_encoder_int8=True))
    # Naming it loads nothing: /readyz reports what the worker would build.
    assert reranker_name(settings) == f"cross-encoder:{path}+int8"
    with pytest.raises(ValueError, match="does not exist"):
        make_reranker(settings, dense)
    file = tmp_path / "model.bin"
    file.write_bytes(b"")
    with pytest.raises(ValueError, match="not a directory"):
        make_reranker(Settings(retrieval=RetrievalSettings(cross_encoder_path=str(file))), dense)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keel.services import free_port
from keel.settings import QdrantSettings, Settings
from retrieval.qdrant_edge_store import QdrantEdgeStore
from retrieval.stores import make_vector_store
from retrieval.types import StoreUnavailableError

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

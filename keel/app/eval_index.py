"""The isolated index `keel eval` searches: its own Qdrant Edge shard and its own FalkorDB graph.

Nothing here touches the platform's data: the shard lives under `data_dir/eval/<key>` and the
graph under a prefix derived from the same key. The key hashes the corpus bytes and every
setting that shapes the index, so a finished index is reused while both are unchanged
(SciFact: about ten minutes to build on two cores, seconds to reuse).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingestion.indexer import NameFinder, about_entities, graph_document, prepare_documents
from keel.app.embedded import falkordb_answers, free_port, start_falkordb, stop_process, wait_for_falkordb
from keel.core.settings import Settings
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.eval_data import EvalDataset
from retrieval.graph_store import GraphStore
from retrieval.qdrant_edge_store import QdrantEdgeStore

log = logging.getLogger(__name__)

TENANT = "eval"
# Bump when the indexer changes what it writes: old eval indexes are then rebuilt, not reused.
INDEX_FORMAT = 4
BATCH_DOCUMENTS = 256  # documents embedded per batch: big batches keep both cores busy


@dataclass
class EvalIndex:
    key: str
    vectors: QdrantEdgeStore
    graph: GraphStore
    chunk_ids: list[str]  # row i of chunk_vectors is chunk_ids[i]
    chunk_documents: list[str]
    chunk_vectors: np.ndarray


def index_key(dataset: EvalDataset, settings: Settings) -> str:
    cfg = settings.retrieval
    parts = [
        dataset.fingerprint,
        str(INDEX_FORMAT),
        str(cfg.chunk_chars),
        str(cfg.chunk_overlap_chars),
        settings.embedding_model_path(),
    ]
    corpus = re.sub(r"[^A-Za-z0-9]+", "-", dataset.name.split("/")[0]).strip("-")[:24] or "corpus"
    return f"{corpus}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]}"


def index_directory(dataset: EvalDataset, settings: Settings) -> Path:
    return settings.data_dir / "eval" / index_key(dataset, settings)


@contextlib.contextmanager
def falkordb_url(settings: Settings, directory: Path) -> Iterator[str]:
    """The configured FalkorDB if it answers; else one started for this index, stopped after.

    A started one keeps its snapshot beside the index (`<index>.falkordb`), so two evaluations
    of different datasets at once never share, or overwrite, one snapshot file.
    """
    if settings.falkordb.url:
        yield settings.falkordb.url
        return
    if falkordb_answers(settings.falkordb.host, settings.falkordb.port):
        yield settings.falkordb_url
        return
    port = free_port()
    proc = start_falkordb(directory.with_name(directory.name + ".falkordb"), port, snapshot_only=True)
    try:
        wait_for_falkordb("127.0.0.1", port, timeout_s=120)
        log.info("started FalkorDB for the evaluation on port %d", port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextlib.contextmanager
def open_index(
    dataset: EvalDataset,
    settings: Settings,
    graph_url: str,
    dense: DenseEncoder,
    sparse: SparseEncoder,
    rebuild: bool = False,
) -> Iterator[EvalIndex]:
    key = index_key(dataset, settings)
    directory = index_directory(dataset, settings)
    done_marker = directory / "complete.json"
    graph = GraphStore(graph_url, prefix=f"ev{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    expected_documents = len({d.document_id for d in dataset.documents})
    reusable = False
    if done_marker.is_file() and not rebuild:
        done = json.loads(done_marker.read_text())
        reusable = graph.counts(TENANT)["documents"] == done["documents"] == expected_documents
    if not reusable:
        _clear(directory, graph)
    vectors = QdrantEdgeStore(directory / "shard")
    try:
        if reusable:
            log.info("reusing the evaluation index %s", directory)
            chunk_vectors = np.load(directory / "chunk_vectors.npy")
            meta = json.loads((directory / "chunks.json").read_text())
            yield EvalIndex(key, vectors, graph, meta["ids"], meta["documents"], chunk_vectors)
            return
        ids, documents, rows = _build(dataset, settings, vectors, graph, dense, sparse)
        chunk_vectors = np.asarray(rows, dtype=np.float32)
        np.save(directory / "chunk_vectors.npy", chunk_vectors)
        (directory / "chunks.json").write_text(json.dumps({"ids": ids, "documents": documents}))
        # Written last: an interrupted build is never mistaken for a finished one.
        done_marker.write_text(json.dumps({"documents": expected_documents, "chunks": len(ids)}))
        yield EvalIndex(key, vectors, graph, ids, documents, chunk_vectors)
    finally:
        vectors.close()
        graph.close()


def _clear(directory: Path, graph: GraphStore) -> None:
    import shutil

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    graph.drop(TENANT)


def _build(
    dataset: EvalDataset,
    settings: Settings,
    vectors: QdrantEdgeStore,
    graph: GraphStore,
    dense: DenseEncoder,
    sparse: SparseEncoder,
) -> tuple[list[str], list[str], list[list[float]]]:
    cfg = settings.retrieval
    sources = dataset.documents  # a fresh index: no stale chunks to drop, so no write_document
    # Entity linking against the corpus's own article subjects: a passage naming another
    # document's subject links to it even where capitalisation alone would miss the name.
    known = [name for d in sources for _, name in about_entities(d.title)]
    linker = NameFinder(known)
    ids: list[str] = []
    owners: list[str] = []
    rows: list[list[float]] = []
    for start in range(0, len(sources), BATCH_DOCUMENTS):
        batch = sources[start : start + BATCH_DOCUMENTS]
        prepared = prepare_documents(
            TENANT, batch, dense, sparse, cfg.chunk_chars, cfg.chunk_overlap_chars, name_finder=linker
        )
        vectors.upsert([r for doc in prepared for r in doc.records])
        graph.upsert_documents(TENANT, [graph_document(doc) for doc in prepared])
        for doc in prepared:
            for record in doc.records:
                ids.append(record.chunk_id)
                owners.append(record.document_id)
                rows.append(record.dense)
        sys.stderr.write(f"  indexed {min(start + BATCH_DOCUMENTS, len(sources))}/{len(sources)} documents\n")
    return ids, owners, rows

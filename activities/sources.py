"""Syncing a registered folder: plan (scan + compare), index changed files, remove gone ones."""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from temporalio import activity

from activities.errors import permanent_errors
from activities.ingestion import IngestionActivities, TextToIndex, invalidate_answers
from ingestion.files import record_document_id
from ingestion.parsers import ParseError, parse_file
from ingestion.sources import SourceError, SourceFile, scan_folder
from keel.core.domain import (
    FAILURES_KEPT,
    BatchProgress,
    BatchResult,
    FileBatch,
    RecordSync,
    RemoveDocuments,
    SyncPlan,
    SyncRequest,
)
from keel.core.errors import FailureKind, failure
from keel.stores.answer_cache import AnswerCache
from keel.stores.blobs import BlobStore
from keel.stores.sources import SourceNotFoundError, SourceRegistry, SourceSpec
from retrieval.graph_store import GraphStore, Provenance

# Chunks per encoder call while indexing a batch: enough to fill the encoder's batches when
# files are small (the bigger the group, the fewer graph round trips per chunk), few enough
# that a resume point comes every few seconds (the encoder heartbeats per ENCODE_SLICE too).
GROUP_CHUNKS = 256


class SourceActivities:
    def __init__(
        self,
        ingestion: IngestionActivities,
        graph: GraphStore,
        blobs: BlobStore,
        registry: SourceRegistry,
        *,
        cache: AnswerCache | None = None,
    ) -> None:
        self._ingestion = ingestion
        self._graph = graph
        self._blobs = blobs
        self._registry = registry
        # Answers citing a removed document go with it; a changed one's are dropped by
        # `ingestion.index_texts`, which knows which documents it wrote.
        self._cache = cache

    def _spec(self, tenant: str, source_id: str) -> SourceSpec:
        try:
            return self._registry.get(tenant, source_id)
        except SourceNotFoundError as err:
            raise failure(FailureKind.NOT_FOUND, f"no source {source_id!r}") from err

    @activity.defn(name="sources.plan_sync")
    @permanent_errors()
    def plan_sync(self, request: SyncRequest) -> SyncPlan:
        """Scan the folder and compare each file's hash with the one its documents were indexed from."""
        spec = self._spec(request.tenant, request.source_id)
        try:
            files = scan_folder(Path(spec.root), spec.include, spec.exclude)
        except SourceError as err:
            raise failure(FailureKind.INVALID_INPUT, str(err)) from err
        indexed_hash: dict[str, str] = {}
        documents_of: Counter[str] = Counter()  # a JSON/JSONL file holds several
        present = {f.path for f in files}
        gone: list[str] = []
        for document_id, path, file_hash in self._graph.source_documents(request.tenant, request.source_id):
            indexed_hash[path] = file_hash
            documents_of[path] += 1
            if path not in present:
                gone.append(document_id)
        changed: list[SourceFile] = []
        unchanged_documents = 0
        for file in files:
            if file.error:
                continue
            if indexed_hash.get(file.path) == file.sha256:
                unchanged_documents += documents_of[file.path]
            else:
                changed.append(file)
        unreadable = {f.path: f.error for f in files if f.error}
        return SyncPlan(
            scanned=len(files),
            changed_key=self._blobs.put_json(spec.tenant, {"files": [asdict(f) for f in changed]}),
            changed=len(changed),
            unchanged=unchanged_documents,
            deleted_key=self._blobs.put_json(spec.tenant, {"documents": gone}),
            deleted=len(gone),
            unreadable=dict(list(unreadable.items())[:FAILURES_KEPT]),
            oldest_unsynced_ns=min((f.modified_ns for f in changed), default=0),
            unreadable_count=len(unreadable),
        )

    @activity.defn(name="sources.index_files")
    @permanent_errors()
    def index_files(self, batch: FileBatch) -> BatchResult:
        """Parse and index files `start`..`end` of the plan; a file that fails is reported, not fatal.

        Files go to the encoder in groups of about GROUP_CHUNKS chunks. After each group the
        heartbeat carries how far it got and the counts so far: a retry after a crash resumes
        there (and redoing a group is harmless: indexing is idempotent). The same counts go to
        the registry, where the API and CLI read a running sync's progress.
        """
        spec = self._spec(batch.tenant, batch.source_id)
        files = [
            SourceFile(**f)
            for f in self._blobs.get_json(batch.tenant, batch.changed_key)["files"][batch.start : batch.end]
        ]
        done, result = 0, BatchResult()
        details = activity.info().heartbeat_details
        if details:
            done, result = int(details[0]), BatchResult(**details[1])
        chunk_chars = self._ingestion.chunk_chars
        while done < len(files):
            # Heartbeats while this group embeds say: resume at its start, with the counts then.
            resume_here = functools.partial(activity.heartbeat, done, asdict(result))
            group: list[tuple[SourceFile, list[TextToIndex]]] = []
            planned_chunks = 0
            while done + len(group) < len(files) and planned_chunks < GROUP_CHUNKS:
                file = files[done + len(group)]
                texts = self._read_file(spec, file, result)
                group.append((file, texts))
                planned_chunks += sum(len(t.text) // chunk_chars + 1 for t in texts)
            self._index_group(spec, group, result, resume_here)
            done += len(group)
            activity.heartbeat(done, asdict(result))
            progress = BatchProgress.of(result, batch.run_id)
            self._registry.record_batch(spec.tenant, spec.source_id, batch.start, progress)
        return result

    def _read_file(self, spec: SourceSpec, file: SourceFile, result: BatchResult) -> list[TextToIndex]:
        """The documents of one file, ready to index; [] (with the reason noted) when it fails."""
        result.files += 1
        try:
            data = (Path(spec.root) / file.path).read_bytes()
            documents = parse_file(file.path, data, json_text_field=spec.json_text_field)
        except FileNotFoundError:
            return []  # deleted since the scan: the next sync removes its documents
        except (OSError, ParseError) as err:
            result.failed[file.path] = str(err) if isinstance(err, ParseError) else f"cannot read: {err}"
            return []
        # The hash of what was read now, not of the scan: a file edited in between is then
        # seen as changed again by the next sync, never as indexed when it is not.
        origin = Provenance(spec.source_id, file.path, hashlib.sha256(data).hexdigest(), file.modified_ns)
        texts = [
            TextToIndex(record_document_id(file.file_id, d.key), d.title, d.text, origin) for d in documents
        ]
        if len({t.document_id for t in texts}) < len(texts):
            # Record keys that differ only in characters an id cannot hold ("a b", "a-b").
            result.failed[file.path] = "two records map to the same document id; make their keys distinct"
            return []
        return texts

    def _index_group(
        self,
        spec: SourceSpec,
        group: list[tuple[SourceFile, list[TextToIndex]]],
        result: BatchResult,
        heartbeat: Callable[[], None],
    ) -> None:
        texts = [t for _, file_texts in group for t in file_texts]
        outcomes = iter(self._ingestion.index_texts(spec.tenant, texts, heartbeat))
        for file, file_texts in group:
            written: set[str] = set()
            for text in file_texts:
                indexed = next(outcomes)
                if indexed is None:
                    result.failed[file.path] = f"document {text.document_id} has no text to index"
                    continue
                written.add(text.document_id)
                if indexed.embedded_chunks or indexed.removed_chunks:
                    result.indexed += 1
                else:
                    result.unchanged += 1
                result.embedded_chunks += indexed.embedded_chunks
                result.reused_chunks += indexed.chunks - indexed.embedded_chunks
            if any(t.document_id != file.file_id for t in file_texts):  # records dropped from a JSON file
                for document_id, path, _ in self._graph.source_documents(spec.tenant, spec.source_id):
                    if path == file.path and document_id not in written:
                        self._ingestion.remove(spec.tenant, document_id)
                        invalidate_answers(self._cache, spec.tenant, [document_id])
                        result.removed += 1

    @activity.defn(name="sources.remove_documents")
    @permanent_errors()
    def remove_documents(self, request: RemoveDocuments) -> int:
        """Remove documents from both stores in the same sync; idempotent (a gone one is a no-op)."""
        documents = [str(d) for d in self._blobs.get_json(request.tenant, request.documents_key)["documents"]]
        for count, document_id in enumerate(documents, start=1):
            self._ingestion.remove(request.tenant, document_id)
            invalidate_answers(self._cache, request.tenant, [document_id])
            activity.heartbeat(count)
        return len(documents)

    @activity.defn(name="sources.record_sync")
    def record_sync(self, update: RecordSync) -> None:
        """What the sources list shows: the sync's state and counts."""
        self._registry.record(update.tenant, update.source_id, update.record)
        if update.record.status != "running":  # the record now holds every batch's counts
            self._registry.clear_progress(update.tenant, update.source_id, update.record.run_id)

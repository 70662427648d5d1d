"""Turning documents into what both stores hold: chunks, vectors, mentions, relations, ABOUT links.

Shared by the ingestion activity (one document per call) and `keel eval` (whole corpora,
embedded in large batches), so an evaluated index is built exactly as production builds one.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ingestion.chunking import chunk_text
from ingestion.entities import KnownNames, extract_entities, extract_relations
from keel.core.names import designated_name
from retrieval.encoders import DenseEncoder, SparseEncoder
from retrieval.entity_names import entity_key
from retrieval.graph_store import GraphChunk, GraphDocument, GraphRelation, GraphStore, Provenance
from retrieval.types import ChunkRecord, SourceDocument, chunk_id_for
from retrieval.vector_store import VectorStore

_log = logging.getLogger(__name__)


def content_version(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:16]


def embedded_text(title: str, piece: str) -> str:
    """What the dense encoder sees for a chunk. The title goes into every embedded text: a
    chunk alone often never names its subject."""
    return f"{title}\n{piece}"


@dataclass(frozen=True)
class PreparedDocument:
    """A document ready to write: every record embedded, every graph row built."""

    document_id: str
    title: str
    version: str
    records: list[ChunkRecord]
    graph_chunks: list[GraphChunk]
    relations: list[GraphRelation]
    about: list[tuple[str, str]]  # (entity key, name) the document is about
    reused_vectors: int = 0  # chunks whose dense vector was known, so not embedded again

    @property
    def entity_count(self) -> int:
        return len({key for chunk in self.graph_chunks for key, _ in chunk.entities})


# A title longer than this reads as a sentence ("Microglia drive ..."), not as an article's subject.
MAX_SUBJECT_WORDS = 8


def title_aliases(title: str) -> list[str]:
    """The names an article is about: "Boston, Lincolnshire (UK)" -> "Boston, Lincolnshire", "Boston".

    HTML entities unescaped, a trailing "(...)" qualifier dropped, and the part before ", "
    as a second name when what follows is itself a name (a place: "Boston, Lincolnshire"; not
    a list: "Alcohol, wine, and health"), the name without a trailing designator ("A41 road"
    -> "A41", `designated_name`), and the title without a closing "?" or "!". Names
    under 3 characters are dropped (they would match everywhere), and so are all-capitals
    titles: section headings ("METHODS AND RESULTS").
    """
    subject = re.sub(r"\s*\([^()]*\)\s*$", "", html.unescape(title)).strip()
    if not subject or len(subject.split()) > MAX_SUBJECT_WORDS or subject.isupper():
        return []
    names = [subject]
    parts = subject.split(", ")
    if len(parts) == 2 and parts[1][:1].isupper():
        names.append(parts[0].strip())
    names.extend(designated_name(subject))
    # A title ending in "?" or "!" ("Why Is There Air?", "Oklahoma!") is also named without it:
    # name extraction and query spans drop edge punctuation, so the key with it never matched.
    names.append(subject.rstrip("?!").strip())
    return [n for n in dict.fromkeys(names) if len(n) >= 3]


def about_entities(title: str) -> list[tuple[str, str]]:
    """(key, name) of every alias of the title: what the document is about, for graph expansion."""
    return [(entity_key(name), name) for name in title_aliases(title)]


class NameFinder:
    """Finds any of a fixed set of names in a text, whole words only, with one compiled pattern.

    Passing thousands of names to `extract_entities(known=...)` would compile a pattern per
    name per chunk; this scans once per text and hands over only the names present.
    """

    def __init__(self, names: Iterable[str]) -> None:
        unique = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
        self._pattern = (
            re.compile(rf"(?<!\w)(?:{'|'.join(re.escape(n) for n in unique)})(?!\w)") if unique else None
        )

    def find(self, text: str) -> list[str]:
        """The names in `text`, longest first where they overlap, in order of appearance."""
        if self._pattern is None:
            return []
        return list(dict.fromkeys(m.group() for m in self._pattern.finditer(html.unescape(text))))


def prepare_documents(
    tenant: str,
    documents: Sequence[SourceDocument],
    dense: DenseEncoder,
    sparse: SparseEncoder,
    chunk_chars: int,
    overlap_chars: int,
    name_finder: NameFinder | None = None,
    known_vectors: Mapping[str, Sequence[float]] | None = None,
    encode: Callable[[Sequence[str]], list[list[float]]] | None = None,
) -> list[PreparedDocument]:
    """Chunk, embed (one batch for all documents) and extract entities.

    `name_finder` finds names the capitalisation rules alone may miss or cut differently,
    e.g. the subjects of the other documents of the corpus (entity linking).
    `known_vectors` maps embedded texts (`embedded_text`) to vectors already stored: those
    chunks are not embedded again, which is what makes an edit cost only its changed chunks.
    `encode` replaces `dense.encode_documents`, e.g. to heartbeat between slices of a long list.
    A document with no text is skipped: the caller decides whether that is an error.
    """
    known = known_vectors or {}
    pieces_of = [chunk_text(d.text, chunk_chars, overlap_chars) for d in documents]
    texts = [
        embedded_text(d.title, piece)
        for d, pieces in zip(documents, pieces_of, strict=True)
        for piece in pieces
    ]
    # Each distinct new text once: a boilerplate paragraph repeated across files is embedded once.
    missing = list(dict.fromkeys(t for t in texts if t not in known))
    fresh = dict(zip(missing, (encode or dense.encode_documents)(missing), strict=True))
    vectors = iter([list(known[t]) if t in known else fresh[t] for t in texts])
    prepared = []
    for doc, pieces in zip(documents, pieces_of, strict=True):
        if not pieces:
            continue
        version = content_version(doc.title, doc.text)
        title_entities = extract_entities(doc.title.split("(")[0])
        # Names the whole document uses are known in each chunk: a chunk that opens with a
        # one-word name ("Palletview is owned by …") has no cue of its own.
        doc_known = KnownNames(dict.fromkeys(title_entities + extract_entities(doc.text)))
        records: list[ChunkRecord] = []
        graph_chunks: list[GraphChunk] = []
        relations: dict[tuple[str, str, str], GraphRelation] = {}
        for position, piece in enumerate(pieces):
            chunk_id = chunk_id_for(doc.document_id, position)
            # Linked names are other articles' subjects: the edges graph expansion follows.
            linked = name_finder.find(piece) if name_finder else []
            names = list(dict.fromkeys(title_entities + extract_entities(piece, known=doc_known) + linked))
            records.append(
                ChunkRecord(
                    tenant=tenant,
                    document_id=doc.document_id,
                    chunk_id=chunk_id,
                    position=position,
                    title=doc.title,
                    text=piece,
                    version=version,
                    dense=next(vectors),
                    sparse=sparse.encode_document(embedded_text(doc.title, piece)),
                    entities=names,
                )
            )
            graph_chunks.append(GraphChunk(chunk_id, position, [(entity_key(n), n) for n in names]))
            for rel in extract_relations(piece, names):
                source, target = entity_key(rel.source), entity_key(rel.target)
                relations[(source, target, rel.kind)] = GraphRelation(
                    source, target, rel.kind, doc.document_id
                )
        prepared.append(
            PreparedDocument(
                doc.document_id,
                doc.title,
                version,
                records,
                graph_chunks,
                list(relations.values()),
                about_entities(doc.title),
                reused_vectors=sum(embedded_text(doc.title, piece) in known for piece in pieces),
            )
        )
    return prepared


def write_document(
    tenant: str, doc: PreparedDocument, vectors: VectorStore, graph: GraphStore, replacing: bool
) -> int:
    """Write one document to both stores, all or nothing (`write_documents`); returns how many
    stale chunks were dropped."""
    stored = vectors.count(tenant, doc.document_id) if replacing else 0
    [removed] = write_documents(tenant, [DocumentWrite(doc, stored)], vectors, graph)
    return removed


@dataclass(frozen=True)
class DocumentWrite:
    doc: PreparedDocument
    stored_chunks: int  # of an earlier version, counted before this write: those past the new end go
    provenance: Provenance | None = None


def write_documents(
    tenant: str,
    writes: Sequence[DocumentWrite],
    vectors: VectorStore,
    graph: GraphStore,
    before_commit: Callable[[], None] | None = None,
) -> list[int]:
    """Write documents to both stores, each all or nothing: stage, commit, publish.

    1. Stage: the new vectors go to Qdrant as staged points, which no search, lookup or count
       sees. Both stores' refusals of the input come here or in step 2, before anything is
       readable.
    2. Commit: the graph write, whose last statement sets Document.version: the commit record.
    3. Publish: the vectors are written again as the readable points (same ids as the old
       version's, so each chunk is swapped in one upsert), the old version's tail is dropped
       and the staged copies go.

    Why staging rather than writing the readable points first and undoing them on failure:
    an undo cannot run when the worker is SIGKILLed between the two stores' writes, and the
    new version's chunks would stay searchable under the old graph. Staged points are
    invisible whatever happens; a crash leaves at most invisible leftovers, which the retry
    overwrites (deterministic ids per chunk and version) and its publish removes. A crash
    after the commit leaves the previous version's points readable until the retry
    publishes: the activity's skip test requires every readable chunk to carry the committed
    version, so the retry never mistakes that state for done.

    A failed graph write discards the staged points; the graph's version stays the old one
    (set last). `before_commit` runs between stage and commit: the fault tests hold there.
    Returns, per write, how many stale chunks were dropped.
    """
    ids = [write.doc.document_id for write in writes]
    records = [record for write in writes for record in write.doc.records]
    vectors.stage(records)
    try:
        if before_commit is not None:
            before_commit()
        graph.upsert_documents(tenant, [graph_document(write.doc, write.provenance) for write in writes])
    except BaseException:
        _discard_quietly(tenant, ids, vectors)
        raise
    return _publish(tenant, writes, records, vectors)


def _publish(
    tenant: str, writes: Sequence[DocumentWrite], records: Sequence[ChunkRecord], vectors: VectorStore
) -> list[int]:
    """Make committed versions readable; idempotent, so a retry after a crash here converges."""
    vectors.upsert(records)
    removed = []
    for write in writes:
        keep = [r.chunk_id for r in write.doc.records]
        # Chunk ids are positions: more stored than written means the old tail is stale.
        dropped = max(0, write.stored_chunks - len(keep))
        if dropped:
            vectors.delete_document(tenant, write.doc.document_id, keep_chunk_ids=keep)
        removed.append(dropped)
    vectors.discard_staged(tenant, [write.doc.document_id for write in writes])
    return removed


def _discard_quietly(tenant: str, document_ids: Sequence[str], vectors: VectorStore) -> None:
    """Drop staged points after a failed commit. Best effort: the failure that got us here is
    the one to report, and staged points left behind are invisible and overwritten later."""
    try:
        vectors.discard_staged(tenant, document_ids)
    except Exception:
        _log.warning("staged points of %s left behind after a failed write", document_ids, exc_info=True)


def graph_document(doc: PreparedDocument, provenance: Provenance | None = None) -> GraphDocument:
    """The graph half of a prepared document (bulk loads write many at once)."""
    return GraphDocument(
        doc.document_id,
        doc.title,
        doc.version,
        doc.graph_chunks,
        doc.relations,
        about=doc.about,
        provenance=provenance,
    )

"""Document─Chunk─Entity graph in FalkorDB, one graph per tenant.

Model: (:Document {id, title, version, chunks, source, path, file_hash, modified_ns})
-[:HAS_CHUNK]->(:Chunk {id, position, document_id})-[:MENTIONS {names, matches}]->(:Entity {key, name});
(:Entity)-[:REL {kind, document_id}]->(:Entity);
(:Document)-[:ABOUT {names, matches}]->(:Entity) for a document whose title names the entity.

Merge evidence: an edge's `names` are the surface forms its chunk (or title) reads the entity
as, its `matches` the `merge_reason` of each against the entity's `name`, which is the
`canonical_name` of every form on any of its edges. Both are settled after each write.

All Cypher is parameterised; labels and relation kinds are fixed or from an allow-list.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from falkordb import FalkorDB
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from keel.core.settings import url_without_password
from retrieval.clean_text import unsafe_character
from retrieval.entity_names import canonical_name, merge_reason
from retrieval.types import (
    InvalidRequestError,
    StoreError,
    StoreUnavailableError,
    validate_tenant,
)

_K = TypeVar("_K", bound=Hashable)

RELATION_KINDS = frozenset({"MENTIONS", "OWNS", "LEADS", "DEPENDS_ON", "MEMBER_OF", "RELATED_TO"})
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# (label or relation type, property, is an edge index)
_INDEXES = (
    ("Document", "id", False),
    ("Chunk", "id", False),
    ("Entity", "key", False),
    ("REL", "document_id", True),
    ("Document", "source", False),
)


# Cypher. Parameters only; the one interpolation (ensure_indexes) uses names from _INDEXES.
LIST_INDEXES = "CALL db.indexes() YIELD label, properties RETURN label, properties"
# Writes take lists (one statement per kind for a whole group of documents, not one each):
# a sync's round trips to FalkorDB compete with the encoder for the same cores.
DOCUMENT_ENTITY_KEYS = """
UNWIND $docs AS doc
MATCH (:Document {id: doc})-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(e:Entity)
RETURN DISTINCT e.key
UNION
UNWIND $docs AS doc
MATCH (:Document {id: doc})-[:ABOUT]->(e:Entity)
RETURN DISTINCT e.key
"""
MERGE_DOCUMENTS = """
UNWIND $docs AS row
MERGE (:Document {id: row.doc})
"""
# Last of a write: until then a retry finds the old version (or none) and writes it again.
SET_DOCUMENTS = """
UNWIND $docs AS row
MATCH (d:Document {id: row.doc})
SET d.title = row.title, d.version = row.version, d.chunks = row.n, d.source = row.source,
    d.path = row.path, d.file_hash = row.file_hash, d.modified_ns = row.modified_ns
"""
SET_PROVENANCE = """
MATCH (d:Document {id: $doc})
SET d.source = $source, d.path = $path, d.file_hash = $file_hash, d.modified_ns = $modified_ns
"""
SOURCE_DOCUMENTS = """
MATCH (d:Document {source: $source})
RETURN d.id, d.path, d.file_hash
"""
DELETE_STALE_CHUNKS = """
UNWIND $docs AS row
MATCH (:Document {id: row.doc})-[:HAS_CHUNK]->(c:Chunk)
WHERE NOT c.id IN row.keep
DETACH DELETE c
"""
MERGE_CHUNKS = """
UNWIND $chunks AS row
MATCH (d:Document {id: row.doc})
MERGE (c:Chunk {id: row.id})
SET c.position = row.position, c.document_id = row.doc
MERGE (d)-[:HAS_CHUNK]->(c)
"""
DELETE_STALE_MENTIONS = """
UNWIND $chunks AS row
MATCH (:Document {id: row.doc})-[:HAS_CHUNK]->(c:Chunk {id: row.id})-[m:MENTIONS]->(e:Entity)
WHERE NOT e.key IN row.keys
DELETE m
"""
# Reasons stay while an edge's forms do (an unchanged re-upsert settles nothing); new forms get
# theirs when the entity is settled.
MERGE_MENTIONS = """
UNWIND $mentions AS row
MATCH (c:Chunk {id: row.chunk})
MERGE (e:Entity {key: row.key})
ON CREATE SET e.name = row.names[0]
MERGE (c)-[m:MENTIONS]->(e)
SET m.matches = CASE WHEN m.names = row.names THEN m.matches END
SET m.names = row.names
"""
DELETE_STALE_ABOUT = """
UNWIND $docs AS row
MATCH (:Document {id: row.doc})-[a:ABOUT]->(e:Entity)
WHERE NOT e.key IN row.about
DELETE a
"""
MERGE_ABOUT = """
UNWIND $about AS row
MATCH (d:Document {id: row.doc})
MERGE (e:Entity {key: row.key})
ON CREATE SET e.name = row.names[0]
MERGE (d)-[a:ABOUT]->(e)
SET a.matches = CASE WHEN a.names = row.names THEN a.matches END
SET a.names = row.names
"""
# No labels on the ends: with them FalkorDB scans every Entity before using the edge index.
DELETE_RELATIONS = """
MATCH ()-[r:REL]->()
WHERE r.document_id IN $docs
DELETE r
"""
CREATE_RELATIONS = """
UNWIND $rels AS row
MATCH (a:Entity {key: row.source}), (b:Entity {key: row.target})
MERGE (a)-[:REL {kind: row.kind, document_id: row.doc}]->(b)
"""
DELETE_ORPHAN_ENTITIES = """
UNWIND $keys AS key
MATCH (e:Entity {key: key})
WHERE NOT ()-[:MENTIONS]->(e) AND NOT ()-[:ABOUT]->(e)
DETACH DELETE e
"""
ENTITY_FORMS = """
UNWIND $keys AS key
MATCH (e:Entity {key: key})<-[r:MENTIONS|ABOUT]-()
RETURN DISTINCT e.key, e.name, r.names, r.matches
"""
# Applied only while the entity's forms are still those the reasons were computed from: a
# writer that changed them since settles them itself, after its own write.
SETTLE_ENTITIES = """
UNWIND $entities AS row
MATCH (e:Entity {key: row.key})<-[r:MENTIONS|ABOUT]-()
UNWIND r.names AS form
WITH e, row, collect(DISTINCT form) AS forms
WHERE size(forms) = size(row.forms) AND all(f IN forms WHERE f IN row.forms)
SET e.name = row.name
WITH e, row
MATCH (e)<-[r:MENTIONS|ABOUT]-()
SET r.matches = [n IN r.names | row.matches[[i IN range(0, size(row.forms) - 1) WHERE row.forms[i] = n][0]]]
"""
# A deletion runs in steps; the document node goes last, keeping the keys of the entities it
# mentioned (`deleting`): a retry after a crash between the steps still knows which entities its
# removal may have orphaned, as the first attempt did.
MARK_DELETING = """
MATCH (d:Document {id: $doc})
SET d.deleting = $keys
"""
DELETING_KEYS = """
MATCH (d:Document {id: $doc})
WHERE d.deleting IS NOT NULL
UNWIND d.deleting AS key
RETURN DISTINCT key
"""
DELETE_CHUNKS_AND_ABOUT = """
MATCH (d:Document {id: $doc})
OPTIONAL MATCH (d)-[:HAS_CHUNK]->(c:Chunk)
DETACH DELETE c
WITH DISTINCT d
OPTIONAL MATCH (d)-[a:ABOUT]->(:Entity)
DELETE a
"""
DELETE_DOCUMENT = """
MATCH (d:Document {id: $doc})
DETACH DELETE d
"""
# The bridge hop: a seed passage names an entity; the document about that entity is the next hop.
# An entity that many passages mention ("Summary", a section heading) is a topic, not a link.
LINKED_FROM_SEEDS = """
UNWIND $seeds AS seed
MATCH (s:Chunk {id: seed})-[:MENTIONS]->(e:Entity)<-[:ABOUT]-(d:Document)
WHERE d.id <> s.document_id
WITH seed, d, e
MATCH (e)<-[:MENTIONS]-(m:Chunk)
WITH seed, d, e, count(m) AS mentions
WHERE mentions <= $max_mentions
RETURN DISTINCT seed, d.id
ORDER BY seed, d.id
LIMIT $limit
"""
# Documents about an entity the question names ("Which is older, X or Y?").
ABOUT_KEYS = """
UNWIND $keys AS key
MATCH (e:Entity {key: key})<-[:ABOUT]-(d:Document)
RETURN e.key, d.id
ORDER BY e.key, d.id
LIMIT $limit
"""
ENTITY_KEYS_IN = """
UNWIND $ids AS id
MATCH (:Chunk {id: id})-[:MENTIONS]->(e:Entity)
RETURN DISTINCT e.key AS key
ORDER BY key
"""
ENTITY = """
MATCH (e:Entity {key: $key})<-[r:MENTIONS|ABOUT]-(n)
RETURN e.name, type(r) = 'ABOUT', CASE type(r) WHEN 'ABOUT' THEN n.id ELSE n.document_id END,
       r.names, r.matches
"""
DOCUMENT_FIELDS = ("id", "title", "version", "chunks", "source", "path", "file_hash", "modified_ns")
DOCUMENTS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})
RETURN d.id, d.title, d.version, d.chunks, d.source, d.path, d.file_hash, d.modified_ns
"""
COUNTS = """
OPTIONAL MATCH (d:Document) WITH count(d) AS documents
OPTIONAL MATCH (c:Chunk) WITH documents, count(c) AS chunks
OPTIONAL MATCH (e:Entity) WITH documents, chunks, count(e) AS entities
OPTIONAL MATCH (:Chunk)-[m:MENTIONS]->(:Entity) WITH documents, chunks, entities, count(m) AS mentions
OPTIONAL MATCH (:Entity)-[r:REL]->(:Entity)
RETURN documents, chunks, entities, mentions, count(r) AS relations
"""


@dataclass(frozen=True)
class GraphChunk:
    chunk_id: str
    position: int
    entities: list[tuple[str, str]] = field(default_factory=list)  # (entity key, display name)


@dataclass(frozen=True)
class GraphLink:
    """A document about an entity that a seed chunk mentions (or, with seed "", that the query names)."""

    document_id: str
    seed: str
    via: str = ""


@dataclass(frozen=True)
class GraphRelation:
    source_key: str
    target_key: str
    kind: str
    document_id: str


@dataclass(frozen=True)
class GraphDocument:
    """One document's whole contribution to the graph, as `upsert_documents` writes it."""

    document_id: str
    title: str
    version: str
    chunks: Sequence[GraphChunk]
    relations: Sequence[GraphRelation]
    about: Sequence[tuple[str, str]] = ()  # (entity key, name) its title names
    provenance: Provenance | None = None  # where it came from: what a sync compares, a citation shows


@dataclass(frozen=True)
class EntityContribution:
    """What one document contributes to an entity: the forms it reads it as, and why each merged."""

    document_id: str
    forms: dict[str, str]  # surface form -> merge reason ("" until the entity is settled)
    mentions: int  # chunks of the document that mention the entity
    about: bool  # the document is about the entity (an ABOUT edge: its title names it)


@dataclass(frozen=True)
class GraphEntity:
    """An entity with the evidence of its merge: who read it as what, and why that is one entity."""

    key: str
    name: str  # `canonical_name` of `names`
    names: list[str]  # every surface form, sorted
    documents: list[EntityContribution]  # by document id


class GraphStore:
    """FalkorDB access for one prefix; the client does not retry (Temporal does)."""

    def __init__(self, url: str, prefix: str = "keel", socket_timeout_s: float = 30.0) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"invalid graph prefix {prefix!r}: expected {_PREFIX.pattern}")
        self._prefix = prefix
        self._url = url
        # Zero retries, stated explicitly: redis-py's default differs by constructor (Redis()
        # retries 3 times with backoff), and Temporal's retry policy must be the only one.
        # The client talks to the server already here (it probes for sentinel and cluster).
        # The URL may hold the password: errors name the server without it.
        with self._errors(f"connect to {url_without_password(url)}", "-"):
            self._db = FalkorDB.from_url(
                url,
                retry=Retry(NoBackoff(), 0),
                retry_on_error=[],
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=min(socket_timeout_s, 5.0),
            )
        self._indexed: set[str] = set()
        self._lock = threading.Lock()

    def graph_name(self, tenant: str) -> str:
        return f"{self._prefix}_{validate_tenant(tenant)}"

    @contextmanager
    def _errors(self, what: str, tenant: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailableError(f"falkordb: {what} (tenant {tenant!r}) failed: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"falkordb: {what} (tenant {tenant!r}) failed: {exc}") from exc

    def _run(
        self, tenant: str, what: str, cypher: str, params: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        _check_params(what, params)
        with self._errors(what, tenant):
            return list(self._db.select_graph(self.graph_name(tenant)).query(cypher, params).result_set)

    def _read(
        self, tenant: str, what: str, cypher: str, params: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        _check_params(what, params)
        name = self.graph_name(tenant)
        with self._errors(what, tenant):
            # A read must not create the tenant's graph (any GRAPH.QUERY on a missing key would).
            if not self._db.connection.exists(name):
                return []
            return list(self._db.select_graph(name).ro_query(cypher, params).result_set)

    def ensure_indexes(self, tenant: str) -> None:
        """Create the lookup indexes of the tenant's graph that do not exist yet."""
        name = self.graph_name(tenant)
        with self._lock:
            if name in self._indexed:
                return
        existing = {
            (row[0], prop) for row in self._run(tenant, "list indexes", LIST_INDEXES) for prop in row[1]
        }
        for label, prop, is_edge in _INDEXES:
            if (label, prop) in existing:
                continue
            pattern = f"()-[x:{label}]-()" if is_edge else f"(x:{label})"
            try:
                self._run(tenant, f"index {label}.{prop}", f"CREATE INDEX FOR {pattern} ON (x.{prop})")
            except StoreError:
                # Another writer may have created it meanwhile ("already indexed"); re-check, don't parse.
                rows = self._run(tenant, "list indexes", LIST_INDEXES)
                if not any(row[0] == label and prop in row[1] for row in rows):
                    raise
        with self._lock:
            self._indexed.add(name)

    def upsert_document(
        self,
        tenant: str,
        document_id: str,
        title: str,
        version: str,
        chunks: Sequence[GraphChunk],
        relations: Sequence[GraphRelation],
        about: Sequence[tuple[str, str]] = (),
        provenance: Provenance | None = None,
    ) -> None:
        """`upsert_documents` for one document."""
        document = GraphDocument(document_id, title, version, chunks, relations, about, provenance)
        self.upsert_documents(tenant, [document])

    def upsert_documents(self, tenant: str, documents: Sequence[GraphDocument]) -> None:
        """Replace each document's chunks, mentions, relations and ABOUT entities; idempotent.

        One statement per kind of write for all the documents: a group of small files costs
        about as many round trips as one file.
        Relations whose endpoints no chunk mentions are dropped: entities live only while mentioned.
        """
        ids = [document.document_id for document in documents]
        if len(set(ids)) != len(ids):
            raise InvalidRequestError(f"a document is written twice in one upsert: {sorted(ids)}")
        for document in documents:
            _check_document(document.document_id, document.chunks, document.relations)
        if not documents:
            return
        what = f"upsert of document {ids[0]!r}" if len(ids) == 1 else f"upsert of {len(ids)} documents"
        rows = _WriteRows.of(documents)
        # Every row checked before the first statement: a refusal must not leave half a write.
        _check_params(what, rows.__dict__)
        self.ensure_indexes(tenant)
        old_keys = [row[0] for row in self._run(tenant, what, DOCUMENT_ENTITY_KEYS, {"docs": ids})]
        # Statements with nothing to write are skipped: each is a round trip.
        self._run(tenant, what, MERGE_DOCUMENTS, {"docs": rows.documents})
        self._run(tenant, what, DELETE_STALE_CHUNKS, {"docs": rows.documents})
        if rows.chunks:
            self._run(tenant, what, MERGE_CHUNKS, {"chunks": rows.chunks})
        if old_keys:  # the documents mentioned something before: drop what they no longer do
            self._run(tenant, what, DELETE_STALE_MENTIONS, {"chunks": rows.chunks})
            self._run(tenant, what, DELETE_STALE_ABOUT, {"docs": rows.documents})
        self._run(tenant, what, DELETE_RELATIONS, {"docs": ids})
        if rows.mentions:
            self._run(tenant, what, MERGE_MENTIONS, {"mentions": rows.mentions})
        if rows.about:
            self._run(tenant, what, MERGE_ABOUT, {"about": rows.about})
        if rows.relations:
            self._run(tenant, what, CREATE_RELATIONS, {"rels": rows.relations})
        if old_keys:
            self._run(tenant, what, DELETE_ORPHAN_ENTITIES, {"keys": old_keys})
        new_keys = {row["key"] for row in [*rows.mentions, *rows.about]}
        self._settle(tenant, what, sorted({*old_keys, *new_keys}))
        # The version and file hash go last: a write cut short anywhere above leaves the old
        # ones (or none), so the next attempt and the next sync see the document as changed.
        self._run(tenant, what, SET_DOCUMENTS, {"docs": rows.documents})

    def _settle(self, tenant: str, what: str, keys: list[str]) -> None:
        """Give the entities their canonical names and their edges the merge reasons of their forms."""
        rows = self._run(tenant, what, ENTITY_FORMS, {"keys": keys})
        if settlements := _settlements(rows):
            self._run(tenant, what, SETTLE_ENTITIES, {"entities": settlements})

    def delete_document(self, tenant: str, document_id: str) -> None:
        """Remove the document, its chunks, its relations and the entities only it mentioned."""
        doc = {"doc": document_id}
        what = f"delete of document {document_id!r}"
        docs = {"docs": [document_id]}
        if not self._db.connection.exists(self.graph_name(tenant)):
            return
        mentioned = [row[0] for row in self._read(tenant, "read mentions", DOCUMENT_ENTITY_KEYS, docs)]
        marked = [row[0] for row in self._read(tenant, "read mentions", DELETING_KEYS, doc)]
        old_keys = sorted(set(mentioned) | set(marked))
        self._run(tenant, what, MARK_DELETING, {**doc, "keys": old_keys})
        self._run(tenant, what, DELETE_CHUNKS_AND_ABOUT, doc)
        self._run(tenant, what, DELETE_RELATIONS, docs)
        self._run(tenant, what, DELETE_ORPHAN_ENTITIES, {"keys": old_keys})
        self._settle(tenant, what, old_keys)
        self._run(tenant, what, DELETE_DOCUMENT, doc)  # last: until now a retry finds the keys here

    def linked_documents(
        self, tenant: str, seed_chunk_ids: Sequence[str], limit: int, max_mentions: int = 20
    ) -> list[GraphLink]:
        """Documents about an entity one of the seed chunks mentions (not the seed's own document).

        Entities mentioned by more than `max_mentions` chunks are not followed.
        """
        if limit < 1 or not seed_chunk_ids:
            return []
        params = {"seeds": list(seed_chunk_ids), "limit": limit, "max_mentions": max_mentions}
        rows = self._read(tenant, "linked documents", LINKED_FROM_SEEDS, params)
        return [GraphLink(document_id=row[1], seed=row[0]) for row in rows]

    def documents_about(self, tenant: str, keys: Sequence[str], limit: int) -> list[GraphLink]:
        """Documents about any of the entity keys, with the key as `via`."""
        if limit < 1 or not keys:
            return []
        params = {"keys": sorted(set(keys)), "limit": limit}
        rows = self._read(tenant, "documents about entities", ABOUT_KEYS, params)
        return [GraphLink(document_id=row[1], seed="", via=row[0]) for row in rows]

    def entity_keys_in(self, tenant: str, chunk_ids: Sequence[str]) -> list[str]:
        """Keys of the entities the chunks mention, sorted."""
        if not chunk_ids:
            return []
        rows = self._read(tenant, "entities of chunks", ENTITY_KEYS_IN, {"ids": list(chunk_ids)})
        return [row[0] for row in rows]

    def entity(self, tenant: str, key: str) -> GraphEntity | None:
        """The entity with, per document it links, the forms that document reads and why they merged.

        What answers "why are these documents linked?": each names the entity in a form that
        normalises to the same key. None when no document mentions the key.
        """
        rows = self._read(tenant, f"read of entity {key!r}", ENTITY, {"key": key})
        if not rows:
            return None
        forms: dict[str, dict[str, str]] = {}
        mentions: dict[str, int] = {}
        about: set[str] = set()
        for _, is_about, doc, read, reasons in rows:
            # An edge written before evidence was recorded has no forms; it still links.
            read = read or []
            forms.setdefault(doc, {}).update(zip(read, reasons or [""] * len(read), strict=True))
            mentions.setdefault(doc, 0)
            if is_about:
                about.add(doc)
            else:
                mentions[doc] += 1
        documents = [
            EntityContribution(doc, dict(sorted(forms[doc].items())), mentions[doc], doc in about)
            for doc in sorted(forms)
        ]
        names = sorted({name for contribution in documents for name in contribution.forms})
        return GraphEntity(key, str(rows[0][0]), names, documents)

    def document(self, tenant: str, document_id: str) -> dict[str, Any] | None:
        """A stored document's properties (id, title, version, chunks and its provenance), or None."""
        return self.documents(tenant, [document_id]).get(document_id)

    def set_provenance(self, tenant: str, document_id: str, provenance: Provenance) -> None:
        """Record a new origin for a document whose text did not change (a re-saved file)."""
        what = f"provenance of document {document_id!r}"
        self._run(tenant, what, SET_PROVENANCE, {"doc": document_id, **provenance.row()})

    def source_documents(self, tenant: str, source: str) -> list[tuple[str, str, str]]:
        """(document id, path, file hash) of every document indexed from `source`, by id."""
        rows = self._read(tenant, f"documents of source {source!r}", SOURCE_DOCUMENTS, {"source": source})
        return sorted((str(r[0]), str(r[1] or ""), str(r[2] or "")) for r in rows)

    def drop(self, tenant: str) -> None:
        """Delete the tenant's whole graph (evaluation indexes only: ingestion never drops)."""
        name = self.graph_name(tenant)
        with self._errors("drop graph", tenant):
            if self._db.connection.exists(name):
                self._db.select_graph(name).delete()
        with self._lock:
            self._indexed.discard(name)

    def counts(self, tenant: str) -> dict[str, int]:
        """Numbers of documents, chunks, entities, mentions and relations in the tenant's graph."""
        names = ("documents", "chunks", "entities", "mentions", "relations")
        rows = self._read(tenant, "counts", COUNTS)
        values = rows[0] if rows else [0] * len(names)
        return {name: int(value) for name, value in zip(names, values, strict=True)}

    def close(self) -> None:
        with self._errors("close", "-"):
            self._db.connection.close()

    def documents(self, tenant: str, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`document` for many ids in one query: id -> properties; ids not stored are left out."""
        ids = sorted(set(document_ids))
        if not ids:
            return {}
        rows = self._read(tenant, f"read of {len(ids)} documents", DOCUMENTS, {"ids": ids})
        return {str(row[0]): dict(zip(DOCUMENT_FIELDS, row, strict=True)) for row in rows}


@dataclass(frozen=True)
class Provenance:
    """Where a document's text came from: its source, the file, that file's hash and time."""

    source: str = "upload"
    path: str = ""
    file_hash: str = ""
    modified_ns: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "file_hash": self.file_hash,
            "modified_ns": self.modified_ns,
        }


@dataclass
class _WriteRows:
    """The parameter rows of `upsert_documents`, one list per statement, over all its documents."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    about: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, documents: Sequence[GraphDocument]) -> _WriteRows:
        rows = cls()
        for document in documents:
            doc = document.document_id
            for c in document.chunks:
                keys = [key for key, _ in c.entities]
                rows.chunks.append({"doc": doc, "id": c.chunk_id, "position": c.position, "keys": keys})
            read_as = _forms(((c.chunk_id, key), name) for c in document.chunks for key, name in c.entities)
            for (chunk, key), names in read_as.items():
                rows.mentions.append({"chunk": chunk, "key": key, "names": names})
            about_as = _forms(document.about)
            for key, names in about_as.items():
                rows.about.append({"doc": doc, "key": key, "names": names})
            for rel in document.relations:
                ends = {"source": rel.source_key, "target": rel.target_key}
                rows.relations.append({"doc": doc, **ends, "kind": rel.kind})
            rows.documents.append(
                {
                    "doc": doc,
                    "title": document.title,
                    "version": document.version,
                    "n": len(document.chunks),
                    "keep": [c.chunk_id for c in document.chunks],
                    "about": list(about_as),
                    **(document.provenance or Provenance()).row(),
                }
            )
        return rows


def _forms(pairs: Iterable[tuple[_K, str]]) -> dict[_K, list[str]]:
    """The distinct names read for each key, in reading order."""
    forms: dict[_K, list[str]] = {}
    for key, name in pairs:
        names = forms.setdefault(key, [])
        if name not in names:
            names.append(name)
    return forms


def _settlements(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The entities of ENTITY_FORMS rows whose name or reasons are not what their forms make them."""
    names: dict[str, str] = {}
    edges: dict[str, list[tuple[list[str], list[str] | None]]] = {}
    for key, name, forms, matches in rows:
        names[key] = name
        if forms:  # None on an edge written before evidence was recorded
            edges.setdefault(key, []).append((forms, matches))
    settlements = []
    for key, readings in sorted(edges.items()):
        forms = sorted({form for read, _ in readings for form in read})
        canonical = canonical_name(forms)
        reasons = {form: merge_reason(canonical, form) for form in forms}
        if names[key] != canonical or any(
            matches != [reasons[f] for f in read] for read, matches in readings
        ):
            settlements.append(
                {"key": key, "name": canonical, "forms": forms, "matches": [reasons[f] for f in forms]}
            )
    return settlements


def _check_params(what: str, params: Any) -> None:
    """Refuse, as bad input, a string FalkorDB cannot take: a NUL cuts the query short (a syntax
    error that every retry repeats) and a lone surrogate cannot be encoded at all."""
    if isinstance(params, str):
        if bad := unsafe_character(params):
            raise InvalidRequestError(f"falkordb: {what}: a parameter holds {bad}: {params[:40]!r}")
    elif isinstance(params, dict):
        for value in params.values():
            _check_params(what, value)
    elif isinstance(params, list | tuple):
        for value in params:
            _check_params(what, value)


def _check_document(
    document_id: str, chunks: Sequence[GraphChunk], relations: Sequence[GraphRelation]
) -> None:
    if not document_id:
        raise InvalidRequestError("document_id is empty")
    for chunk in chunks:
        if not chunk.chunk_id or any(not key for key, _ in chunk.entities):
            raise InvalidRequestError(
                f"document {document_id!r}: chunk {chunk.chunk_id!r} has an empty id or key"
            )
    for rel in relations:
        if rel.kind not in RELATION_KINDS:
            raise InvalidRequestError(
                f"document {document_id!r}: relation kind {rel.kind!r} not in {sorted(RELATION_KINDS)}"
            )
        if rel.document_id != document_id:
            raise InvalidRequestError(
                f"document {document_id!r}: relation {rel.source_key!r}->{rel.target_key!r} "
                f"belongs to {rel.document_id!r}"
            )

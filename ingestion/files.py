"""Reading documents from files: id from the path, title from the first heading."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from ingestion.chunking import parse_markdown_title

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DocumentFileError(Exception):
    """A path that cannot be read as documents; the message names it."""


def document_id_for(path: Path, root: Path) -> str:
    """Stable id from the path under the root: the same file always maps to the same document."""
    relative = path.relative_to(root) if path != root else Path(path.name)
    stem = "--".join(relative.with_suffix("").parts)
    return _UNSAFE.sub("-", stem).strip("-.")[:128] or "document"


def record_document_id(file_id: str, key: str) -> str:
    """The document id of one record of a JSON/JSONL file (`key` "" for a one-document file)."""
    return f"{file_id}--{_UNSAFE.sub('-', key)}"[:200] if key else file_id


def load_documents(path: Path, suffixes: Collection[str]) -> list[tuple[str, str, str]]:
    """(document id, title, text) for every supported file under `path`, sorted by id."""
    if not path.exists():
        raise DocumentFileError(f"{path} does not exist")
    root = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    documents = []
    for file in files:
        if file.suffix.lower() not in suffixes:
            if path.is_file():
                raise DocumentFileError(f"{file} is not a supported file ({', '.join(sorted(suffixes))})")
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DocumentFileError(f"cannot read {file}: {err}") from err
        document_id = document_id_for(file, root)
        documents.append((document_id, parse_markdown_title(text, fallback=file.stem), text))
    return sorted(documents)

"""Turn one file's bytes into documents to index: text, Markdown, HTML, PDF, DOCX, JSON and JSONL."""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ingestion.chunking import parse_markdown_title

if TYPE_CHECKING:
    from docx.table import Table
    from pypdf import PdfReader

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl")

_MAX_TXT_TITLE_CHARS = 120
_PARAGRAPH_SEPARATOR = "\n\n"
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HTML_SKIPPED = frozenset({"script", "style", "noscript", "template"})
_HTML_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details", "dialog"),
        *("div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4"),
        *("h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table"),
        *("tr", "ul"),
    }
)
_HTML_CELLS = frozenset({"td", "th"})
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}


@dataclass(frozen=True)
class ParsedDocument:
    """One document read from a file.

    `key` is "" when the file is one document; for JSON and JSONL files that hold several
    records it names the record inside the file, so file id + key is a stable document id.
    """

    key: str
    title: str
    text: str


class ParseError(Exception):
    """A file that cannot be turned into text; the message says why, in one line."""


@dataclass(frozen=True)
class _JsonFields:
    text: str
    title: str
    id: str


def parse_file(
    name: str,
    data: bytes,
    json_text_field: str = "text",
    json_title_field: str = "title",
    json_id_field: str = "id",
) -> list[ParsedDocument]:
    """The documents in the file called `name` whose content is `data`.

    The suffix of `name` (any case) picks the format, and its stem is the fallback title.
    Raises ParseError when the file cannot be read or holds no text.
    """
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        found = f"'{suffix}'" if suffix else "(no suffix)"
        raise ParseError(f"unsupported file type {found} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    if not data.strip():
        raise ParseError("file is empty" if not data else "file contains only whitespace")
    fields = _JsonFields(text=json_text_field, title=json_title_field, id=json_id_field)
    if suffix == ".json":
        return _parse_json(data, path.stem, fields)
    if suffix == ".jsonl":
        return _parse_jsonl(data, path.stem, fields)
    title, text = _SINGLE_DOCUMENT_PARSERS[suffix](data, path.stem)
    if not text.strip():
        raise ParseError("no text could be extracted")
    return [ParsedDocument(key="", title=title, text=text)]


@contextmanager
def _library_errors(problem: str) -> Iterator[None]:
    """Turn whatever a parsing library raises into a one-line ParseError.

    On malformed input the libraries fail with their own errors and also with KeyError,
    ValueError, AssertionError and the like from deep inside, so any exception here
    means the file could not be read.
    """
    try:
        yield
    except ParseError:
        raise
    except Exception as err:
        detail = " ".join(str(err).split())
        if type(err).__module__ == "builtins" or not detail:
            # "KeyError: '/Root'" says more than "'/Root'".
            detail = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
        raise ParseError(f"{problem}: {detail}") from err


def _decode_utf8(data: bytes) -> str:
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start + len(data) - len(body)
        raise ParseError(f"not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset}") from err


def _parse_txt(data: bytes, stem: str) -> tuple[str, str]:
    text = _decode_utf8(data)
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first_line if 0 < len(first_line) <= _MAX_TXT_TITLE_CHARS else stem
    return title, text


def _parse_markdown(data: bytes, stem: str) -> tuple[str, str]:
    text = _decode_utf8(data)
    return parse_markdown_title(text, fallback=stem), text


def _parse_html(data: bytes, stem: str) -> tuple[str, str]:
    parser = _HtmlText()
    with _library_errors("not valid HTML"):
        parser.feed(_decode_html(data))
        parser.close()
    return parser.title or parser.first_h1 or stem, _PARAGRAPH_SEPARATOR.join(parser.paragraphs)


def _decode_html(data: bytes) -> str:
    # Pages often lie about or garble their encoding; a few replaced characters beat no page.
    match = _META_CHARSET.search(data)
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return data.decode(encoding, errors="replace").removeprefix("\ufeff")


class _HtmlText(HTMLParser):
    """Visible text of a page as paragraphs, plus its <title> and first <h1>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._current: list[str] = []
        self._skipped_depth = 0
        self._title_parts: list[str] | None = None
        self._h1_parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIPPED:
            self._skipped_depth += 1
        elif tag == "title" and not self.title:
            self._title_parts = []
        elif tag == "h1" and not self.first_h1:
            self._h1_parts = []
        if tag in _HTML_BLOCKS:
            self._end_paragraph()
        elif tag in _HTML_CELLS:
            self._current.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self._skipped_depth = max(0, self._skipped_depth - 1)
        elif tag == "title" and self._title_parts is not None:
            self.title = _collapse(self._title_parts)
            self._title_parts = None
        elif tag == "h1" and self._h1_parts is not None:
            self.first_h1 = _collapse(self._h1_parts)
            self._h1_parts = None
        if tag in _HTML_BLOCKS:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self._skipped_depth:
            return
        if self._title_parts is not None:
            # The title names the page; it is not part of the body text.
            self._title_parts.append(data)
            return
        if self._h1_parts is not None:
            self._h1_parts.append(data)
        self._current.append(data)

    def close(self) -> None:
        super().close()
        self._end_paragraph()

    def _end_paragraph(self) -> None:
        paragraph = _collapse(self._current)
        if paragraph:
            self.paragraphs.append(paragraph)
        self._current = []


def _collapse(parts: list[str]) -> str:
    return " ".join("".join(parts).split())


def _parse_pdf(data: bytes, stem: str) -> tuple[str, str]:
    # Readers accept junk before the header, but not far before it.
    if b"%PDF-" not in data[:1024]:
        raise ParseError("not a valid PDF: no %PDF- header at the start of the file")
    with _library_errors("not a valid PDF"):
        reader = _open_pdf(data)
        pages = [page.extract_text().strip() for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    text = _PARAGRAPH_SEPARATOR.join(page for page in pages if page)
    if not text:
        raise ParseError(
            "no text could be extracted from the PDF (scanned PDFs need OCR, which Keel does not do)"
        )
    return title.strip() or stem, text


def _open_pdf(data: bytes) -> PdfReader:
    # pypdf and python-docx are imported where used: together they cost ~180 ms, which every
    # `keel` command (and the API) would pay at start-up through the sources registry.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    try:
        # The reader tries the empty password itself, which opens owner-password-only files.
        reader = PdfReader(io.BytesIO(data))
    except DependencyError as err:
        # AES decryption needs the optional `cryptography` package.
        raise ParseError(f"encrypted PDF: {err}") from err
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise ParseError("encrypted PDF: it cannot be opened without a password")
    return reader


def _parse_docx(data: bytes, stem: str) -> tuple[str, str]:
    import docx
    from docx.table import Table

    with _library_errors("not a valid DOCX file"):
        document = docx.Document(io.BytesIO(data))
        paragraphs: list[str] = []
        heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                paragraphs.extend(_table_rows(block))
            elif block.text.strip():
                paragraphs.append(block.text.strip())
                style = (block.style.name if block.style is not None else None) or ""
                if not heading and (style.startswith("Heading") or style == "Title"):
                    heading = block.text.strip()
        title = (document.core_properties.title or "").strip()
    return title or heading or stem, _PARAGRAPH_SEPARATOR.join(paragraphs)


def _table_rows(table: Table) -> list[str]:
    """One line per row, cells separated by " | ", so a row's values stay together."""
    rows: list[str] = []
    for row in table.rows:
        # A merged cell appears once per grid column it spans.
        cells = list(dict.fromkeys(cell.text.strip() for cell in row.cells))
        line = " | ".join(cell for cell in cells if cell)
        if line:
            rows.append(line)
    return rows


_SINGLE_DOCUMENT_PARSERS = {
    ".txt": _parse_txt,
    ".md": _parse_markdown,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
}


def _parse_json(data: bytes, stem: str, fields: _JsonFields) -> list[ParsedDocument]:
    value = _load_json(_decode_utf8(data), line_number=None)
    if isinstance(value, dict):
        text = _record_text(value, "the JSON object", fields.text)
        return [ParsedDocument(key="", title=_record_title(value, fields.title) or stem, text=text)]
    if isinstance(value, list):
        if not value:
            raise ParseError("the JSON array is empty")
        return _record_documents(((i, f"record {i}", record) for i, record in enumerate(value)), stem, fields)
    raise ParseError(f"expected a JSON object or an array of objects, got {_json_type(value)}")


def _parse_jsonl(data: bytes, stem: str, fields: _JsonFields) -> list[ParsedDocument]:
    records: list[tuple[int, str, object]] = []
    # Split on "\n" only: str.splitlines() would also split at U+2028 and similar
    # characters, which JSON allows unescaped inside strings.
    for index, line in enumerate(_decode_utf8(data).split("\n")):
        if line.strip():
            value = _load_json(line, line_number=index + 1)
            records.append((index, f"record {index} (line {index + 1})", value))
    return _record_documents(records, stem, fields)


def _load_json(text: str, line_number: int | None) -> object:
    """Parse JSON text; `line_number` is the JSONL line it came from, None for a whole file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        line = line_number if line_number is not None else err.lineno
        raise ParseError(f"line {line} is not valid JSON: {err.msg} (column {err.colno})") from err
    except RecursionError as err:
        raise ParseError("JSON is nested too deeply to read") from err


def _record_documents(
    records: Iterable[tuple[int, str, object]], stem: str, fields: _JsonFields
) -> list[ParsedDocument]:
    """A document per (index, description, value) record, refusing two records with one key."""
    documents: list[ParsedDocument] = []
    owners: dict[str, str] = {}
    for index, where, value in records:
        if not isinstance(value, dict):
            raise ParseError(f"{where} is {_json_type(value)}, not a JSON object")
        key = _record_key(value, index, where, fields.id)
        if key in owners:
            # Two records with one key would get one document id and overwrite each other.
            raise ParseError(f"{where} has the same key {key!r} as {owners[key]}")
        owners[key] = where
        title = _record_title(value, fields.title) or f"{stem} #{key}"
        documents.append(ParsedDocument(key=key, title=title, text=_record_text(value, where, fields.text)))
    return documents


def _record_text(record: dict[str, object], where: str, field: str) -> str:
    if field not in record:
        raise ParseError(f"no text field {field!r} in {where}")
    text = record[field]
    if not isinstance(text, str):
        raise ParseError(f"text field {field!r} in {where} is {_json_type(text)}, not a string")
    if not text.strip():
        raise ParseError(f"text field {field!r} in {where} is empty")
    return text


def _record_title(record: dict[str, object], field: str) -> str:
    title = record.get(field)
    return title.strip() if isinstance(title, str) else ""


def _record_key(record: dict[str, object], index: int, where: str, field: str) -> str:
    if field not in record:
        return str(index)
    key = record[field]
    # bool is an int in Python, but `true` is no record id.
    if isinstance(key, str | int) and not isinstance(key, bool) and str(key).strip():
        return str(key)
    raise ParseError(f"id field {field!r} in {where} must be a non-empty string or an integer")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)

"""Parsing files into documents: every format, its titles, and a clear ParseError for every bad file."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import docx
import pytest
from fpdf import FPDF

from ingestion.chunking import chunk_text
from ingestion.parsers import SUPPORTED_SUFFIXES, ParsedDocument, ParseError, parse_file

pytestmark = pytest.mark.unit


def make_pdf(
    pages: list[str], title: str = "", user_password: str | None = None, owner_password: str = ""
) -> bytes:
    """A real PDF with one page per string; an empty string gives a page with only a drawing."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if owner_password:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
        else:
            pdf.rect(20, 20, 80, 40)  # what a scanned page looks like to a text extractor
    return bytes(pdf.output())


def make_docx(title: str = "", with_table: bool = True) -> bytes:
    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph("Intro before any heading.")
    document.add_heading("Kestrel runbook", level=1)
    document.add_paragraph("Kestrel runs 9 brokers.")
    document.add_paragraph("   ")
    if with_table:
        table = document.add_table(rows=2, cols=2)
        table.cell(0, 0).text = "Owner"
        table.cell(0, 1).text = "Team Aurora"
        table.cell(1, 0).merge(table.cell(1, 1)).text = "Paged on weekends"
    document.add_paragraph("Closing note.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def parse_one(name: str, data: bytes) -> ParsedDocument:
    [document] = parse_file(name, data)
    return document


# --- every format -------------------------------------------------------------------------


def test_unsupported_suffix_names_it_and_the_supported_ones() -> None:
    with pytest.raises(ParseError, match=r"^unsupported file type '\.xlsx' \(supported: \.txt, .*\.jsonl\)$"):
        parse_file("budget.xlsx", b"PK\x03\x04")
    with pytest.raises(ParseError, match=r"unsupported file type \(no suffix\)"):
        parse_file("README", b"hello")


def test_suffix_matching_ignores_case() -> None:
    assert parse_one("NOTES.TXT", b"Hello.") == ParsedDocument("", "Hello.", "Hello.")
    assert parse_one("Page.HTM", b"<p>Hi <b>there</b></p>").text == "Hi there"
    assert parse_one("report.PDF", make_pdf(["Kestrel."])).text == "Kestrel."


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
@pytest.mark.parametrize(("data", "reason"), [(b"", "file is empty"), (b" \n\t\r\n", "only whitespace")])
def test_empty_file_raises_for_every_type(suffix: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_file(f"empty{suffix}", data)


def test_parsers_do_not_import_temporal() -> None:
    # tests/conftest.py imports temporalio into this process, so look from a fresh one.
    code = "import sys, ingestion.parsers; print(sorted(m for m in sys.modules if 'temporal' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- plain text and Markdown ----------------------------------------------------------------


def test_txt_keeps_text_and_takes_the_first_non_empty_line_as_title() -> None:
    text = "\n  \nKestrel overview\r\nKestrel is owned by Team Aurora.\n"
    assert parse_one("kestrel.txt", b"\xef\xbb\xbf" + text.encode()) == ParsedDocument(
        "", "Kestrel overview", text
    )


def test_txt_with_a_long_first_line_is_titled_by_the_stem() -> None:
    assert parse_one("notes.txt", b"x" * 121 + b"\nmore").title == "notes"
    assert parse_one("notes.txt", b"x" * 120 + b"\nmore").title == "x" * 120


@pytest.mark.parametrize(("data", "offset"), [(b"caf\xe9 au lait", 3), (b"\xef\xbb\xbfab\xff", 5)])
def test_txt_that_is_not_utf8_names_the_byte_offset(data: bytes, offset: int) -> None:
    with pytest.raises(ParseError, match=rf"^not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset}$"):
        parse_file("latin1.txt", data)


def test_markdown_title_is_the_first_level_one_heading_else_the_stem() -> None:
    text = "intro\n\n## Sub\n\n# Kestrel (system)\n\nBody."
    assert parse_one("kestrel.md", text.encode()) == ParsedDocument("", "Kestrel (system)", text)
    assert parse_one("kestrel.md", b"## Only a sub heading\n\nBody.").title == "kestrel"


# --- HTML -----------------------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><title>Kestrel &amp; Aurora</title>
<style>p { color: red }</style>
<script>var hidden = "<p>script text</p>";</script>
</head><body>
<noscript><p>Enable JavaScript</p></noscript>
<template><p>template text</p></template>
<h1>Kestrel   overview</h1>
<p>Kestrel is owned by
   Team Aurora.</p><div>It runs 9 brokers.<br>Each has 3 disks.</div>
<ul><li>First item</li><li>Second item</li></ul>
<table><tr><td>Owner</td><td>Aurora</td></tr><tr><th>Brokers</th><td>9</td></tr></table>
<section>Costs &lt; 5&nbsp;k&euro;.</section>
</body></html>"""


def test_html_keeps_visible_text_with_blocks_as_paragraphs() -> None:
    document = parse_one("kestrel.html", PAGE)
    assert document.title == "Kestrel & Aurora"
    assert document.text.split("\n\n") == [
        "Kestrel overview",
        "Kestrel is owned by Team Aurora.",
        "It runs 9 brokers.",
        "Each has 3 disks.",
        "First item",
        "Second item",
        "Owner Aurora",
        "Brokers 9",
        "Costs < 5 k€.",  # &nbsp; collapses like any other whitespace
    ]


def test_html_blocks_stay_separate_paragraphs_through_chunking() -> None:
    text = parse_one("kestrel.html", PAGE).text
    chunks = chunk_text(text, max_chars=60, overlap_chars=0)
    assert len(chunks) > 1
    assert [part for chunk in chunks for part in chunk.split("\n\n")] == text.split("\n\n")


@pytest.mark.parametrize(
    ("page", "title"),
    [
        (b"<title> Page  title </title><h1>Heading</h1><p>Body.</p>", "Page title"),
        (b"<title></title><h1>First <em>heading</em></h1><h1>Second</h1><p>Body.</p>", "First heading"),
        (b"<p>Body only.</p>", "page"),
    ],
)
def test_html_title_is_title_then_first_h1_then_stem(page: bytes, title: str) -> None:
    assert parse_one("page.html", page).title == title


def test_html_is_decoded_with_its_meta_charset() -> None:
    page = '<meta charset="iso-8859-1"><p>Café crème</p>'.encode("iso-8859-1")
    assert parse_one("menu.html", page).text == "Café crème"
    declared = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>€5</p>'
    assert parse_one("price.html", declared.encode("windows-1252")).text == "€5"


def test_html_without_charset_replaces_bytes_that_are_not_utf8() -> None:
    assert parse_one("menu.html", b"<p>Caf\xe9</p>").text == "Caf\ufffd"


def test_html_with_no_visible_text_raises() -> None:
    with pytest.raises(ParseError, match="no text could be extracted"):
        parse_file("app.html", b"<title>App</title><script>render()</script><style>p {}</style>")


def test_html_the_parser_rejects_raises_parse_error() -> None:
    with pytest.raises(ParseError, match=r"^not valid HTML: AssertionError: unknown status keyword") as info:
        parse_file("odd.html", b"<p>Text</p><![unknown[ x ]]>")
    assert isinstance(info.value.__cause__, AssertionError)


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_are_joined_by_blank_lines_and_titled_from_metadata() -> None:
    data = make_pdf(["Kestrel is owned by Team Aurora.", "It runs 9 brokers."], title="Kestrel manual")
    assert parse_one("manual.pdf", data) == ParsedDocument(
        "", "Kestrel manual", "Kestrel is owned by Team Aurora.\n\nIt runs 9 brokers."
    )


def test_pdf_without_a_metadata_title_is_titled_by_the_stem() -> None:
    assert parse_one("manual.pdf", make_pdf(["Some text."])).title == "manual"


def test_pdf_with_an_owner_password_only_opens_with_the_empty_password() -> None:
    assert parse_one("locked.pdf", make_pdf(["Readable."], owner_password="owner")).text == "Readable."


def test_pdf_that_needs_a_password_raises() -> None:
    data = make_pdf(["Secret."], owner_password="owner", user_password="user")
    with pytest.raises(ParseError, match=r"^encrypted PDF"):
        parse_file("secret.pdf", data)


def test_pdf_without_text_says_it_needs_ocr() -> None:
    with pytest.raises(ParseError, match=r"no text could be extracted from the PDF \(scanned PDFs need OCR"):
        parse_file("scan.pdf", make_pdf(["", ""]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 this is a zip", "^not a valid PDF: no %PDF- header"),
        (make_pdf(["Kestrel."])[:400], "^not a valid PDF: "),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "^not a valid PDF: "),
    ],
    ids=["not-a-pdf", "truncated", "garbage-after-header"],
)
def test_corrupt_pdf_raises(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_file("broken.pdf", data)


# --- DOCX -----------------------------------------------------------------------------------


def test_docx_paragraphs_and_table_rows_in_document_order() -> None:
    document = parse_one("runbook.docx", make_docx(title="Kestrel handbook"))
    assert document.title == "Kestrel handbook"
    assert document.text.split("\n\n") == [
        "Intro before any heading.",
        "Kestrel runbook",
        "Kestrel runs 9 brokers.",
        "Owner | Team Aurora",
        "Paged on weekends",
        "Closing note.",
    ]


def test_docx_title_falls_back_to_the_first_heading_then_the_stem() -> None:
    assert parse_one("runbook.docx", make_docx()).title == "Kestrel runbook"
    plain = docx.Document()
    plain.add_paragraph("Just text.")
    buffer = io.BytesIO()
    plain.save(buffer)
    assert parse_one("runbook.docx", buffer.getvalue()).title == "runbook"


@pytest.mark.parametrize(
    "data",
    [make_docx()[:2000], b"plain text renamed to .docx", make_pdf(["A PDF, not a DOCX."])],
    ids=["truncated", "text", "pdf"],
)
def test_corrupt_docx_raises(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"^not a valid DOCX file: File is not a zip file$"):
        parse_file("broken.docx", data)


# --- JSON and JSONL -------------------------------------------------------------------------


def test_json_object_is_one_document_with_an_empty_key() -> None:
    record = {"id": "k1", "title": "Kestrel", "text": "Kestrel runs 9 brokers."}
    assert parse_file("kestrel.json", json.dumps(record).encode()) == [
        ParsedDocument("", "Kestrel", "Kestrel runs 9 brokers.")
    ]
    assert parse_one("kestrel.json", b'{"text": "No title."}').title == "kestrel"


def test_json_array_gives_a_document_per_record_keyed_by_id_else_index() -> None:
    records = [
        {"id": "kestrel", "title": "Kestrel", "text": "First."},
        {"id": 42, "text": "Second."},
        {"title": 7, "text": "Third."},
    ]
    assert parse_file("systems.json", json.dumps(records).encode()) == [
        ParsedDocument("kestrel", "Kestrel", "First."),
        ParsedDocument("42", "systems #42", "Second."),
        ParsedDocument("2", "systems #2", "Third."),
    ]


def test_json_field_names_can_be_chosen() -> None:
    data = json.dumps([{"uid": "a", "name": "Alpha", "body": "Alpha text.", "text": "ignored"}]).encode()
    documents = parse_file(
        "x.json", data, json_text_field="body", json_title_field="name", json_id_field="uid"
    )
    assert documents == [ParsedDocument("a", "Alpha", "Alpha text.")]


def test_jsonl_gives_a_document_per_line_keyed_by_id_else_line_index() -> None:
    lines = ['{"id": "a", "text": "Alpha."}', "", '{"text": "Line three\u2028still line three."}', "  "]
    assert parse_file("feed.jsonl", "\n".join(lines).encode()) == [
        ParsedDocument("a", "feed #a", "Alpha."),
        ParsedDocument("2", "feed #2", "Line three\u2028still line three."),
    ]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.jsonl", b'{"text": "ok"}\n\n{"text": "cut\n', r"^line 3 is not valid JSON: Unterminated string"),
        (
            "a.json",
            b'[{"text": "ok"},\n {"text": }]',
            r"^line 2 is not valid JSON: Expecting value \(column 11",
        ),
        ("a.json", b'[{"text": "ok"}, {"body": "x"}]', r"^no text field 'text' in record 1$"),
        ("a.jsonl", b'{"text": "ok"}\n\n{"body": "x"}', r"^no text field 'text' in record 2 \(line 3\)$"),
        ("a.json", b'{"body": "x"}', r"^no text field 'text' in the JSON object$"),
        ("a.json", b'[{"text": 3}]', r"^text field 'text' in record 0 is a number, not a string$"),
        ("a.json", b'[{"text": "  "}]', r"^text field 'text' in record 0 is empty$"),
        ("a.json", b'[{"text": "ok"}, "just a string"]', r"^record 1 is a string, not a JSON object$"),
        ("a.json", b'"just a string"', r"^expected a JSON object or an array of objects, got a string$"),
        ("a.json", b"[]", r"^the JSON array is empty$"),
        ("a.json", b'[{"id": 1, "text": "a"}, {"id": "1", "text": "b"}]', r"same key '1' as record 0"),
        ("a.json", b'[{"text": "a"}, {"id": 0, "text": "b"}]', r"^record 1 has the same key '0' as record 0"),
        ("a.json", b'[{"id": true, "text": "a"}]', r"^id field 'id' in record 0 must be a non-empty string"),
        ("a.json", b'[{"id": "", "text": "a"}]', r"^id field 'id' in record 0 must be a non-empty string"),
        ("a.json", b"[" * 100_000, r"^JSON is nested too deeply to read$"),
        ("a.jsonl", b'{"text": "ok"}\n\xff', r"^not valid UTF-8: byte 0xff at offset 15$"),
    ],
)
def test_bad_json_raises_with_a_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_file(name, data)


# --- robustness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [("doc.pdf", make_pdf(["Kestrel is owned by Team Aurora.", "Page two."])), ("doc.docx", make_docx())],
)
def test_every_truncation_raises_parse_error_or_parses(name: str, data: bytes) -> None:
    """No library exception escapes, however the file is cut."""
    for length in range(1, len(data), max(1, len(data) // 300)):
        try:
            parse_file(name, data[:length])
        except ParseError as err:
            assert "\n" not in str(err)

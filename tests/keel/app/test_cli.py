"""The CLI names the problem with bad input, never a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.cli import app

pytestmark = pytest.mark.unit


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_ingest_of_a_missing_path_names_it(tmp_path: Path) -> None:
    code, output = _run("ingest", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere does not exist" in output and "Traceback" not in output


def test_ingest_of_an_unsupported_file_names_the_supported_kinds(tmp_path: Path) -> None:
    report = tmp_path / "report.xlsx"
    report.write_bytes(b"PK")
    code, output = _run("ingest", str(report))
    assert code == 2 and "report.xlsx is not a supported file (.txt, .md, .html" in output


def test_ingest_of_a_folder_with_no_documents_says_so(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    code, output = _run("ingest", str(tmp_path))
    assert code == 2 and "no .txt, .md, .html, .htm, .pdf, .docx, .json, .jsonl files under" in output


def test_ingest_when_temporal_is_down_names_the_address(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nSome text.")
    env = {"KEEL_TEMPORAL__ADDRESS": "127.0.0.1:1", "KEEL_DATA_DIR": str(tmp_path / "data")}
    code, output = _run("ingest", str(tmp_path), env=env)
    assert code == 1 and "127.0.0.1:1" in output and "Traceback" not in output


def test_invalid_settings_are_reported_by_name(tmp_path: Path) -> None:
    code, output = _run("ingest", str(tmp_path), env={"KEEL_TENANT": "bad tenant!"})
    assert code == 2 and "invalid settings" in output and "tenant" in output

"""A source's registration, checked before anything is stored: refusals name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.sources import DEFAULT_INCLUDE
from keel.control.errors import InvalidRequestError
from keel.control.sources import MIN_INTERVAL_S, new_spec, parse_interval, source_id_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"), [("", 0), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400)]
)
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"), [("10", "not an interval"), ("5 minutes", "not an interval"), ("5s", "minimum")]
)
def test_bad_intervals_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidRequestError, match=why):
        parse_interval(text)
    assert MIN_INTERVAL_S == 60


def test_a_folder_becomes_a_spec_with_every_supported_file_by_default(tmp_path: Path) -> None:
    root = tmp_path / "Team Wiki!"
    root.mkdir()
    spec = new_spec("acme", root, every="10m")
    assert (spec.source_id, spec.tenant, spec.root) == ("team-wiki", "acme", str(root.resolve()))
    assert spec.include == list(DEFAULT_INCLUDE) and spec.exclude == [] and spec.every_s == 600
    assert source_id_for(root) == "team-wiki"


def test_a_bad_registration_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="is not a folder"):
        new_spec("acme", tmp_path / "missing")
    with pytest.raises(InvalidRequestError, match="invalid id"):
        new_spec("acme", tmp_path, source_id="../etc")
    with pytest.raises(InvalidRequestError, match="glob is empty"):
        new_spec("acme", tmp_path, include=["  "])
    with pytest.raises(InvalidRequestError, match="JSON text field"):
        new_spec("acme", tmp_path, json_text_field=" ")

"""What every `keel` command shares: its settings, checked, and its logging."""

from __future__ import annotations

import logging
import sys

import typer
from pydantic import ValidationError

from keel.core.settings import Settings


def load_settings() -> Settings:
    """The settings from the environment; invalid ones end the command with the reasons (exit 2)."""
    try:
        return Settings()
    except ValidationError as err:
        typer.echo(f"keel: invalid settings:\n{err}", err=True)
        raise typer.Exit(2) from err


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Every readiness poll and API call would otherwise be an INFO line.
    logging.getLogger("httpx").setLevel(logging.WARNING)

"""What every `keel` command shares: its settings, checked, and its logging."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis
import typer
from pydantic import SecretStr, ValidationError

from keel.app.embedded import falkordb_password
from keel.core.settings import Settings


def load_settings() -> Settings:
    """The settings from the environment; invalid ones end the command with the reasons (exit 2).

    On the embedded FalkorDB (no `falkordb.url`) with no password set, the password `keel up`
    keeps in the data dir is used: commands run beside `keel up` reach its server as they are.
    """
    try:
        settings = Settings()
    except ValidationError as err:
        typer.echo(f"keel: invalid settings:\n{err}", err=True)
        raise typer.Exit(2) from err
    if settings.falkordb.url or settings.falkordb.password is not None:
        return settings
    password = falkordb_password(settings.data_dir)
    return settings if password is None else with_falkordb_password(settings, password)


T = TypeVar("T")


@contextmanager
def store_on_falkordb(settings: Settings, command: str, build: Callable[[redis.Redis], T]) -> Iterator[T]:
    """A store of Keel's records on the configured FalkorDB (`build` makes it from the client);
    exit 1 with the reason when the server cannot be reached."""
    from keel.stores.redis import make_redis

    client = make_redis(settings.falkordb_url)
    try:
        yield build(client)
    except redis.RedisError as err:
        typer.echo(f"{command}: FalkorDB at {settings.falkordb_address} is unavailable: {err}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


def with_falkordb_password(settings: Settings, password: str) -> Settings:
    """The same settings, with this FalkorDB password."""
    falkordb = settings.falkordb.model_copy(update={"password": SecretStr(password)})
    return settings.model_copy(update={"falkordb": falkordb})


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Every readiness poll and API call would otherwise be an INFO line.
    logging.getLogger("httpx").setLevel(logging.WARNING)

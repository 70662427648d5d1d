"""Connecting to Temporal and registering the search attributes the queue lists by."""

from __future__ import annotations

import logging
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from keel.settings import Settings

log = logging.getLogger(__name__)

# name → type; the dev server gets them as `--search-attribute` flags, a cluster by RPC.
SEARCH_ATTRIBUTES = {"KeelStatus": "Keyword", "KeelTenant": "Keyword"}


class TemporalUnavailableError(Exception):
    """Temporal could not be reached; the message names the address."""


async def connect(settings: Settings) -> Client:
    try:
        return await Client.connect(settings.temporal_address, namespace=settings.temporal.namespace)
    except RuntimeError as err:  # the SDK reports a refused or failed connection this way
        raise TemporalUnavailableError(
            f"cannot reach Temporal at {settings.temporal_address}: {err}"
        ) from err


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Registers Keel's search attributes if missing (idempotent)."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as err:
        # The time-skipping test server can add search attributes but not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in existing}
    if not missing:
        return
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                for name, kind in missing.items()
            },
        )
    )
    log.info("registered search attributes %s", sorted(missing))


def dev_server_flags() -> list[str]:
    return [
        arg for name, kind in SEARCH_ATTRIBUTES.items() for arg in ("--search-attribute", f"{name}={kind}")
    ]


def search_attribute_keys() -> list[SearchAttributeKey[Any]]:
    """Typed keys of SEARCH_ATTRIBUTES (what test environments are started with)."""
    assert set(SEARCH_ATTRIBUTES.values()) == {"Keyword"}, "add the other types' keys here"
    return [SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES]

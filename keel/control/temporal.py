"""Connecting to Temporal, and registering the search attributes task lists filter by."""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from keel.core.search_attributes import SEARCH_ATTRIBUTES
from keel.core.settings import Settings

log = logging.getLogger(__name__)


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
    missing = [key for key in SEARCH_ATTRIBUTES if key.name not in existing]
    if not missing:
        return
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in missing
            },
        )
    )
    log.info("registered search attributes %s", sorted(key.name for key in missing))

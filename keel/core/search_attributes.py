"""Keel's search attributes on Temporal, defined once: what task lists filter by.

The workflows set them, the API queries by them, and `keel up` (dev server flags) or the worker
(a cluster, by RPC) registers them. The review queue has its own index (keel/stores/review_index.py).
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

KEEL_STATUS = SearchAttributeKey.for_keyword("KeelStatus")  # a TaskStatus, or "deciding"
KEEL_TENANT = SearchAttributeKey.for_keyword("KeelTenant")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (KEEL_STATUS, KEEL_TENANT)


def type_name(key: SearchAttributeKey[Any]) -> str:
    """The type as Temporal's CLI spells it: KEYWORD -> "Keyword", KEYWORD_LIST -> "KeywordList"."""
    return "".join(part.title() for part in key.indexed_value_type.name.split("_"))

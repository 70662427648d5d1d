"""Showback: the usage ledger's rows of a range of days, summed by the dimensions asked for, as
JSON or CSV. Shared by `GET /v1/usage` (the caller's tenant) and `keel usage` (any tenants)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta

from api.schemas import UsageOut
from keel.core.usage import METRICS, Dimension, UsageRow, group_rows
from keel.stores.usage import UsageLedger

DEFAULT_DAYS = 30
# The ledger keeps 400 days (keel/stores/usage.py): a longer range would read days it dropped.
MAX_DAYS = 400


def default_range(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """`start` and `end` where given; else the last 30 days to `end`, and `end` today."""
    end = end or today
    return start or end - timedelta(days=DEFAULT_DAYS - 1), end


def range_problem(start: date, end: date) -> str | None:
    """Why the range cannot be shown, or None."""
    if start > end:
        return f"from ({start}) is after to ({end})"
    days = (end - start).days + 1
    if days > MAX_DAYS:
        return f"the range is {days} days; the limit is {MAX_DAYS} (usage is kept {MAX_DAYS} days)"
    return None


def showback(rows: Sequence[UsageRow], group_by: Sequence[Dimension]) -> tuple[list[UsageRow], UsageRow]:
    """The rows summed by `group_by` (largest cost first), and their total."""
    totals = group_rows(rows, ())
    return group_rows(rows, group_by), totals[0] if totals else UsageRow()


def usage_csv(rows: Sequence[UsageRow], group_by: Sequence[Dimension]) -> str:
    """A header of the grouped dimensions and the metrics, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*group_by, *METRICS])
    for row in rows:
        writer.writerow([*(getattr(row, d) for d in group_by), *(_number(getattr(row, m)) for m in METRICS)])
    return out.getvalue()


def _number(value: float) -> str:
    # Integers as integers; money and times without float noise (nanos, microseconds).
    return str(value) if isinstance(value, int) else f"{value:.9f}".rstrip("0").rstrip(".")


class UsageService:
    """Usage of one tenant: an auditor sees their own tenant's only."""

    def __init__(self, ledger: UsageLedger, tenant: str, currency: str) -> None:
        self._ledger = ledger
        self._tenant = tenant
        self._currency = currency

    async def rows(self, start: date, end: date) -> list[UsageRow]:
        return await asyncio.to_thread(self._ledger.rows, [self._tenant], start, end)

    async def report(self, group_by: Sequence[Dimension], start: date, end: date) -> UsageOut:
        grouped, total = showback(await self.rows(start, end), group_by)
        return UsageOut.model_validate(
            {
                "currency": self._currency,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "group_by": list(group_by),
                "rows": [asdict(row) for row in grouped],
                "total": asdict(total),
            }
        )

    async def csv(self, group_by: Sequence[Dimension], start: date, end: date) -> str:
        grouped, _ = showback(await self.rows(start, end), group_by)
        return usage_csv(grouped, group_by)

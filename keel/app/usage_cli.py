"""`keel usage`: who spent what, from the usage ledger, for any tenant (the operator's view; the
API's `GET /v1/usage` shows an auditor their own tenant only)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path

import typer

from api.services.usage import default_range, range_problem, showback, usage_csv
from keel.app.cli_common import load_settings, store_on_falkordb
from keel.core.identity import check_tenant
from keel.core.settings import Settings
from keel.core.usage import DIMENSIONS, METRICS, Dimension, UsageRow
from keel.stores.usage import UsageLedger

COMMAND = "keel usage"
_GROUP_BY_HELP = f"Dimensions, comma-separated or repeated: {', '.join(DIMENSIONS)}."


def refuse(command: str, problem: str) -> typer.Exit:
    typer.echo(f"{command}: {problem}", err=True)
    return typer.Exit(2)


def usage_ledger(settings: Settings, command: str) -> AbstractContextManager[UsageLedger]:
    """The ledger on the configured FalkorDB; exit 1 with the reason when it cannot be reached."""
    return store_on_falkordb(settings, command, UsageLedger)


def ledger_rows(
    ledger: UsageLedger, tenant: str, start: date, end: date, command: str
) -> tuple[list[str], list[UsageRow]]:
    """The tenants asked for (`tenant`, or every tenant with usage) and their rows."""
    try:
        tenants = [check_tenant(tenant)] if tenant else ledger.tenants()
    except ValueError as err:
        raise refuse(command, str(err)) from None
    return tenants, ledger.rows(tenants, start, end)


def parse_day(value: str, option: str, command: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise refuse(command, f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def parse_dimensions(values: Sequence[str], command: str) -> list[Dimension]:
    """Dimensions given comma-separated, repeated or both; in order, each once."""
    wanted: list[Dimension] = []
    for part in (p.strip() for value in values for p in value.split(",")):
        matched = next((d for d in DIMENSIONS if d == part), None)
        if matched is None:
            raise refuse(command, f"--group-by {part!r}: expected {', '.join(DIMENSIONS)}")
        if matched not in wanted:
            wanted.append(matched)
    return wanted


def usage(
    group_by: list[str] = typer.Option(["day"], "--group-by", help=_GROUP_BY_HELP),
    start: str = typer.Option("", "--from", help="First UTC day (YYYY-MM-DD); default: 29 days before --to."),
    end: str = typer.Option("", "--to", help="Last UTC day, inclusive; default: today."),
    tenant: str = typer.Option("", "--tenant", help="Only this tenant; default: every tenant."),
    csv_path: str = typer.Option("", "--csv", help="Also write the rows as CSV to FILE; '-': stdout only."),
) -> None:
    """Usage and cost summed by the dimensions asked for, largest cost first, with the total.

    Review lines are the reviewers' time (model "human"); the "task" step counts finished tasks."""
    dims = parse_dimensions(group_by, COMMAND)
    first, last = default_range(
        parse_day(start, "--from", COMMAND), parse_day(end, "--to", COMMAND), datetime.now(UTC).date()
    )
    if problem := range_problem(first, last):
        raise refuse(COMMAND, problem)
    settings = load_settings()
    with usage_ledger(settings, COMMAND) as ledger:
        tenants, rows = ledger_rows(ledger, tenant, first, last, COMMAND)
    grouped, total = showback(rows, dims)
    if csv_path == "-":
        sys.stdout.write(usage_csv(grouped, dims))
        return
    if csv_path:
        Path(csv_path).write_text(usage_csv(grouped, dims), encoding="utf-8")
        typer.echo(f"wrote {len(grouped)} rows to {csv_path}", err=True)
    who = f"tenant {tenants[0]}" if tenant else f"{len(tenants)} tenant(s)"
    typer.echo(f"usage of {who} from {first} to {last}, in {settings.cost.currency}")
    if not grouped:
        typer.echo("no usage recorded in this range", err=True)
        return
    typer.echo(usage_table(grouped, total, dims))


def usage_table(rows: Sequence[UsageRow], total: UsageRow, dims: Sequence[Dimension]) -> str:
    """Aligned columns: the dimensions left, the metrics right, the total last."""
    header = [d.upper() for d in dims] + [m.upper() for m in METRICS]
    lines = [[str(getattr(r, d)) or "-" for d in dims] + [_cell(r, m) for m in METRICS] for r in rows]
    label = ["TOTAL"] + [""] * (len(dims) - 1) if dims else []
    lines.append(label + [_cell(total, m) for m in METRICS])
    table = [header, *lines]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def render(line: list[str]) -> str:
        cells = [
            cell.ljust(w) if i < len(dims) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), *(render(line) for line in lines[:-1]), rule, render(lines[-1])])


def _cell(row: UsageRow, metric: str) -> str:
    value = getattr(row, metric)
    if metric == "cost":
        return f"{value:,.4f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"

"""`keel keys create|list|revoke`: the API keys of every tenant, from the machine Keel runs on.

`create` prints the new key alone on stdout (everything else goes to stderr), so
`KEY=$(keel keys create --name rita --role reviewer)` captures exactly the key. No other command
ever prints a secret: the store keeps only hashes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import typer

from keel.app.cli_common import load_settings, store_on_falkordb
from keel.core.identity import Role, check_tenant, parse_roles, principal_name
from keel.core.settings import Settings
from keel.stores.keys import KEY_ID, KeyNotFoundError, KeyRecord, KeyStore

app = typer.Typer(add_completion=False, help="API keys: create (shown once), list, revoke.")

ROLES = ", ".join(role.value for role in Role)


def key_store(settings: Settings, command: str) -> AbstractContextManager[KeyStore]:
    """The key store on the configured FalkorDB; exit 1 with the reason when it cannot be reached."""
    return store_on_falkordb(settings, command, KeyStore)


def _refuse(command: str, problem: str) -> typer.Exit:
    typer.echo(f"{command}: {problem}", err=True)
    return typer.Exit(2)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who uses the key: a person or a service."),
    role: list[str] = typer.Option([], "--role", help=f"A role ({ROLES}); repeatable."),
    tenant: str = typer.Option("", "--tenant", help="Its tenant; default: KEEL_TENANT (default)."),
) -> None:
    """Create a key and print it (stdout, alone on its line): it is shown this once."""
    command = "keel keys create"
    settings = load_settings()
    try:
        tenant = check_tenant(tenant or settings.tenant)
        name = principal_name(name)
        roles = parse_roles(role)
    except ValueError as err:
        raise _refuse(command, str(err)) from None
    with key_store(settings, command) as store:
        record, secret = store.create(tenant, name, roles)
    typer.echo(
        f"created key {record.key_id}: {record.name} of tenant {record.tenant}, "
        f"roles {', '.join(record.roles)} (shown once, store it now)",
        err=True,
    )
    typer.echo(secret)


@app.command("list")
def list_keys(
    tenant: str = typer.Option("", "--tenant", help="Only this tenant's keys; default: every tenant's."),
) -> None:
    """Every key, revoked ones too, oldest first: id, tenant, name, roles, when created and revoked."""
    command = "keel keys list"
    settings = load_settings()
    try:
        wanted = check_tenant(tenant) if tenant else None
    except ValueError as err:
        raise _refuse(command, str(err)) from None
    with key_store(settings, command) as store:
        records = store.list(wanted)
    if not records:
        typer.echo("no keys; create one with: keel keys create --name NAME --role ROLE", err=True)
        return
    typer.echo(key_table(records))


def key_table(records: list[KeyRecord]) -> str:
    """The records as aligned columns; a secret is never among them (only its hash is stored)."""
    header = ("ID", "TENANT", "NAME", "ROLES", "CREATED", "REVOKED")
    rows = [header] + [
        (r.key_id, r.tenant, r.name, ",".join(r.roles), r.created_at, r.revoked_at or "-") for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (keel keys list).")) -> None:
    """Revoke a key: it stops working at once, and so do reviewer-page sessions made with it."""
    command = "keel keys revoke"
    settings = load_settings()
    if not KEY_ID.match(key_id):
        raise _refuse(command, f"not a key id: {key_id!r} (16 hex digits; keel keys list shows them)")
    with key_store(settings, command) as store:
        try:
            record = store.revoke(key_id)
        except KeyNotFoundError:
            raise _refuse(command, f"no key with id {key_id} (keel keys list)") from None
    typer.echo(f"revoked key {record.key_id}: {record.name} of tenant {record.tenant}")

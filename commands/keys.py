"""`provisioner keys …`: API keys (create, list, revoke) and re-encrypting stored secrets after a key rotation."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from shared.settings import load_settings

keys_app = typer.Typer(no_args_is_help=True, help="API keys and the keys of secrets at rest.")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="operator | service-provider | customer")],
    scope: Annotated[str | None, typer.Option(help="service provider id or customer id the key is bound to")] = None,
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="the key stops working after this many days")] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from shared.auth.keys import create_key
    from shared.db.uow import UnitOfWork

    load_settings()
    expires_in = timedelta(days=expires_in_days) if expires_in_days is not None else None
    try:
        with UnitOfWork() as uow:
            key = create_key(uow.session, role=role, scope_id=scope, name=name, expires_in=expires_in)
            uow.commit()
    except ValueError as exc:  # unknown role, missing or unknown scope, an expiry in the past
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every API key: id, prefix, role, scope, state, dates and label (never the key itself)."""
    from shared.auth.keys import list_keys
    from shared.db.uow import UnitOfWork

    load_settings()
    with UnitOfWork() as uow:
        infos = list_keys(uow.session)
    typer.echo("id\tprefix\trole\tscope\tstate\tcreated\texpires\tname")
    for k in infos:
        typer.echo("\t".join([k.id, k.prefix, k.role, k.scope_id or "-", k.state, k.created_at.isoformat(),
                              k.expires_at.isoformat() if k.expires_at else "never", k.name or ""]))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id or prefix (from `keys list`)")]) -> None:
    """Revoke an API key: every API process refuses it within a second."""
    from shared.auth.keys import revoke_key
    from shared.db.uow import UnitOfWork

    load_settings()
    with UnitOfWork() as uow:
        found = revoke_key(uow.session, key_id)
        uow.commit()
    if not found:
        typer.echo(f"error: no API key {key_id}", err=True)
        raise typer.Exit(2)
    typer.echo(f"revoked {key_id}")


@keys_app.command("rotate-secrets")
def keys_rotate_secrets() -> None:
    """Re-encrypt every stored secret with the newest of SECRET_KEYS (run after putting a new key first)."""
    from shared.db.uow import UnitOfWork
    from shared.secret_rotation import rotate_secrets
    from shared.security import SecretUnreadable

    settings = load_settings()
    if not settings.secret_key_ring:
        typer.echo("error: SECRET_KEYS (or SECRET_KEY) is not set", err=True)
        raise typer.Exit(2)
    try:
        with UnitOfWork() as uow:
            counts = rotate_secrets(uow.session)
            uow.commit()
    except SecretUnreadable as exc:  # nothing was written: the whole rotation is one transaction
        typer.echo(f"error: {exc}; keep every key still in use in SECRET_KEYS", err=True)
        raise typer.Exit(2) from None
    for column, n in counts.items():
        typer.echo(f"{column}: {n} re-encrypted")

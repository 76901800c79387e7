"""`provisioner`: the one command line for the embedded default, each process, migrations and keys."""
from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from commands import lifeline
from commands.keys import keys_app
from shared.settings import ConfigError, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="m365-provisioner: provisioning engine for Microsoft 365 resellers.")
app.add_typer(keys_app, name="keys")
partner_app = typer.Typer(no_args_is_help=True, help="A reseller's own Microsoft access.")
app.add_typer(partner_app, name="partner")

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command()
def dev(
    api_port: Annotated[int, typer.Option(help="API port")] = 8000,
    flower_port: Annotated[int, typer.Option(help="Flower port")] = 5555,
    emulator_port: Annotated[int, typer.Option(help="Microsoft emulator port")] = 8443,
    concurrency: Annotated[int, typer.Option(help="worker threads")] = 4,
    api_workers: Annotated[int, typer.Option(help="API processes (as `provisioner api --workers`)")] = 1,
    var: Annotated[str, typer.Option(help="directory for the SQLite files, CA and demo state")] = "var",
) -> None:
    """Emulator + API + worker + beat + Flower on this machine (SQLite unless the environment says otherwise)."""
    from commands.devserver import run_dev

    raise typer.Exit(run_dev(api_port=api_port, flower_port=flower_port, emulator_port=emulator_port,
                             concurrency=concurrency, api_workers=api_workers, var=var))


@app.command()
def emulator(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8443,
    ca_out: Annotated[str | None, typer.Option("--ca-out", help="write the emulator's CA certificate here")] = None,
    state: Annotated[str | None, typer.Option(help="restore the world from FILE and save it there on exit")] = None,
) -> None:
    """The Microsoft cloud emulator alone (HTTPS; trust its CA through MS_CA_BUNDLE)."""
    from emulator.server import serve

    serve(host=host, port=port, ca_out=ca_out, state_file=state)


@app.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """The HTTP API alone (several workers: one listening socket per process, see commands/apiserver.py)."""
    from commands.apiserver import serve

    load_settings()  # a bad setting fails here, with the variable named, not inside a worker process
    raise typer.Exit(serve(host, port, workers))


@app.command(context_settings=PASS_THROUGH)
def worker(ctx: typer.Context) -> None:
    """One Celery worker; options pass through (e.g. -P threads -c 8 -Q provisioning,polling,sync -n w1@%h)."""
    from worker.app import get_app

    load_settings()
    args = list(ctx.args)
    if not any(a == "-Q" or a.startswith(("-Q", "--queues")) for a in args):
        args += ["-Q", "provisioning,polling,sync"]
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args += ["-l", "INFO"]
    get_app().worker_main(["worker", *args])


@app.command(context_settings=PASS_THROUGH)
def beat(ctx: typer.Context) -> None:
    """The one celery beat (reconciler, sync dispatch, outbox, cleanup)."""
    from worker.app import get_app

    load_settings()
    args = list(ctx.args)
    if not any(a.startswith(("-s", "--schedule")) for a in args):
        args += ["--schedule", os.path.join(os.environ.get("BEAT_DIR", "/tmp"), f"celerybeat-{os.getpid()}")]
    get_app().start(["beat", "-l", "INFO", *args])


@app.command(context_settings=PASS_THROUGH)
def flower(ctx: typer.Context) -> None:
    """Flower, watching the workers through Celery events (basic auth from FLOWER_BASIC_AUTH)."""
    from shared.settings import secret_key_not_needed
    from worker.app import get_app

    secret_key_not_needed()  # Flower reads Celery's events, never a secret at rest
    settings = load_settings()
    if not settings.flower_basic_auth and settings.environment != "dev":
        raise ConfigError("configuration error: FLOWER_BASIC_AUTH: required outside ENVIRONMENT=dev "
                          "(user:password; Flower shows task arguments and can control workers)")
    args = list(ctx.args)
    if settings.flower_basic_auth:
        args.append(f"--basic-auth={settings.flower_basic_auth}")
    get_app().start(["flower", *args])


@app.command()
def migrate(
    downgrade: Annotated[str | None, typer.Option(help="downgrade to this revision (e.g. base) instead")] = None,
) -> None:
    """Alembic upgrade to head (or downgrade)."""
    from shared.db import migrate as m

    settings = load_settings()
    if downgrade:
        m.downgrade(settings.database_url, downgrade)
    else:
        m.upgrade(settings.database_url)


@partner_app.command("consent")
def partner_consent(
    provider: Annotated[str, typer.Option("--provider", help="the service provider (reseller) id")],
) -> None:
    """Sign in once as a partner admin (device code), store the App+User refresh token, show the access it gives."""
    from shared.providers.consent import ConsentFailed, consent_partner

    settings = load_settings()
    try:
        done = consent_partner(provider, settings=settings, show=typer.echo)
    except (LookupError, ConsentFailed) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Stored the App+User refresh token of {done.provider_name} (scope {done.scope or 'not given'}).")
    if done.resumed:
        typer.echo(f"{len(done.resumed)} request(s) blocked on the old credential run again.")
    for check in done.checks:
        typer.echo(f"{check.status:<8} {check.name}: {check.detail}" + (f". Fix: {check.fix}" if check.fix else ""))


def main() -> None:
    lifeline.watch()  # started by `provisioner dev`: end with it
    try:
        app()
    except ConfigError as exc:  # one clear line, not a traceback
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

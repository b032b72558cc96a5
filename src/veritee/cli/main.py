"""The ``veritee`` command: one Typer app, each command group in its own module."""

from __future__ import annotations

import typer

from veritee import __version__

app = typer.Typer(
    name="veritee",
    help="Trusted infrastructure for server fleets: platform integrity (TPM, measured boot, IMA), "
    "TEEP Trusted Application Manager, and fail-over of trusted workloads.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"veritee {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """veritee command line."""


def _register() -> None:
    # Each group lives in its own module and exposes ``app`` (a typer.Typer) and ``NAME``; adding a group is one line.
    from veritee.cli import (
        agent,
        appraise,
        demo,
        deploy,
        device,
        eventlog,
        history,
        ima,
        node,
        policy,
        quote,
        suit,
        tam,
        tc,
        teep,
        verifier,
    )

    groups = (agent, appraise, demo, device, eventlog, history, ima, node, policy, quote, suit, tam, tc, teep, verifier)
    for module in groups:
        app.add_typer(module.app, name=module.NAME)
    app.command("deploy")(deploy.deploy)
    app.command("undeploy")(deploy.undeploy)


_register()


def main() -> None:
    app()

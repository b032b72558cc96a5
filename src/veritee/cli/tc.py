"""``veritee tc``: the TAM's Trusted Component catalog and its signers, through a running TAM's admin API.

Every command takes ``--tam URL`` (or VERITEE_TAM_URL), ``--token T`` (or VERITEE_TAM_TOKEN; create one with
``veritee tam token create NAME``) and ``--ca PEM`` to check the TAM's HTTPS certificate against a private CA. This
module also holds those shared options for ``veritee device``, ``deploy`` and ``undeploy``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from veritee.cli.suit import read_envelope_bytes
from veritee.errors import VeriteeError
from veritee.web.tam_client import TamAdminClient, tls_verify

NAME = "tc"
CLIENT_HELP = (
    "Talks to a running TAM's admin API: --tam URL (or VERITEE_TAM_URL), --token T (or VERITEE_TAM_TOKEN, from "
    "'veritee tam token create NAME'), --ca PEM for HTTPS with a private CA."
)
app = typer.Typer(help="Trusted Component catalog and TC signers of a TAM. " + CLIENT_HELP, no_args_is_help=True)
signer_app = typer.Typer(help="TC signers: the keys catalog envelopes must be signed with.", no_args_is_help=True)
app.add_typer(signer_app, name="signer")

TAM_OPT = typer.Option("http://127.0.0.1:8443", "--tam", envvar="VERITEE_TAM_URL", help="The TAM's base URL.")
TOKEN_OPT = typer.Option(..., "--token", envvar="VERITEE_TAM_TOKEN", help="Admin bearer token.")
CA_OPT = typer.Option(None, "--ca", help="CA bundle (PEM) the TAM's HTTPS certificate must chain to.")
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output.")


def fail(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def admin_client(tam: str, token: str, ca: Path | None, as_json: bool) -> Iterator[TamAdminClient]:
    """A client for the command; any VeriteeError inside the block becomes the command's error exit."""
    try:
        with TamAdminClient(tam, token, verify=tls_verify(ca)) as client:
            yield client
    except VeriteeError as exc:
        raise fail(str(exc), as_json) from None


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else text(data))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


_TC_COLUMNS = ("id", "component_id", "sequence_number", "image_digest", "description")


@app.command("add")
def add(
    envelope: Path = typer.Argument(..., exists=True, dir_okay=False, help="Signed SUIT envelope (binary or hex)."),
    description: str | None = typer.Option(None, "--description", help="A note stored with this version."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Upload a Trusted Component version; the TAM refuses it unless a TC signer signed it."""
    data = read_envelope_bytes(envelope)
    with admin_client(tam, token, ca, as_json) as client:
        result = client.upload_tc(data, description)
    emit(result, as_json, lambda r: f"added {r['component_id']} sequence {r['sequence_number']} (id {r['id']})")


@app.command("list")
def list_(
    component: str | None = typer.Option(None, "--component", help="Only this component id."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List the catalog (every version of every component)."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.list_tcs(component)
    emit(result, as_json, lambda rows: table(rows, _TC_COLUMNS))


@app.command("delete")
def delete(
    tc_id: int = typer.Argument(..., help="Catalog entry id (see 'tc list')."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Withdraw a catalog version (devices that have it keep it; the TAM never rolls them back)."""
    with admin_client(tam, token, ca, as_json) as client:
        client.delete_tc(tc_id)
    emit({"ok": True, "deleted": tc_id}, as_json, lambda r: f"deleted catalog entry {r['deleted']}")


@app.command("deployments")
def deployments(
    component: str | None = typer.Option(None, "--component", help="Only this component id."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List the deployment policy (see 'veritee deploy')."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.list_deployments(component)
    emit(result, as_json, lambda rows: table(rows, ("id", "component_id", "selector", "min_sequence_number")))


@signer_app.command("add")
def signer_add(
    name: str = typer.Argument(..., help="A name for the signer."),
    pem: Path = typer.Argument(..., exists=True, dir_okay=False, help="Its public key or certificate (PEM)."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Trust a key to sign Trusted Components."""
    text = pem.read_text()
    with admin_client(tam, token, ca, as_json) as client:
        result = client.add_signer(name, text)
    emit(result, as_json, lambda r: f"signer {r['name']} (id {r['id']}, thumbprint {r['thumbprint']})")


@signer_app.command("list")
def signer_list(tam: str = TAM_OPT, token: str = TOKEN_OPT, ca: Path | None = CA_OPT, as_json: bool = JSON_OPT) -> None:
    """List the TC signers."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.list_signers()
    emit(result, as_json, lambda rows: table(rows, ("id", "name", "thumbprint")))

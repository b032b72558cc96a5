"""``veritee history``: a node's hash-chained attestation history in the verifier database (verify, show)."""

from __future__ import annotations

import json

import typer

from veritee.errors import VeriteeError
from veritee.service.verifier_admin import node_history
from veritee.service.verifier_history import HistoryChainError, verify_node_history
from veritee.store.db import Database, DatabaseConfig

NAME = "history"
app = typer.Typer(
    help="A node's hash-chained attestation history: verify the chain, show records.", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """Attestation history of the verifier's nodes."""


def _fail(exc: Exception, json_output: bool, code: int = 2) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
    else:
        typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


@app.command("verify")
def verify_command(
    node: str = typer.Argument(..., help="Node id."),
    db: str = typer.Option(..., "--db", help="Verifier database URL."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Recompute the node's history chain; exit 1 naming the first record that does not fit."""
    try:
        report = verify_node_history(Database(DatabaseConfig(url=db)), node)
    except HistoryChainError as exc:
        if json_output:
            typer.echo(
                json.dumps({"node_id": node, "intact": False, "first_bad_record": exc.seq, "reason": exc.reason})
            )
        else:
            where = f"record {exc.seq}" if exc.seq is not None else "the node's head"
            typer.echo(f"{node}: history BROKEN at {where}: {exc.reason}")
        raise typer.Exit(1) from None
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None
    if json_output:
        typer.echo(json.dumps({"node_id": node, "intact": True, "records": report.records, "head": report.head}))
    else:
        typer.echo(f"{node}: history intact, {report.records} records, head {report.head}")


@app.command("show")
def show_command(
    node: str = typer.Argument(..., help="Node id."),
    db: str = typer.Option(..., "--db", help="Verifier database URL."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many of the newest records."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """The node's newest history records (newest first)."""
    try:
        records = node_history(Database(DatabaseConfig(url=db)), node, limit=limit)
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None
    if json_output:
        typer.echo(json.dumps({"node_id": node, "records": records}))
        return
    for record in records:
        failing = [f["id"] for f in record["findings"] if f.get("severity") in ("error", "critical")]
        outcome = "" if record["passed"] is None else ("passed" if record["passed"] else "FAILED")
        typer.echo(
            f"{record['seq']:>6}  {record['at']}  {record['kind']:<12} {record['state']:<11} {outcome:<6} "
            f"{' '.join(failing)}".rstrip()
        )

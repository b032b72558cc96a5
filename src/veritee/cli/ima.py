"""``veritee ima``: Linux IMA measurement lists (replay into PCR values)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from veritee import ima
from veritee.errors import VeriteeError
from veritee.tpm.alg import HashAlg

NAME = "ima"
app = typer.Typer(help="Linux IMA measurement lists: parse and replay into PCR values.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Linux IMA measurement lists."""


def _fail(message: str, kind: str, json_output: bool, code: int = 1) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("replay")
def replay_command(
    file: Path = typer.Argument(..., help="An ascii_runtime_measurements file."),
    bank: list[str] = typer.Option(
        ["sha1", "sha256"], "--bank", "-b", help="PCR bank to replay (repeatable): sha1, sha256, sha384, sha512."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Check every template hash and replay the list into its PCRs (10 unless the policy used pcr=)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}", "OSError", json_output, code=2) from None
    try:
        banks = [HashAlg.from_label(label) for label in bank]
        entries = ima.parse(data)
        start = {ima.IMA_PCR: {alg: bytes(alg.digest_size) for alg in banks}}
        pcrs = ima.replay_pcrs(entries, banks=banks, start=start)
    except VeriteeError as exc:
        raise _fail(str(exc), type(exc).__name__, json_output) from None
    result = {
        "pcrs": {alg.label: {str(pcr): values[alg].hex() for pcr, values in pcrs.items()} for alg in banks},
        "entries": len(entries),
    }
    if json_output:
        typer.echo(json.dumps(result))
        return
    violations = sum(1 for entry in entries if entry.is_violation)
    typer.echo(f"{len(entries)} entries, {violations} violation(s), every template hash checked")
    for alg in banks:
        for pcr, values in pcrs.items():
            typer.echo(f"{alg.label:<7} PCR {pcr:>2}: {values[alg].hex()}")

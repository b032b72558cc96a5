"""``veritee policy``: create policies from a known-good node, import Keylime's, check a policy document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from veritee.appraisal.policy import (
    BootPolicy,
    PolicySet,
    RuntimePolicy,
    compile_policy,
    create_policy_from_evidence,
    dump_policy,
    import_keylime_refstate,
    import_keylime_runtime_policy,
    load_policy,
)
from veritee.cli.node_admin import create_policy_from_node
from veritee.errors import ValidationError, VeriteeError

NAME = "policy"
app = typer.Typer(help="Boot and runtime policies: create from a node, import Keylime's, check.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Boot and runtime policies."""


class UnusableInputError(ValidationError):
    """An input file that cannot be read."""


def _fail(exc: Exception, json_output: bool) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
    else:
        typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _summary(policy: PolicySet) -> dict[str, Any]:
    boot, runtime = policy.boot, policy.runtime
    compiled = compile_policy(boot, runtime, name=policy.name)
    return {
        "name": policy.name,
        "policy_id": compiled.policy_id,
        "boot": None
        if boot is None
        else {
            "secure_boot": boot.secure_boot,
            "kernels": None if boot.kernels is None else len(boot.kernels),
            "db": None if boot.db is None else len(boot.db),
            "dbx": None if boot.dbx is None else len(boot.dbx),
        },
        "runtime": None
        if runtime is None
        else {
            "paths": len(runtime.digests),
            "digests": sum(len(values) for values in runtime.digests.values()),
            "excludes": len(runtime.excludes),
            "signing_keys": len(runtime.signing_keys),
        },
    }


def _write(policy: PolicySet, out: Path, json_output: bool) -> None:
    summary = _summary(policy)
    try:
        out.write_text(dump_policy(policy))
    except OSError as exc:
        raise UnusableInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    if json_output:
        typer.echo(json.dumps({"written": str(out), **summary}))
    else:
        typer.echo(f"wrote {out}: {summary['policy_id']}")
        if summary["boot"] is not None:
            typer.echo(f"  boot: {json.dumps(summary['boot'])}")
        if summary["runtime"] is not None:
            typer.echo(f"  runtime: {json.dumps(summary['runtime'])}")


@app.command("create")
def create_command(
    from_bundle: Path | None = typer.Option(
        None, "--from-bundle", help="A known-good node's bundle (binary_bios_measurements, ascii_runtime_measurements)."
    ),
    from_node: str | None = typer.Option(
        None, "--from-node", help="A known-good node registered with the verifier (its kept evidence; needs --db)."
    ),
    db: str | None = typer.Option(None, "--db", help="The verifier's database URL (with --from-node)."),
    install: bool = typer.Option(False, "--install", help="With --from-node: also store it in the verifier."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where to write the policy document."),
    name: str = typer.Option("", "--name", help="Policy name (default: the bundle directory's or the node's name)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Path regular expression to exclude (repeatable)."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write the boot and runtime policy that a known-good node's event log and IMA list satisfy (from a bundle
    directory, or from a node's evidence kept by the verifier)."""
    if (from_bundle is None) == (from_node is None):
        raise _fail(UnusableInputError("give exactly one of --from-bundle and --from-node"), json_output)
    if from_node is not None:
        if db is None:
            raise _fail(UnusableInputError("--from-node needs the verifier's --db URL"), json_output)
        if out is None and not install:
            raise _fail(UnusableInputError("give --out, --install or both"), json_output)
        create_policy_from_node(from_node, db, out, name=name, excludes=exclude, install=install,
                                json_output=json_output)  # fmt: skip
        return
    assert from_bundle is not None
    if out is None:
        raise _fail(UnusableInputError("--from-bundle needs --out"), json_output)
    try:
        log_path = from_bundle / "binary_bios_measurements"
        ima_path = from_bundle / "ascii_runtime_measurements"
        event_log = _read(log_path) if log_path.exists() else None
        ima_log = _read(ima_path).decode("utf-8", "surrogateescape") if ima_path.exists() else None
        if event_log is None and ima_log is None:
            raise UnusableInputError(
                f"{from_bundle} has neither binary_bios_measurements nor ascii_runtime_measurements"
            )
        boot, runtime = create_policy_from_evidence(event_log, ima_log, excludes=exclude)
        _write(PolicySet(name or from_bundle.resolve().name, boot, runtime), out, json_output)
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None


@app.command("import")
def import_command(
    keylime_runtime: Path | None = typer.Option(None, "--keylime-runtime", help="Keylime runtime_policy.json."),
    keylime_refstate: Path | None = typer.Option(
        None, "--keylime-refstate", help="Keylime measured-boot reference state (mb_refstate.json)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the policy document."),
    name: str = typer.Option("imported", "--name", help="Policy name."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Convert Keylime policies into a veritee policy document."""
    try:
        if keylime_runtime is None and keylime_refstate is None:
            raise UnusableInputError("give --keylime-runtime, --keylime-refstate or both")
        runtime: RuntimePolicy | None = None
        boot: BootPolicy | None = None
        if keylime_runtime is not None:
            runtime = import_keylime_runtime_policy(_read(keylime_runtime))
        if keylime_refstate is not None:
            boot = import_keylime_refstate(_read(keylime_refstate))
        _write(PolicySet(name, boot, runtime), out, json_output)
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None


@app.command("check")
def check_command(
    file: Path = typer.Argument(..., help="A veritee policy document."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Check a policy document against the schema and compile it."""
    try:
        summary = _summary(load_policy(_read(file)))
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{file}: valid, {summary['policy_id']}")

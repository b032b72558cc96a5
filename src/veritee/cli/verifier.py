"""``veritee verifier``: run the continuous platform verifier (HTTP API + attestation loop + outbox), load policies."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import typer
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from veritee.appraisal.jws import PrivateKey
from veritee.appraisal.node_state import NodeState
from veritee.appraisal.policy import PolicySet
from veritee.cli.node_admin import create_policy_from_node
from veritee.errors import ConfigError, ValidationError, VeriteeError
from veritee.service.verifier_admin import list_nodes
from veritee.service.verifier_config import RemediationAction, VerifierConfig
from veritee.service.verifier_policies import parse_boot_policy, parse_runtime_policy, put_policy
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig
from veritee.web.verifier_app import create_verifier_app

NAME = "verifier"
app = typer.Typer(help="The continuous platform verifier (TPM quotes, measured boot, IMA).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The continuous platform verifier."""


class UnusableInputError(ValidationError):
    """An input file that cannot be read."""


def _fail(exc: Exception, json_output: bool, code: int = 2) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
    else:
        typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _secret(path: Path | None) -> str | None:
    return None if path is None else _read(path).decode("utf-8", "replace").strip() or None


def _ear_key(path: Path | None) -> PrivateKey | None:
    if path is None:
        return None
    try:
        key = load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: EAR keys are P-256 or Ed25519")
    return key


def load_policy_files(name: str, runtime: Path | None, boot: Path | None) -> PolicySet | None:
    """A policy set from a runtime and/or boot policy file (veritee documents or Keylime policies)."""
    if runtime is None and boot is None:
        return None
    return PolicySet(
        name,
        parse_boot_policy(_read(boot)) if boot is not None else None,
        parse_runtime_policy(_read(runtime)) if runtime is not None else None,
    )


@app.command("serve")
def serve_command(
    db: str = typer.Option(..., "--db", help="Database URL (sqlite:///PATH or postgresql://...)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8890, "--port", help="Port to listen on (0: any free port, printed at start)."),
    ca: list[Path] = typer.Option([], "--ca", help="EK manufacturer CA certificate, PEM or DER (repeatable)."),
    interval: float = typer.Option(60.0, "--interval", help="Default attestation interval in seconds."),
    lease: float = typer.Option(30.0, "--lease", help="Lease period in seconds (take-over time of a dead replica)."),
    tick: float | None = typer.Option(None, "--tick", help="Loop tick in seconds (default: min(interval, lease)/4)."),
    webhook: list[str] = typer.Option([], "--webhook", help="URL that receives every event (repeatable)."),
    runtime_policy: Path | None = typer.Option(None, "--runtime-policy", help="Default runtime policy file."),
    boot_policy: Path | None = typer.Option(None, "--boot-policy", help="Default boot policy file."),
    remediation: list[RemediationAction] = typer.Option(
        [RemediationAction.NOTIFY], "--remediation", help="Action on a failed appraisal (repeatable)."
    ),
    tam_url: str | None = typer.Option(None, "--tam-url", help="TAM base URL for the tam-block remediation."),
    tam_token_file: Path | None = typer.Option(None, "--tam-token-file", help="File holding the TAM admin token."),
    admin_token_file: Path | None = typer.Option(None, "--admin-token-file", help="File holding the operator token."),
    ear_key: Path | None = typer.Option(None, "--ear-key", help="PEM private key (P-256/Ed25519) signing EARs."),
    replica_id: str | None = typer.Option(None, "--replica-id", help="This replica's name (default: host-pid-random)."),
    allow_uncertified_ek: bool = typer.Option(False, "--allow-uncertified-ek", help="Accept EKs without certificate."),
    json_output: bool = typer.Option(False, "--json", help="Print the start-up line as JSON."),
) -> None:
    """Serve the verifier API and attest the registered nodes until stopped."""
    try:
        extra: dict[str, Any] = {"replica_id": replica_id} if replica_id else {}
        config = VerifierConfig(
            interval_s=interval,
            lease_s=lease,
            tick_s=tick,
            ek_ca_certs=tuple(_read(p) for p in ca),
            allow_uncertified_ek=allow_uncertified_ek,
            webhooks=tuple(webhook),
            remediation=frozenset(remediation),
            tam_url=tam_url,
            tam_token=_secret(tam_token_file),
            admin_token=_secret(admin_token_file),
            ear_key=_ear_key(ear_key),
            **extra,
        )
        database = Database(DatabaseConfig(url=db))
        database.upgrade()
        policy = load_policy_files(config.default_policy or "default", runtime_policy, boot_policy)
        if policy is not None:
            put_policy(database, policy)
        service = VerifierService(database, config)
        listener = socket.create_server((host, port))
    except (VeriteeError, OSError) as exc:
        raise _fail(exc, json_output) from None
    bound = listener.getsockname()[1]
    info = {"listening": f"http://{host}:{bound}", "replica_id": config.replica_id, "db": database.dialect}
    typer.echo(json.dumps(info) if json_output else f"verifier {config.replica_id} listening on {info['listening']}")
    server = uvicorn.Server(uvicorn.Config(create_verifier_app(service), log_level="warning", access_log=False))
    server.run(sockets=[listener])


@app.command("policy-set")
def policy_set_command(
    name: str = typer.Argument(..., help="Policy name (the default policy is 'default')."),
    db: str = typer.Option(..., "--db", help="Database URL."),
    runtime_policy: Path | None = typer.Option(None, "--runtime-policy", help="Runtime policy file."),
    boot_policy: Path | None = typer.Option(None, "--boot-policy", help="Boot policy file."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Store a policy in the verifier database (a new version when it changed)."""
    try:
        policy = load_policy_files(name, runtime_policy, boot_policy)
        if policy is None:
            raise UnusableInputError("give --runtime-policy, --boot-policy or both")
        database = Database(DatabaseConfig(url=db))
        database.upgrade()
        ref = put_policy(database, policy)
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None
    result = {"name": ref.name, "version": ref.version, "policy_id": ref.policy_id}
    typer.echo(json.dumps(result) if json_output else f"policy {ref.name} version {ref.version}: {ref.policy_id}")


@app.command("nodes")
def nodes_command(
    db: str = typer.Option(..., "--db", help="Database URL."),
    state: NodeState | None = typer.Option(None, "--state", help="Only nodes in this state."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the registered nodes and their state."""
    try:
        listed = list_nodes(Database(DatabaseConfig(url=db)), state=state, limit=10_000)
    except VeriteeError as exc:
        raise _fail(exc, json_output) from None
    if json_output:
        typer.echo(json.dumps({"nodes": listed}))
        return
    for item in listed:
        typer.echo(f"{item['node_id']}\t{item['state']}\t{item['mode']}\tlast attested {item['last_attested_at']}")


@app.command("policy-from")
def policy_from_command(
    node: str = typer.Argument(..., help="A known-good node's id."),
    db: str = typer.Option(..., "--db", help="Verifier database URL."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where to write the policy document."),
    name: str = typer.Option("", "--name", help="Policy name (default: the node id)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Path regular expression to exclude (repeatable)."),
    install: bool = typer.Option(False, "--install", help="Also store the policy in the verifier database."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Create a policy from the evidence the verifier kept for a known-good node (what its quotes bound)."""
    if out is None and not install:
        raise _fail(UnusableInputError("give --out, --install or both"), json_output)
    create_policy_from_node(node, db, out, name=name, excludes=exclude, install=install, json_output=json_output)


if __name__ == "__main__":
    app()

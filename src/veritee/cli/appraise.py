"""``veritee appraise``: appraise an evidence bundle (tpm2-tools outputs and logs) against policies.

Exit status: 0 the appraisal passed, 1 it failed, 2 the input is unusable (missing files, unreadable policies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from veritee import __version__
from veritee.appraisal import Appraisal, appraise
from veritee.appraisal.bundle import BUNDLE_FILES, evidence_from_bundle
from veritee.appraisal.ear import VerifierId, attestation_result, sign_jwt
from veritee.appraisal.policy import (
    BootPolicy,
    CompiledPolicy,
    RuntimePolicy,
    compile_policy,
    import_keylime_refstate,
    import_keylime_runtime_policy,
    parse_policy,
)
from veritee.errors import PolicyError, ValidationError, VeriteeError

NAME = "appraise"
app = typer.Typer(
    help="Appraise a TPM quote, event log and IMA list (a bundle directory) against boot and runtime policies.",
    invoke_without_command=True,
)

KEYLIME_RUNTIME = "runtime_policy.json"
KEYLIME_REFSTATE = "mb_refstate.json"


class UnusableInputError(ValidationError):
    """The input cannot be appraised (exit status 2)."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _policy_document(data: bytes) -> dict[str, Any] | None:
    """The decoded document when ``data`` is a veritee policy document, else None (a Keylime file)."""
    try:
        decoded = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"not JSON: {exc}") from None
    if isinstance(decoded, dict) and decoded.get("format") == "veritee.policy":
        return decoded
    return None


def load_policies(
    bundle: Path, runtime_file: Path | None, boot_file: Path | None, policy_file: Path | None
) -> CompiledPolicy:
    """Our policy document (``--policy``), or a runtime and a boot policy (each ours or Keylime's; by default the
    bundle's Keylime files when present)."""
    try:
        if policy_file is not None:
            document = parse_policy(json.loads(_read(policy_file)))
            return compile_policy(document.boot, document.runtime, name=document.name)
        runtime: RuntimePolicy | None = None
        boot: BootPolicy | None = None
        runtime_path = runtime_file or (bundle / KEYLIME_RUNTIME if (bundle / KEYLIME_RUNTIME).exists() else None)
        boot_path = boot_file or (bundle / KEYLIME_REFSTATE if (bundle / KEYLIME_REFSTATE).exists() else None)
        if runtime_path is not None:
            data = _read(runtime_path)
            ours = _policy_document(data)
            runtime = parse_policy(ours).runtime if ours is not None else import_keylime_runtime_policy(data)
        if boot_path is not None:
            data = _read(boot_path)
            ours = _policy_document(data)
            boot = parse_policy(ours).boot if ours is not None else import_keylime_refstate(data)
        return compile_policy(boot, runtime, name=bundle.name or "bundle")
    except (PolicyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnusableInputError(f"policy: {exc}") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise UnusableInputError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise UnusableInputError(f"{path}: EAR signing needs a P-256 or Ed25519 key, not {type(key).__name__}")
    return key


def _report(result: Appraisal, ear: str | None, json_output: bool) -> None:
    if json_output:
        out = result.to_json()
        if ear is not None:
            out["ear"] = ear
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{'PASS' if result.passed else 'FAIL'}  policy {result.policy_id}")
    typer.echo(f"checks: {', '.join(sorted(check.value for check in result.checks))}")
    for item in result.findings:
        typer.echo(f"  [{item.severity.name.lower()}] {item.id}: {item.message}")
    typer.echo(f"time: {result.timings.get('total', 0.0):.2f} ms")
    if ear is not None:
        typer.echo(f"EAR: {ear}")


@app.callback(invoke_without_command=True)
def run(
    bundle: Path = typer.Option(..., "--bundle", help="Directory with ak.pub, quote.msg, quote.sig, quote.pcrs, ..."),
    runtime_policy: Path | None = typer.Option(
        None, "--runtime-policy", help="Runtime policy (Keylime runtime_policy.json or a veritee policy)."
    ),
    boot_policy: Path | None = typer.Option(
        None, "--boot-policy", help="Boot policy (Keylime mb_refstate.json or a veritee policy)."
    ),
    policy: Path | None = typer.Option(None, "--policy", help="A veritee policy document (boot and runtime)."),
    ear_key: Path | None = typer.Option(
        None, "--ear-key", help="PEM private key (P-256 or Ed25519): also print the result as a signed EAR JWT."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Appraise the bundle; exit 0 if it passes, 1 if it fails, 2 if the input is unusable."""
    try:
        files = {name: _read(bundle / name) for name in BUNDLE_FILES if (bundle / name).is_file()}
        evidence = evidence_from_bundle(files)
        compiled = load_policies(bundle, runtime_policy, boot_policy, policy)
        key = _load_key(ear_key) if ear_key is not None else None
    except VeriteeError as exc:
        if json_output:
            typer.echo(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result = appraise(evidence, compiled)
    ear = None
    if key is not None:
        ear = sign_jwt(
            attestation_result(
                result.findings,
                result.checks,
                verifier_id=VerifierId(developer="veritee", build=f"veritee {__version__}"),
                policy_id=result.policy_id,
                nonce=evidence.nonce if 8 <= len(evidence.nonce) <= 64 else None,
            ),
            key,
        )
    _report(result, ear, json_output)
    raise typer.Exit(0 if result.passed else 1)

"""``veritee tam``: run the Trusted Application Manager and manage its admin tokens.

These commands work on the TAM's database directly (``--db URL``, SQLite by default, PostgreSQL by URL); the
``tc``, ``device``, ``deploy`` and ``undeploy`` commands are clients of a running TAM's admin API.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import uvicorn

from veritee.appraisal.policy import compile_policy, load_policy
from veritee.cose import CoseKey
from veritee.errors import VeriteeError
from veritee.service.tam import (
    TamService,
    TamServiceConfig,
    create_admin_token,
    list_admin_tokens,
    revoke_admin_token,
)
from veritee.service.tam_attest import Appraiser, AttestationConfig, EatPolicy, HttpAppraiser, LocalAppraiser
from veritee.store.db import Database, DatabaseConfig
from veritee.web.tam_app import TamAppLimits, create_tam_app, uvicorn_config
from veritee.web.tam_client import tls_verify

NAME = "tam"
app = typer.Typer(
    help="Run the Trusted Application Manager (TEEP over HTTP at POST /tam, admin API under /admin) and manage its "
    "admin tokens. These commands use the database directly (--db URL); tc, device, deploy and undeploy talk to a "
    "running TAM's admin API.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Admin API bearer tokens (only their SHA-256 is stored).", no_args_is_help=True)
app.add_typer(token_app, name="token")

DB_OPT = typer.Option("sqlite:///veritee.db", "--db", help="Database URL: sqlite:///PATH or postgresql://...")
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output.")


def _fail(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _key(path: Path) -> CoseKey:
    return CoseKey.from_pem(path.read_bytes())


def _open_db(url: str) -> Database:
    db = Database(DatabaseConfig(url=url))
    db.upgrade()
    return db


def _hex_values(values: list[str], what: str) -> frozenset[bytes] | None:
    if not values:
        return None
    try:
        return frozenset(bytes.fromhex(v) for v in values)
    except ValueError:
        raise typer.BadParameter(f"{what} values are hexadecimal") from None


def build_service(
    db: Database,
    *,
    keys: list[Path],
    attesters: list[Path],
    verifier_keys: list[Path],
    verifier_url: str | None,
    verifier_ca: Path | None,
    platform_policy: Path | None,
    require_attestation: bool,
    enroll: bool,
    compat: bool,
    token_lifetime: float,
    max_evidence_age: float,
    accept_warning: bool,
    require_platform: bool,
    oemids: list[str],
    hwmodels: list[str],
) -> TamService:
    """The service ``tam serve`` runs (file reading happens here, in the CLI layer)."""
    verifiers = tuple(_key(p).public() for p in verifier_keys)
    platform: Appraiser | None = None
    if verifier_url is not None:
        platform = HttpAppraiser(verifier_url, verifiers, verify=tls_verify(verifier_ca))
    elif platform_policy is not None:
        document = load_policy(platform_policy.read_bytes())
        platform = LocalAppraiser(compile_policy(document.boot, document.runtime, name=document.name))
    oemid_values = _hex_values(oemids, "--oemid")
    policy = EatPolicy(
        oemids=frozenset[bytes | int](oemid_values) if oemid_values is not None else None,
        hwmodels=_hex_values(hwmodels, "--hwmodel"),
        max_age=max_evidence_age,
        require_platform_evidence=require_platform,
        accept_warning=accept_warning,
        compat=compat,
    )
    config = TamServiceConfig(
        tam_keys=tuple(_key(p) for p in keys),
        attestation=AttestationConfig(
            attester_keys=tuple(_key(p).public() for p in attesters),
            verifier_keys=verifiers,
            policy=policy,
            platform=platform,
        ),
        require_attestation=require_attestation,
        enroll_on_first_contact=enroll,
        compat=compat,
        token_lifetime=token_lifetime,
    )
    return TamService(db, config)


@app.command()
def serve(
    db: str = DB_OPT,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8443, "--port", help="TCP port."),
    key: list[Path] = typer.Option(..., "--key", help="TAM signing key (PEM; P-256 and/or Ed25519). Repeatable."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="HTTPS certificate chain (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="HTTPS private key (PEM)."),
    signer: list[Path] = typer.Option([], "--signer", help="Trust this TC signer (PEM); added to the database."),
    attester: list[Path] = typer.Option([], "--attester", help="Key trusted to sign any device's EAT (PEM)."),
    verifier_key: list[Path] = typer.Option([], "--verifier-key", help="Key trusted to sign EARs (passport mode)."),
    verifier_url: str | None = typer.Option(None, "--verifier-url", help="Remote verifier for platform evidence."),
    verifier_ca: Path | None = typer.Option(None, "--verifier-ca", help="CA bundle for the verifier's HTTPS."),
    platform_policy: Path | None = typer.Option(None, "--platform-policy", help="Appraise platform evidence locally."),
    no_attestation: bool = typer.Option(False, "--no-attestation", help="Do not ask for or require attestation."),
    no_enroll: bool = typer.Option(False, "--no-enroll", help="Refuse Agents that are not pre-registered."),
    compat: bool = typer.Option(False, "--compat", help="Accept older TEEP encodings (libteep) and ES256/EdDSA."),
    token_lifetime: float = typer.Option(300.0, "--token-lifetime", help="Seconds a TEEP token stays valid."),
    max_evidence_age: float = typer.Option(300.0, "--max-evidence-age", help="Largest accepted EAT/EAR age (s)."),
    accept_warning: bool = typer.Option(False, "--accept-warning", help="Let a 'warning' result pass the gate."),
    require_platform: bool = typer.Option(False, "--require-platform", help="Require platform evidence in EATs."),
    oemid: list[str] = typer.Option([], "--oemid", help="Allowed EAT oemid (hex). Repeatable."),
    hwmodel: list[str] = typer.Option([], "--hwmodel", help="Allowed EAT hwmodel (hex). Repeatable."),
    max_body: int = typer.Option(1024 * 1024, "--max-body", help="Largest TEEP message accepted (bytes)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    as_json: bool = JSON_OPT,
) -> None:
    """Serve the TAM over HTTP(S) until interrupted."""
    try:
        database = _open_db(db)
        service = build_service(
            database,
            keys=key,
            attesters=attester,
            verifier_keys=verifier_key,
            verifier_url=verifier_url,
            verifier_ca=verifier_ca,
            platform_policy=platform_policy,
            require_attestation=not no_attestation,
            enroll=not no_enroll,
            compat=compat,
            token_lifetime=token_lifetime,
            max_evidence_age=max_evidence_age,
            accept_warning=accept_warning,
            require_platform=require_platform,
            oemids=oemid,
            hwmodels=hwmodel,
        )
        for path in signer:
            service.add_signer(path.stem, path.read_text(), exist_ok=True)
        application = create_tam_app(service, limits=TamAppLimits(max_teep_body=max_body))
        config = uvicorn_config(application, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                                log_level=log_level)  # fmt: skip
    except (VeriteeError, OSError) as exc:
        raise _fail(str(exc), as_json) from None
    scheme = "https" if tls_cert is not None else "http"
    started: dict[str, Any] = {"ok": True, "url": f"{scheme}://{host}:{port}", "teep": f"{scheme}://{host}:{port}/tam",
                               "suites": [s.to_cbor() for s in service.config.cipher_suites]}  # fmt: skip
    typer.echo(json.dumps(started) if as_json else f"TAM listening on {started['url']} (TEEP at {started['teep']})")
    uvicorn.Server(config).run()
    database.dispose()


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="A name for the token (who or what uses it)."),
    db: str = DB_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Create an admin bearer token and print it (once: only its hash is stored)."""
    try:
        database = _open_db(db)
        token = create_admin_token(database, name)
        database.dispose()
    except VeriteeError as exc:
        raise _fail(str(exc), as_json) from None
    typer.echo(json.dumps({"ok": True, "name": name, "token": token}) if as_json else token)


@token_app.command("list")
def token_list(db: str = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """List admin tokens (names and dates; the tokens themselves are not stored)."""
    try:
        database = _open_db(db)
        tokens = list_admin_tokens(database)
        database.dispose()
    except VeriteeError as exc:
        raise _fail(str(exc), as_json) from None
    if as_json:
        typer.echo(json.dumps(tokens))
        return
    for item in tokens:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else "active"
        typer.echo(f"{item['name']}\tcreated {item['created_at']}\t{state}")


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(...), db: str = DB_OPT, as_json: bool = JSON_OPT) -> None:
    """Revoke an admin token by name."""
    try:
        database = _open_db(db)
        revoke_admin_token(database, name, datetime.now(UTC))
        database.dispose()
    except VeriteeError as exc:
        raise _fail(str(exc), as_json) from None
    typer.echo(json.dumps({"ok": True, "revoked": name}) if as_json else f"revoked {name}")

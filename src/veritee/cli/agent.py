"""``veritee agent``: the device side of TEEP - a TEEP Agent with a software TEE, talking to a TAM over HTTP.

    veritee agent run --tam URL --state-dir DIR [--tam-key PEM] [--tc-signer PEM] [--ca CA.pem] [--tcti swtpm:...]
                      [--attr k=v ...] [--interval S [--sessions N]]
    veritee agent request-ta COMPONENT_ID --tam URL --state-dir DIR
    veritee agent unrequest-ta MANIFEST_ID --tam URL --state-dir DIR
    veritee agent list --state-dir DIR
    veritee agent identity --state-dir DIR

Keys are created in the state directory on first use; ``--tam-key`` / ``--tc-signer`` add trust anchors to it (they
persist). With ``--tcti`` the Agent adds a TPM quote to its evidence (docs/teep-platform-evidence.md), and a TEE
created with ``--tcti`` has its master key sealed by that TPM (later commands, ``list`` included, need ``--tcti``).
Component ids are written like ``TEEP-Device/SecureFS/<uuid>/ta`` (parts: text, ``0x<hex>`` or a UUID).
Exit codes: 0 success, 1 the session failed (transport, protocol, or the Agent answered with an Error), 2 bad usage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from veritee.cli.suit import parse_component_id
from veritee.errors import ConfigError, DeviceError, KeyFormatError, ProtocolError, TransportError, VeriteeError
from veritee.service.broker import Broker, RetryPolicy, SessionOutcome
from veritee.service.tee import SoftTee
from veritee.service.tee_agent import (
    StateLayout,
    TrustKind,
    add_trust_anchor,
    build_agent,
    load_identity,
    load_requests,
    open_tee,
    public_pem,
    save_requests,
)
from veritee.service.tee_evidence import TpmPlatform
from veritee.suit.model import ComponentId, component_id_text
from veritee.teep.agent import TeepAgent

NAME = "agent"
app = typer.Typer(help="TEEP Agent with a software TEE: sessions with a TAM over HTTP.", no_args_is_help=True)
_log = logging.getLogger(__name__)


@app.callback()
def _group() -> None:
    """TEEP Agent (device side)."""


class _Usage(VeriteeError):
    """Bad command-line input (exit code 2)."""


def _fail(message: str, kind: str, json_output: bool, code: int) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _errors(json_output: bool) -> Iterator[None]:
    """Typed errors to exit codes: configuration and input 2, everything else (transport, protocol, device) 1."""
    try:
        yield
    except (_Usage, ConfigError, KeyFormatError) as exc:
        raise _fail(str(exc), type(exc).__name__, json_output, 2) from None
    except OSError as exc:
        if isinstance(exc, VeriteeError):  # TransportError, DeviceError
            raise _fail(str(exc), type(exc).__name__, json_output, 1) from None
        raise _fail(f"{exc.strerror or exc}: {exc.filename or ''}".strip(), "OSError", json_output, 2) from None
    except VeriteeError as exc:
        raise _fail(str(exc), type(exc).__name__, json_output, 1) from None


def _cid_json(cid: ComponentId) -> dict[str, Any]:
    return {"id": [p.hex() for p in cid], "text": component_id_text(cid)}


def _parse_attrs(attrs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in attrs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _Usage(f"--attr takes NAME=VALUE, not {item!r}")
        out[name.strip()] = value
    return out


def _parse_cid(text: str) -> ComponentId:
    try:
        cid = parse_component_id(text)
    except ValueError as exc:
        raise _Usage(f"invalid component id {text!r}: {exc}") from None
    if not cid or not all(cid):
        raise _Usage(f"invalid component id {text!r}: empty parts")
    return cid


@dataclass
class _Options:
    tam: str
    state_dir: Path
    ca: Path | None
    tcti: str | None
    attrs: list[str]
    tam_keys: list[Path]
    tc_signers: list[Path]
    timeout: float
    attempts: int


def _setup(options: _Options) -> tuple[StateLayout, SoftTee, TeepAgent, Broker]:
    layout = StateLayout(options.state_dir).create()
    for kind, paths in ((TrustKind.TAM, options.tam_keys), (TrustKind.TC_SIGNER, options.tc_signers)):
        for path in paths:
            add_trust_anchor(layout, kind, path.read_bytes())
    identity = load_identity(layout, _parse_attrs(options.attrs))
    tee = open_tee(layout, tcti=options.tcti)
    platform = TpmPlatform.load_or_create(options.tcti, layout.tpm_ak) if options.tcti else None
    agent = build_agent(identity, tee, platform=platform)
    broker = Broker(
        options.tam,
        agent,
        verify=options.ca if options.ca is not None else True,
        timeout=options.timeout,
        retry=RetryPolicy(attempts=options.attempts),
    )
    return layout, tee, agent, broker


def _outcome_json(number: int, outcome: SessionOutcome, pending: list[ComponentId]) -> dict[str, Any]:
    return {
        "session": number,
        "ok": outcome.ok,
        "ended_by": outcome.ended_by.value,
        "exchanges": outcome.exchanges,
        "retries": outcome.retries,
        "duration_s": round(outcome.duration, 4),
        "installed": [_cid_json(c) for c in outcome.installed],
        "unlinked": [_cid_json(c) for c in outcome.unlinked],
        "errors": [{"code": e.code.name, "reason": e.reason} for e in outcome.errors_sent],
        "pending_requests": [_cid_json(c) for c in pending],
    }


def _print_outcome(result: dict[str, Any]) -> None:
    if "error" in result:
        typer.echo(f"session {result['session']}: FAILED: {result['error']['type']}: {result['error']['message']}")
        return
    state = "ok" if result["ok"] else "FAILED"
    typer.echo(
        f"session {result['session']}: {state} ({result['ended_by']}, {result['exchanges']} exchanges, "
        f"{result['retries']} retries, {result['duration_s']} s)"
    )
    for key in ("installed", "unlinked"):
        for cid in result[key]:
            typer.echo(f"  {key}: {cid['text']}")
    for error in result["errors"]:
        typer.echo(f"  error sent: {error['code']}: {error['reason']}")
    for cid in result["pending_requests"]:
        typer.echo(f"  still requested: {cid['text']}")


def _one_session(layout: StateLayout, tee: SoftTee, agent: TeepAgent, broker: Broker, number: int) -> dict[str, Any]:
    pending = load_requests(layout)
    for cid in pending:
        agent.request_ta(cid)
    outcome = broker.request_policy_check()
    remaining = [cid for cid in pending if tee.read(cid) is None]
    if remaining != pending:
        save_requests(layout, remaining)
    return _outcome_json(number, outcome, remaining)


def _emit(result: dict[str, Any], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(result))
    else:
        _print_outcome(result)


_TAM = typer.Option(..., "--tam", help="The TAM URI, e.g. https://tam.example/tam.")
_STATE = typer.Option(..., "--state-dir", help="The Agent's state directory (keys, TEE, trust anchors).")
_CA = typer.Option(None, "--ca", help="CA certificate(s) (PEM) to check the TAM's TLS certificate with.")
_TCTI = typer.Option(
    None,
    "--tcti",
    help="TPM for platform evidence (and, for a new TEE, to seal its master key), e.g. swtpm:host=127.0.0.1,port=2321.",
)
_ATTR = typer.Option([], "--attr", help="Device claim NAME=VALUE (ueid, oemid, hwmodel, hwversion); persists.")
_TAM_KEY = typer.Option([], "--tam-key", help="Trust this TAM key (PEM key or certificate); persists. Repeat.")
_SIGNER = typer.Option([], "--tc-signer", help="Trust this SUIT manifest signer (PEM); persists. Repeat.")
_TIMEOUT = typer.Option(30.0, "--timeout", help="HTTP timeout in seconds.")
_ATTEMPTS = typer.Option(4, "--attempts", min=1, help="Tries per HTTP request (network errors, 5xx).")
_JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")


@app.command("run")
def run_command(
    tam: str = _TAM,
    state_dir: Path = _STATE,
    ca: Path | None = _CA,
    tcti: str | None = _TCTI,
    attr: list[str] = _ATTR,
    tam_key: list[Path] = _TAM_KEY,
    tc_signer: list[Path] = _SIGNER,
    interval: float = typer.Option(0.0, "--interval", min=0.0, help="Seconds between sessions; 0: run once."),
    sessions: int = typer.Option(0, "--sessions", min=0, help="With --interval: stop after N sessions (0: never)."),
    timeout: float = _TIMEOUT,
    attempts: int = _ATTEMPTS,
    json_output: bool = _JSON,
) -> None:
    """Run TEEP sessions (a policy check, plus any pending requests): once, or every --interval seconds."""
    options = _Options(tam, state_dir, ca, tcti, attr, tam_key, tc_signer, timeout, attempts)
    failed = False
    with _errors(json_output):
        layout, tee, agent, broker = _setup(options)
        with broker:
            number = 0
            while True:
                number += 1
                try:
                    result = _one_session(layout, tee, agent, broker, number)
                except (TransportError, ProtocolError, DeviceError) as exc:
                    if interval <= 0:
                        raise
                    result = {
                        "session": number,
                        "ok": False,
                        "error": {"type": type(exc).__name__, "message": str(exc)},
                    }
                _emit(result, json_output)
                failed = failed or not result["ok"]
                if interval <= 0 or (sessions and number >= sessions):
                    break
                time.sleep(interval)
    if failed:
        raise typer.Exit(1)


def _single(options: _Options, json_output: bool, action: str, cid: ComponentId) -> None:
    with _errors(json_output):
        layout, tee, agent, broker = _setup(options)
        with broker:
            if action == "request":
                save_requests(layout, [*load_requests(layout), cid])
                result = _one_session(layout, tee, agent, broker, 1)
            else:
                save_requests(layout, [c for c in load_requests(layout) if c != cid])
                agent.unrequest_ta(cid)
                result = _outcome_json(1, broker.request_policy_check(), load_requests(layout))
        _emit(result, json_output)
    if not result["ok"]:
        raise typer.Exit(1)


@app.command("request-ta")
def request_ta_command(
    component_id: str = typer.Argument(..., help="The Trusted Component, e.g. TEEP-Device/SecureFS/<uuid>/ta."),
    tam: str = _TAM,
    state_dir: Path = _STATE,
    ca: Path | None = _CA,
    tcti: str | None = _TCTI,
    attr: list[str] = _ATTR,
    tam_key: list[Path] = _TAM_KEY,
    tc_signer: list[Path] = _SIGNER,
    timeout: float = _TIMEOUT,
    attempts: int = _ATTEMPTS,
    json_output: bool = _JSON,
) -> None:
    """RequestTA: ask the TAM for a Trusted Component (kept requested until it is installed)."""
    with _errors(json_output):
        cid = _parse_cid(component_id)
    options = _Options(tam, state_dir, ca, tcti, attr, tam_key, tc_signer, timeout, attempts)
    _single(options, json_output, "request", cid)


@app.command("unrequest-ta")
def unrequest_ta_command(
    manifest_id: str = typer.Argument(..., help="The manifest component id of the Trusted Component to remove."),
    tam: str = _TAM,
    state_dir: Path = _STATE,
    ca: Path | None = _CA,
    tcti: str | None = _TCTI,
    attr: list[str] = _ATTR,
    tam_key: list[Path] = _TAM_KEY,
    tc_signer: list[Path] = _SIGNER,
    timeout: float = _TIMEOUT,
    attempts: int = _ATTEMPTS,
    json_output: bool = _JSON,
) -> None:
    """UnrequestTA: tell the TAM the device no longer needs a Trusted Component (the TAM decides to unlink it)."""
    with _errors(json_output):
        cid = _parse_cid(manifest_id)
    options = _Options(tam, state_dir, ca, tcti, attr, tam_key, tc_signer, timeout, attempts)
    _single(options, json_output, "unrequest", cid)


@app.command("list")
def list_command(state_dir: Path = _STATE, tcti: str | None = _TCTI, json_output: bool = _JSON) -> None:
    """Installed Trusted Components per security domain, with manifest records and personalization data."""
    with _errors(json_output):
        if not (state_dir / "tee").is_dir():
            raise _Usage(f"{state_dir} is not an Agent state directory (no tee/)")
        layout = StateLayout(state_dir)
        tee = open_tee(layout, tcti=tcti)
        domains: list[dict[str, Any]] = []
        for summary in tee.summary():
            domains.append(
                {
                    "domain": summary.name,
                    "components": [
                        {**_cid_json(c.component_id), "size": c.size, "sha256": c.sha256.hex()}
                        for c in summary.components
                    ],
                    "manifests": [
                        {**_cid_json(mid), "sequence_number": rec.sequence_number, "digest": rec.digest.value.hex()}
                        for mid, rec in summary.manifests
                    ],
                    "data": list(summary.data_names),
                }
            )
        result: dict[str, Any] = {
            "generation": tee.generation,
            "domains": domains,
            "pending_requests": [_cid_json(c) for c in load_requests(layout)],
        }
    if json_output:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"TEE generation {result['generation']}, {len(domains)} security domain(s)")
    for domain in domains:
        typer.echo(f"{domain['domain']}:")
        for comp in domain["components"]:
            typer.echo(f"  component {comp['text']}  {comp['size']} bytes  sha256 {comp['sha256']}")
        for man in domain["manifests"]:
            typer.echo(f"  manifest  {man['text']}  sequence {man['sequence_number']}")
        for name in domain["data"]:
            typer.echo(f"  data      {name}")


@app.command("identity")
def identity_command(state_dir: Path = _STATE, attr: list[str] = _ATTR, json_output: bool = _JSON) -> None:
    """The Agent's public keys (to register with a TAM and a Verifier) and device claims; creates them if needed."""
    with _errors(json_output):
        identity = load_identity(StateLayout(state_dir), _parse_attrs(attr))
        result: dict[str, Any] = {
            "teep_key": {
                "thumbprint": identity.teep_key.public().thumbprint().hex(),
                "pem": public_pem(identity.teep_key).decode(),
            },
            "attestation_key": {
                "thumbprint": identity.attestation_key.public().thumbprint().hex(),
                "pem": public_pem(identity.attestation_key).decode(),
            },
            "device": dict(identity.device_attributes),
            "trusted_tam_keys": [k.public().thumbprint().hex() for k in identity.tam_keys],
            "trusted_tc_signers": [k.public().thumbprint().hex() for k in identity.tc_signer_keys],
        }
    if json_output:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"TEEP key {result['teep_key']['thumbprint']}")
    typer.echo(result["teep_key"]["pem"].rstrip())
    typer.echo(f"attestation key {result['attestation_key']['thumbprint']}")
    typer.echo(result["attestation_key"]["pem"].rstrip())
    for name, value in result["device"].items():
        typer.echo(f"{name}: {value}")

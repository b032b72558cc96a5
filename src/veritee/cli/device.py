"""``veritee device``: the devices a TAM knows, through its admin API (options as for ``veritee tc``).

A device is named by its numeric id, the hex SHA-256 thumbprint of its TEEP key, or its name when unique.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from veritee.cli.tc import CA_OPT, CLIENT_HELP, JSON_OPT, TAM_OPT, TOKEN_OPT, admin_client, emit, fail, table

NAME = "device"
app = typer.Typer(help="Devices known to a TAM (enrolled or pre-registered). " + CLIENT_HELP, no_args_is_help=True)

REF_ARG = typer.Argument(..., help="Device id, TEEP key thumbprint (hex) or unique name.")


def _summary(rows: list[dict[str, Any]]) -> str:
    view = [{**r, "installed": len([c for c in r["components"] if c["installed"]])} for r in rows]
    return table(view, ("id", "name", "key_thumbprint", "attestation_status", "blocked", "installed", "last_seen_at"))


def _detail(device: dict[str, Any]) -> str:
    lines = [f"{k}: {device[k]}" for k in ("id", "name", "key_thumbprint", "attestation_status", "attestation_at",
                                            "blocked", "blocked_reason", "last_seen_at", "last_error")]  # fmt: skip
    lines.append(f"attributes: {json.dumps(device['attributes'], sort_keys=True)}")
    if device.get("attestation"):
        lines.append(f"attestation: {json.dumps(device['attestation'], sort_keys=True)}")
    lines.append("components:")
    for c in device["components"]:
        state = "installed" if c["installed"] else "removed"
        lines.append(f"  {c['component_id']}  sequence {c['sequence_number']}  {state}")
    if "plan" in device:
        plan = device["plan"]
        lines.append("next update:")
        lines += [f"  install {p['component_id']} sequence {p['sequence_number']}" for p in plan["install"]]
        lines += [f"  remove {p['component_id']}" for p in plan["remove"]]
        lines += [f"  skip {p['component_id']}: {p['detail']}" for p in plan["skipped"]]
    return "\n".join(lines)


@app.command("list")
def list_(tam: str = TAM_OPT, token: str = TOKEN_OPT, ca: Path | None = CA_OPT, as_json: bool = JSON_OPT) -> None:
    """List devices with their attestation status."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.list_devices()
    emit(result, as_json, _summary)


@app.command("show")
def show(
    ref: str = REF_ARG,
    plan: bool = typer.Option(False, "--plan", help="Also show what the next Update would carry."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show one device: attributes, attestation result, components."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.device(ref)
        if plan:
            result["plan"] = client.device_plan(ref)
    emit(result, as_json, _detail)


@app.command("block")
def block(
    ref: str = REF_ARG,
    reason: str = typer.Option("blocked by an administrator", "--reason", help="Why (shown with the device)."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Stop all deployments to a device (it keeps what it has)."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.block(ref, reason)
    emit(result, as_json, lambda d: f"device {d['id']} blocked: {d['blocked_reason']}")


@app.command("unblock")
def unblock(
    ref: str = REF_ARG, tam: str = TAM_OPT, token: str = TOKEN_OPT, ca: Path | None = CA_OPT, as_json: bool = JSON_OPT
) -> None:
    """Resume deployments to a device."""
    with admin_client(tam, token, ca, as_json) as client:
        result = client.unblock(ref)
    emit(result, as_json, lambda d: f"device {d['id']} unblocked")


@app.command("set")
def set_(
    ref: str = REF_ARG,
    assignments: list[str] = typer.Argument(..., help="KEY=VALUE attributes; KEY= removes one."),
    name: str | None = typer.Option(None, "--name", help="Also set the device's name."),
    tam: str = TAM_OPT,
    token: str = TOKEN_OPT,
    ca: Path | None = CA_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Set device attributes (the 'attr:' deployment selectors match them)."""
    attributes: dict[str, str | None] = {}
    for item in assignments:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise fail(f"{item!r} is not KEY=VALUE", as_json)
        attributes[key] = value or None
    with admin_client(tam, token, ca, as_json) as client:
        result = client.update_device(ref, attributes=attributes, name=name)
    emit(result, as_json, lambda d: f"device {d['id']} attributes: {json.dumps(d['attributes'], sort_keys=True)}")

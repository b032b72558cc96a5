"""``veritee suit``: inspect, verify and create SUIT envelopes.

Envelope files may be binary CBOR or hex text (whitespace ignored). Component identifiers are written as
``part/part/...``: a part ``0x...`` is hex bytes, a UUID (8-4-4-4-12) is its 16 bytes, anything else is UTF-8 text,
e.g. ``TEEP-Device/SecureFS/8d82573a-926d-4754-9353-32dc29997f74/ta``.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from pathlib import Path
from typing import Any

import typer

from veritee.cose import CoseKey
from veritee.errors import VeriteeError
from veritee.suit import (
    CommandSequence,
    ComponentId,
    DigestAlgorithm,
    Envelope,
    ManifestKey,
    SuitDigest,
    TrustedComponentSpec,
    build_envelope,
    decode_envelope,
)
from veritee.suit.model import component_id_text

NAME = "suit"
app = typer.Typer(help="Inspect, verify and create SUIT manifests (envelopes).", no_args_is_help=True)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SEVERABLE = {"install": ManifestKey.INSTALL, "text": ManifestKey.TEXT}


def read_envelope_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    text = data.strip()
    if text and all(chr(b) in string.hexdigits or chr(b).isspace() for b in text):
        return bytes.fromhex("".join(text.decode("ascii").split()))
    return data


def parse_component_id(text: str) -> ComponentId:
    parts: list[bytes] = []
    for part in text.split("/"):
        if part.startswith("0x"):
            parts.append(bytes.fromhex(part[2:]))
        elif _UUID.match(part):
            parts.append(uuid.UUID(part).bytes)
        else:
            parts.append(part.encode())
    return tuple(parts)


def _uuid_bytes(text: str | None) -> bytes | None:
    if text is None:
        return None
    return uuid.UUID(text).bytes if _UUID.match(text) else bytes.fromhex(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, SuitDigest):
        return str(value)
    if isinstance(value, CommandSequence):
        return _sequence(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    return repr(value)


def _sequence(sequence: CommandSequence) -> list[Any]:
    out = []
    for entry in sequence.commands:
        out.append({"offset": entry.offset, "command": entry.name, "argument": _jsonable(entry.argument)})
    return out


def describe(envelope: Envelope) -> dict[str, Any]:
    manifest = envelope.manifest
    common = manifest.common
    return {
        "tagged": envelope.tagged,
        "digest": str(envelope.digest),
        "authentication_blocks": len(envelope.authentication.blocks),
        "version": manifest.version,
        "sequence_number": manifest.sequence_number,
        "reference_uri": manifest.reference_uri,
        "manifest_component_id": component_id_text(manifest.component_id) if manifest.component_id else None,
        "components": [component_id_text(c) for c in common.components],
        "dependencies": {
            str(i): component_id_text(d.prefix) if d.prefix else None for i, d in common.dependencies.items()
        },
        "shared_sequence": _sequence(common.shared_sequence) if common.shared_sequence else None,
        "sequences": {k.name.lower(): _sequence(s) for k, s in manifest.sequences.items()},
        "severed": {k.name.lower(): str(d) for k, d in manifest.severed.items()},
        "severable_members_present": [k.name.lower() for k in envelope.severable],
        "integrated_payloads": {k: len(v) for k, v in envelope.integrated.items()},
        "text": {
            lang: {
                "manifest": dict(t.manifest),
                "components": {component_id_text(c): dict(m) for c, m in t.components.items()},
            }
            for lang, t in (manifest.text or {}).items()
        },
    }


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=False))
        return
    for key, value in data.items():
        if isinstance(value, dict | list):
            typer.echo(f"{key}:")
            typer.echo("  " + json.dumps(value, indent=2).replace("\n", "\n  "))
        else:
            typer.echo(f"{key}: {value}")


def _fail(message: str, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def inspect(
    envelope: Path = typer.Argument(..., exists=True, dir_okay=False, help="SUIT envelope (CBOR or hex)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Decode an envelope and show its manifest (NOT authenticated: use 'verify')."""
    try:
        decoded = decode_envelope(read_envelope_bytes(envelope))
    except VeriteeError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", as_json) from None
    _emit(describe(decoded), as_json)


@app.command()
def verify(
    envelope: Path = typer.Argument(..., exists=True, dir_okay=False, help="SUIT envelope (CBOR or hex)."),
    key: list[Path] = typer.Option(..., "--key", exists=True, dir_okay=False, help="Trust anchor PEM (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Authenticate the envelope with the trust anchor(s); exit 1 if it does not verify."""
    try:
        anchors = [CoseKey.from_pem(p.read_bytes()) for p in key]
        verified = decode_envelope(read_envelope_bytes(envelope)).verify(anchors)
    except VeriteeError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", as_json) from None
    _emit(
        {
            "ok": True,
            "digest": str(verified.digest),
            "sequence_number": verified.sequence_number,
            "signer_thumbprint": verified.signer.thumbprint().hex(),
            "sequences": sorted(k.name.lower() for k in verified.sequences),
            "severed_absent": sorted(k.name.lower() for k in verified.absent),
        },
        as_json,
    )


@app.command()
def create(
    component_id: str = typer.Option(..., "--component-id", help="Component id, e.g. TEEP-Device/SecureFS/<uuid>/ta."),
    seq: int = typer.Option(..., "--seq", min=0, help="Manifest sequence number."),
    key: Path = typer.Option(..., "--key", exists=True, dir_okay=False, help="Signing key (PEM private key)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the envelope (binary CBOR)."),
    payload: Path | None = typer.Option(None, "--payload", exists=True, dir_okay=False, help="Payload file."),
    uri: str | None = typer.Option(None, "--uri", help="Payload URI (or '#name' with --integrated)."),
    integrated: bool = typer.Option(False, "--integrated", help="Embed the payload in the envelope."),
    image_digest: str | None = typer.Option(None, "--image-digest", help="SHA-256 hex (--uri without --payload)."),
    image_size: int | None = typer.Option(None, "--image-size", min=0, help="Payload size (with --image-digest)."),
    vendor_id: str | None = typer.Option(None, "--vendor-id", help="Vendor UUID."),
    class_id: str | None = typer.Option(None, "--class-id", help="Class UUID."),
    manifest_component_id: str | None = typer.Option(None, "--manifest-component-id", help="Where the manifest lives."),
    validate: bool = typer.Option(False, "--validate", help="Emit a validate sequence."),
    invoke: bool = typer.Option(False, "--invoke", help="Emit an invoke sequence."),
    description: str | None = typer.Option(None, "--text", help="Manifest description (suit-text, 'en')."),
    sever: list[str] = typer.Option([], "--sever", help="Sever a member: install or text (repeatable)."),
    tagged: bool = typer.Option(False, "--tagged", help="Use the SUIT_Envelope tag 107."),
    with_kid: bool = typer.Option(False, "--kid", help="Put the signing key's RFC 9679 thumbprint as kid."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create and sign an envelope for one Trusted Component (payload by URI, integrated, or both known)."""
    try:
        signing_key = CoseKey.from_pem(key.read_bytes())
        data = payload.read_bytes() if payload is not None else None
        unknown = [s for s in sever if s not in _SEVERABLE]
        if unknown:
            raise ValueError(f"cannot sever {unknown}; choose from {sorted(_SEVERABLE)}")
        spec = TrustedComponentSpec(
            component_id=parse_component_id(component_id),
            sequence_number=seq,
            payload=data,
            uri=uri,
            integrated=integrated,
            image_digest=SuitDigest(DigestAlgorithm.SHA256, bytes.fromhex(image_digest)) if image_digest else None,
            image_size=image_size,
            vendor_id=_uuid_bytes(vendor_id),
            class_id=_uuid_bytes(class_id),
            manifest_component_id=parse_component_id(manifest_component_id) if manifest_component_id else None,
            validate=validate,
            invoke=invoke,
            text={"en": {1: description}} if description else None,
            severable=frozenset(_SEVERABLE[s] for s in sever),
            tagged=tagged,
        )
        envelope = build_envelope(spec, signing_key, kid=signing_key.thumbprint() if with_kid else None)
    except (VeriteeError, ValueError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", as_json) from None
    output.write_bytes(envelope)
    decoded = decode_envelope(envelope)
    _emit({"ok": True, "output": str(output), "size": len(envelope), "digest": str(decoded.digest)}, as_json)

"""``veritee teep``: look inside TEEP messages (bare or COSE-signed) and EATs, verifying them when given a key."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from veritee import cbor
from veritee.cose import Algorithm, CoseKey
from veritee.errors import VeriteeError
from veritee.teep.codes import CipherSuite
from veritee.teep.cose_wrap import open_message, peek_message
from veritee.teep.eat import decode_eat, verify_eat
from veritee.teep.messages import Message, decode_message, message_fields

NAME = "teep"
app = typer.Typer(help="TEEP protocol messages and EAT evidence: decode and verify.", no_args_is_help=True)

_HEX = frozenset(string.hexdigits + string.whitespace)


@app.callback()
def _group() -> None:
    """TEEP messages."""


def _fail(message: str, kind: str, json_output: bool, code: int = 1) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _read(file: Path) -> bytes:
    """A binary file, or a hex file (whitespace ignored) when it holds nothing but hex digits."""
    raw = file.read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw
    if text.strip() and set(text) <= _HEX and len("".join(text.split())) % 2 == 0:
        return bytes.fromhex("".join(text.split()))
    return raw


def jsonable(value: Any) -> Any:
    """Bytes as hex, enums by name, dataclasses and maps as objects, tuples as lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, CipherSuite):
        return [list(op) for op in value.operations]
    if isinstance(value, cbor.CBORTag):
        return {"tag": value.tag, "value": jsonable(value.value)}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [jsonable(v) for v in value]
    return value


def _message_json(message: Message) -> dict[str, Any]:
    content = {k: jsonable(v) for k, v in message_fields(message).items() if v is not None and v != {}}
    return {"type": message.type.name, "fields": content, "quirks": list(message.quirks)}


def _alg_name(value: int | str) -> int | str:
    try:
        return Algorithm.from_id(value).name
    except VeriteeError:
        return value


def _keys(paths: list[Path]) -> list[CoseKey]:
    return [CoseKey.from_pem(p.read_bytes()).public() for p in paths]


def _decode(data: bytes, keys: list[CoseKey], compat: bool) -> dict[str, Any]:
    peek = peek_message(data)
    result: dict[str, Any] = {
        "cose": None
        if peek.cose_type is None
        else {"type": peek.cose_type.name, "algs": [_alg_name(a) for a in peek.algs], "kids": jsonable(peek.kids)},
        "verified": False,
    }
    try:
        payload_obj = cbor.decode(peek.payload)
    except VeriteeError:
        payload_obj = None
    if isinstance(payload_obj, Mapping):  # not a TEEP message: an EAT claims set
        if keys:
            claims = verify_eat(data, keys, teep_profile=False, compat=compat)
            result["verified"] = True
        else:
            claims = decode_eat(data, compat=compat).claims
        result["eat"] = {"claims": jsonable(claims.claims), "quirks": list(claims.quirks)}
        return result
    if keys and peek.cose_type is not None:
        verified = open_message(data, keys, compat=compat)
        result.update(verified=True, signer_thumbprint=verified.signer_thumbprint.hex(), alg=verified.alg.name)
        message = verified.message
    else:
        message = decode_message(peek.payload, compat=compat)
    result["message"] = _message_json(message)
    return result


def _print(result: dict[str, Any]) -> None:
    cose = result["cose"]
    if cose is None:
        typer.echo("bare CBOR (not signed)")
    else:
        state = f"verified, signer {result['signer_thumbprint']}" if result.get("signer_thumbprint") else "NOT verified"
        if "eat" in result and result["verified"]:
            state = "verified"
        typer.echo(f"{cose['type']} {cose['algs']} kid {cose['kids']}: {state}")
    body = result.get("message") or result.get("eat")
    assert body is not None
    if "type" in body:
        typer.echo(f"{body['type']}")
        for name, value in body["fields"].items():
            typer.echo(f"  {name}: {json.dumps(value)}")
    else:
        typer.echo("EAT claims")
        for name, value in body["claims"].items():
            typer.echo(f"  {name}: {json.dumps(value)}")
    for quirk in body["quirks"]:
        typer.echo(f"  compat: {quirk}")


@app.command("decode")
def decode_command(
    file: Path = typer.Argument(..., help="A TEEP message or EAT: binary or hex; bare CBOR or COSE_Sign1/COSE_Sign."),
    key: list[Path] = typer.Option([], "--key", "-k", help="PEM public key (or certificate) to verify with; repeat."),
    compat: bool = typer.Option(False, "--compat", help="Accept the older encodings of libteep and earlier drafts."),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Decode a TEEP message (validated against draft-ietf-teep-protocol-26); with --key, verify its signature."""
    try:
        data = _read(file)
        keys = _keys(key)
    except OSError as exc:
        raise _fail(f"cannot read: {exc.strerror or exc}", "OSError", json_output, code=2) from None
    except VeriteeError as exc:
        raise _fail(str(exc), type(exc).__name__, json_output, code=2) from None
    try:
        result = _decode(data, keys, compat)
    except VeriteeError as exc:
        raise _fail(str(exc), type(exc).__name__, json_output) from None
    if json_output:
        typer.echo(json.dumps(result))
    else:
        _print(result)

"""Strict field readers shared by the policy loaders: every malformed value raises PolicyError naming where it is."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from typing import Any

from veritee.errors import PolicyError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg

__all__ = [
    "DigestSet",
    "b64",
    "digest_map",
    "guid",
    "hex_bytes",
    "hex_list",
    "obj",
    "opt_list",
    "regex",
    "str_list",
    "text",
]

DigestSet = Mapping[HashAlg, bytes]
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]*)")


def obj(
    value: Any, where: str, *, allowed: frozenset[str] | None = None, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A JSON object; with ``allowed``, any other member is an error; every name in ``required`` must be present."""
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected an object, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise PolicyError(f"{where}: unknown member(s) {', '.join(map(repr, unknown))}")
    missing = [name for name in required if name not in value]
    if missing:
        raise PolicyError(f"{where}: missing member(s) {', '.join(map(repr, missing))}")
    return value


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def guid(value: Any, where: str) -> str:
    """A GUID in its canonical text form (lower case, 8-4-4-4-12)."""
    raw = text(value, where)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise PolicyError(f"{where}: {raw[:40]!r} is not a GUID") from None


def hex_bytes(value: Any, where: str, *, prefix: bool = False, size: int | None = None) -> bytes:
    """Bytes from a hex string; with ``prefix`` the string must start with "0x" (Keylime's refstate convention)."""
    raw = text(value, where)
    if prefix and not raw.startswith("0x"):
        raise PolicyError(f"{where}: {raw[:20]!r} does not start with 0x")
    match = _HEX.fullmatch(raw)
    if match is None or len(match.group(1)) % 2:
        raise PolicyError(f"{where}: {raw[:40]!r} is not an even-length hex string")
    data = bytes.fromhex(match.group(1))
    if size is not None and len(data) != size:
        raise PolicyError(f"{where}: expected {size} bytes, got {len(data)}")
    return data


def hex_list(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: expected a list of hex digests, got {type(value).__name__}")
    return tuple(hex_bytes(item, f"{where}[{index}]") for index, item in enumerate(value))


def str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: expected a list of strings, got {type(value).__name__}")
    return tuple(text(item, f"{where}[{index}]") for index, item in enumerate(value))


def opt_list(value: Any, where: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PolicyError(f"{where}: expected a list or null, got {type(value).__name__}")
    return value


def b64(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(text(value, where), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PolicyError(f"{where}: not base64: {exc}") from None


def hash_alg(label: Any, where: str) -> HashAlg:
    try:
        return HashAlg.from_label(text(label, where))
    except UnsupportedAlgorithmError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def digest_map(value: Any, where: str, *, prefix: bool = False) -> dict[HashAlg, bytes]:
    """A digest given as {"sha256": "hex", ...}; each digest must have its algorithm's size."""
    members = obj(value, where)
    if not members:
        raise PolicyError(f"{where}: a digest needs at least one algorithm")
    result: dict[HashAlg, bytes] = {}
    for label, hexval in members.items():
        alg = hash_alg(label, f"{where}.{label}")
        result[alg] = hex_bytes(hexval, f"{where}.{label}", prefix=prefix, size=alg.digest_size)
    return result


def regex(value: Any, where: str) -> str:
    pattern = text(value, where)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PolicyError(f"{where}: invalid regular expression {pattern[:60]!r}: {exc}") from None
    return pattern

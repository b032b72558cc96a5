"""Shared helpers for the SUIT tests: vectors, keys, device identity, and signing hand-made manifests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from helpers import read_hex, shared_path
from veritee import cbor
from veritee.cose import CoseKey, sign1
from veritee.suit import Identity, ProcessorConfig, Record, Report, SuitDigest

TEEP_VENDOR = bytes.fromhex("C0DDD5F15243566087DB4F5B0AA26C2F")
TEEP_CLASS = bytes.fromhex("DB42F7093D8C55BAA8C5265FC5820F4E")
EXAMPLE_VENDOR = bytes.fromhex("fa6b4a53d5ad5fdfbe9de663e4d41ffe")
EXAMPLE_CLASS = bytes.fromhex("1492af1425695e48bf429b2d51f2ab45")
TC_UUID = bytes.fromhex("8D82573A926D4754935332DC29997F74")
TA_ID = (b"TEEP-Device", b"SecureFS", TC_UUID, b"ta")
TA_SUIT_ID = (b"TEEP-Device", b"SecureFS", TC_UUID, b"suit")
TA_URI = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"
TA_SUIT_URI = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit"

IDENTITY = Identity(
    vendor_ids=frozenset({TEEP_VENDOR, EXAMPLE_VENDOR}),
    class_ids=frozenset({TEEP_CLASS, EXAMPLE_CLASS}),
)


def vector(*parts: str) -> bytes:
    return bytes(read_hex(shared_path("vectors", *parts)))


def vector_path(*parts: str) -> Path:
    return Path(shared_path("vectors", *parts))


def records(report: Report) -> list[Record]:
    """The SUIT_Records of a report (system-property-claims left out)."""
    return [r for r in report.records if isinstance(r, Record)]


def signing_key() -> CoseKey:
    return CoseKey.from_pem(vector_path("suit-manifest", "signing_key_private.pem").read_bytes())


def trust_anchor() -> CoseKey:
    return CoseKey.from_pem(vector_path("suit-manifest", "signing_key_public.pem").read_bytes())


def agent_key() -> CoseKey:
    return CoseKey.from_pem(vector_path("libteep", "key", "teep_agent_prime256v1.pem").read_bytes())


def tam_key() -> CoseKey:
    return CoseKey.from_pem(vector_path("libteep", "key", "tam_prime256v1.pem").read_bytes())


def ta_binary() -> bytes:
    return vector_path("teep-protocol", "E_tc_binary_8d82573a-926d-4754-9353-32dc29997f74.ta").read_bytes()


def config(**overrides: Any) -> ProcessorConfig:
    values: dict[str, Any] = {"trust_anchors": (trust_anchor(),), "identity": IDENTITY}
    values.update(overrides)
    return ProcessorConfig(**values)


def seq(*commands: Any) -> bytes:
    """Encode a command sequence from alternating command codes and arguments."""
    return cbor.encode([int(c) if hasattr(c, "value") else c for c in commands])


def sign_manifest(
    manifest: Mapping[int, Any],
    key: CoseKey | None = None,
    *,
    extra: Mapping[Any, Any] | None = None,
    kid: bytes | None = None,
    tagged: bool = True,
) -> bytes:
    """A signed envelope around a hand-made manifest map (its sequences already bstr-encoded)."""
    manifest_raw = cbor.encode(dict(manifest))
    digest = SuitDigest.compute(cbor.encode(manifest_raw)).encode()
    signature = sign1(digest, key or signing_key(), unprotected={4: kid} if kid else {}, detached=True)
    body: dict[Any, Any] = {2: cbor.encode([digest, signature]), 3: manifest_raw, **(extra or {})}
    return cbor.encode(cbor.CBORTag(107, body) if tagged else body)


def simple_manifest(
    install: Sequence[Any] | None = None,
    *,
    components: Sequence[Sequence[bytes]] = ((b"\x00",),),
    shared: Sequence[Any] | None = None,
    seq_no: int = 1,
    **sections: Sequence[Any],
) -> dict[int, Any]:
    """A manifest with the given components, optional shared sequence and sections (name -> command list)."""
    common: dict[int, Any] = {2: [list(c) for c in components]}
    if shared is not None:
        common[4] = seq(*shared)
    manifest: dict[int, Any] = {1: 1, 2: seq_no, 3: cbor.encode(common)}
    keys = {"validate": 7, "load": 8, "invoke": 9, "payload_fetch": 16, "uninstall": 24}
    if install is not None:
        manifest[20] = seq(*install)
    for name, commands in sections.items():
        manifest[keys[name]] = seq(*commands)
    return manifest

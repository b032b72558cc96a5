"""Helpers for the COSE conformance tests: load keys and vectors from ../shared/vectors, find SUIT auth wrappers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import read_hex, shared_path
from veritee import cbor
from veritee.cose import CoseKey


def vectors() -> Path:
    return shared_path("vectors")


def vector(rel: str) -> bytes:
    path = vectors() / rel
    return read_hex(path) if path.suffix == ".hex" else path.read_bytes()


def pem_key(rel: str) -> CoseKey:
    return CoseKey.from_pem((vectors() / rel).read_bytes())


def cose_key(rel: str) -> CoseKey:
    return CoseKey.from_cose_key(read_hex(vectors() / rel))


def untag(obj: Any) -> Any:
    return obj.value if isinstance(obj, cbor.CBORTag) else obj


@dataclass
class AuthWrapper:
    """A SUIT envelope's authentication wrapper: the bstr-wrapped SUIT_Digest (the detached payload) and COSE blocks."""

    envelope: Any
    digest_bstr: bytes
    blocks: list[bytes]

    @property
    def manifest_digest_ok(self) -> bool:
        alg_and_digest = untag(cbor.decode(self.digest_bstr))
        return bool(alg_and_digest[1] == hashlib.sha256(cbor.encode(self.envelope[3])).digest())


def auth_wrapper(envelope_bytes: bytes) -> AuthWrapper:
    env = untag(cbor.decode(envelope_bytes))
    wrapper = untag(cbor.decode(env[2]))
    return AuthWrapper(env, wrapper[0], list(wrapper[1:]))


def teep_update_envelopes(update_message: bytes) -> list[bytes]:
    """The SUIT envelopes in a TEEP Update (manifest-list, option 10); ``update_message`` is the unsigned Update."""
    msg = untag(cbor.decode(update_message))
    return list(msg[1][10])


def suit_section(envelope: Any, key: int) -> Any:
    """A bstr-wrapped member of the manifest (``key`` inside manifest key 3)."""
    manifest = untag(cbor.decode(envelope[3]))
    return cbor.decode(manifest[key])

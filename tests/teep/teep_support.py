"""Shared helpers for the TEEP tests: the vector keys and files named in ../shared/vectors/SOURCES.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers import read_hex, shared_path
from veritee.cose import CoseKey

TOKEN = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")


def vector(*parts: str) -> Path:
    return Path(shared_path("vectors", *parts))


def vector_hex(*parts: str) -> bytes:
    return bytes(read_hex(vector(*parts)))


def pem_key(*parts: str) -> CoseKey:
    return CoseKey.from_pem(vector(*parts).read_bytes())


def cose_key_hex(*parts: str) -> CoseKey:
    return CoseKey.from_cose_key(vector_hex(*parts))


@dataclass(frozen=True)
class LibteepKeys:
    tam: CoseKey
    tam_ed25519: CoseKey
    agent: CoseKey
    verifier: CoseKey
    legacy_tam: CoseKey
    legacy_agent: CoseKey
    suit_signer: CoseKey


def libteep_keys() -> LibteepKeys:
    return LibteepKeys(
        tam=pem_key("libteep", "key", "tam_prime256v1.pem"),
        tam_ed25519=cose_key_hex("libteep", "key", "tam_ed25519_cose_key_private.cose_key.hex"),
        agent=pem_key("libteep", "key", "teep_agent_prime256v1.pem"),
        verifier=pem_key("libteep", "key", "verifier_prime256v1.pem"),
        legacy_tam=pem_key("libteep", "key", "legacy_2022-06_tam_prime256v1_pub.pem"),
        legacy_agent=pem_key("libteep", "key", "legacy_2022-06_teep_agent_prime256v1_pub.pem"),
        suit_signer=pem_key("teep-protocol", "E_suit_signing_key_private.pem"),
    )

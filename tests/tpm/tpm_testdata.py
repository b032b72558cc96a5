"""Real quote bundles from ../shared/tpm and a software AK that signs synthetic quotes."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import shared_path
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection, TpmsClockInfo
from veritee.tpm.pcrs import PcrBanks, build_tpm2tools_pcr_blob, parse_tpm2tools_pcr_blob
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import build_quote_attest, sign_attest
from veritee.tpm.signature import TpmtSignature

KEYLIME_NONCE = bytes.fromhex("db1db298db6d60e6385b7231743e9c3056a18003")


@dataclass(frozen=True)
class Bundle:
    """One quote with everything needed to verify it."""

    name: str
    ak_bytes: bytes  # as stored: TPM2B_PUBLIC, or TPMT_PUBLIC for the go-attestation dump
    ak: TpmtPublic
    attest: bytes
    sig: bytes
    banks: PcrBanks
    nonce: bytes
    pcr_blob: bytes | None


def _read(path: Path) -> bytes:
    return path.read_bytes()


def e2e_bundle() -> Bundle:
    d = shared_path("tpm", "e2e-swtpm")
    blob = _read(d / "quote.pcrs")
    ak_bytes = _read(d / "ak.pub")
    return Bundle(
        "e2e-swtpm",
        ak_bytes,
        TpmtPublic.from_tpm2b(ak_bytes),
        _read(d / "quote.msg"),
        _read(d / "quote.sig"),
        parse_tpm2tools_pcr_blob(blob)[1],
        bytes.fromhex((d / "nonce.hex").read_text().strip()),
        blob,
    )


def keylime_bundle() -> Bundle:
    d = shared_path("tpm", "quotes", "keylime_tpm2tools_quote")
    blob = _read(d / "quotepcr.out")
    ak_bytes = _read(d / "ak.pub")
    return Bundle(
        "keylime",
        ak_bytes,
        TpmtPublic.from_tpm2b(ak_bytes),
        _read(d / "quote.out"),
        _read(d / "quotesig.out"),
        parse_tpm2tools_pcr_blob(blob)[1],
        KEYLIME_NONCE,
        blob,
    )


def windows_dump() -> dict[str, dict[str, object]]:
    path = shared_path("tpm", "quotes", "goattestation_windows_gcp_shielded_vm_dump.json")
    data: dict[str, dict[str, object]] = json.loads(path.read_text())
    return data


def b64(value: object) -> bytes:
    assert isinstance(value, str)
    return base64.b64decode(value)


def windows_bundle() -> Bundle:
    dump = windows_dump()
    pcrs = dump["Log"]["PCRs"]
    assert isinstance(pcrs, list)
    # go-attestation stores Go crypto.Hash values: 3 is SHA1, 5 is SHA256.
    go_hash = {3: HashAlg.SHA1, 5: HashAlg.SHA256}
    banks: PcrBanks = {}
    for entry in pcrs:
        banks.setdefault(go_hash[entry["DigestAlg"]], {})[entry["Index"]] = b64(entry["Digest"])
    ak_bytes = b64(dump["AK"]["Public"])
    return Bundle(
        "windows-gcp",
        ak_bytes,
        TpmtPublic.unpack(ak_bytes),
        b64(dump["Quote"]["Quote"]),
        b64(dump["Quote"]["Signature"]),
        banks,
        b64(dump["Quote"]["Nonce"]),
        None,
    )


def read_pcrs_yaml(path: Path) -> PcrBanks:
    """tpm2_pcrread's YAML (bank: then `index : 0xHEX` lines), read as text: YAML 1.1 would turn 0x... into ints."""
    banks: PcrBanks = {}
    bank: dict[int, bytes] | None = None
    for line in path.read_text().splitlines():
        header = re.fullmatch(r"\s*(\w+):\s*", line)
        if header:
            bank = banks.setdefault(HashAlg.from_label(header.group(1)), {})
            continue
        value = re.fullmatch(r"\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*", line)
        if value and bank is not None:
            bank[int(value.group(1))] = bytes.fromhex(value.group(2))
    return banks


# --- software AK --------------------------------------------------------------------------------------------
@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(curve_name: str = "secp256r1") -> ec.EllipticCurvePrivateKey:
    curves: dict[str, ec.EllipticCurve] = {
        "secp256r1": ec.SECP256R1(),
        "secp384r1": ec.SECP384R1(),
        "secp521r1": ec.SECP521R1(),
    }
    return ec.generate_private_key(curves[curve_name])


SELECTION = PcrSelection.of(HashAlg.SHA256, [0, 1, 2, 3, 4, 5, 6, 7, 10])
BANKS: PcrBanks = {HashAlg.SHA256: {i: bytes([i]) * 32 for i in range(24)}}


def software_quote(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    nonce: bytes = b"nonce-1234",
    clock: TpmsClockInfo | None = None,
    hash_alg: HashAlg = HashAlg.SHA256,
    selections: tuple[PcrSelection, ...] = (SELECTION,),
    banks: PcrBanks | None = None,
) -> tuple[TpmtPublic, bytes, TpmtSignature, bytes]:
    """(AK public area, TPMS_ATTEST, signature, tpm2-tools PCR blob) signed in software."""
    values = BANKS if banks is None else banks
    ak = TpmtPublic.from_public_key(key.public_key(), scheme_hash=hash_alg)
    attest = build_quote_attest(
        qualified_signer=ak.name(),
        selections=selections,
        banks=values,
        nonce=nonce,
        hash_alg=hash_alg,
        clock_info=clock or TpmsClockInfo(clock=5000, reset_count=3, restart_count=1, safe=True),
        firmware_version=0x2019_0306_0001_0000,
    )
    sig = sign_attest(key, attest, hash_alg=hash_alg)
    return ak, attest, sig, build_tpm2tools_pcr_blob(selections, values)

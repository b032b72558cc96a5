"""Independent checks for device tests: tiny struct-based TPM parsers and verification with `cryptography` only.

Deliberately separate from veritee's own parsers (and from tpm2-pytss), so a quote is verified by code that shares
nothing with the code that produced it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

TPM_GENERATED = 0xFF544347
ST_ATTEST_QUOTE = 0x8018
ALG_RSA, ALG_ECC, ALG_NULL, ALG_RSASSA, ALG_ECDSA, ALG_SHA256 = 0x0001, 0x0023, 0x0010, 0x0014, 0x0018, 0x000B
HASH_NAMES = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), "truncated"
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def done(self) -> None:
        assert self.pos == len(self.data), f"{len(self.data) - self.pos} trailing bytes"


@dataclass
class SigningPublic:
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    name_alg: int
    attributes: int
    scheme: int
    scheme_hash: int
    area: bytes

    @property
    def name(self) -> bytes:
        return struct.pack(">H", self.name_alg) + hashlib.new(HASH_NAMES[self.name_alg], self.area).digest()


def parse_signing_public(tpm2b_public: bytes) -> SigningPublic:
    outer = Cursor(tpm2b_public)
    area = outer.tpm2b()
    outer.done()
    c = Cursor(area)
    kind, name_alg, attributes = c.u16(), c.u16(), c.u32()
    c.tpm2b()  # authPolicy
    assert c.u16() == ALG_NULL, "a signing key has no symmetric algorithm"
    scheme = c.u16()
    scheme_hash = c.u16()
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if kind == ALG_RSA:
        c.u16()  # keyBits
        exponent = c.u32() or 65537
        key = rsa.RSAPublicNumbers(exponent, int.from_bytes(c.tpm2b(), "big")).public_key()
    else:
        assert kind == ALG_ECC
        curve = {0x0003: ec.SECP256R1(), 0x0004: ec.SECP384R1()}[c.u16()]
        assert c.u16() == ALG_NULL  # kdf
        x, y = int.from_bytes(c.tpm2b(), "big"), int.from_bytes(c.tpm2b(), "big")
        key = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    c.done()
    return SigningPublic(key, name_alg, attributes, scheme, scheme_hash, area)


@dataclass
class QuoteInfo:
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: int
    firmware_version: int
    selection: list[tuple[str, list[int]]]
    pcr_digest: bytes


def parse_quote(attest: bytes) -> QuoteInfo:
    c = Cursor(attest)
    assert c.u32() == TPM_GENERATED
    assert c.u16() == ST_ATTEST_QUOTE
    signer, extra = c.tpm2b(), c.tpm2b()
    clock, reset, restart, safe = c.u64(), c.u32(), c.u32(), c.u8()
    firmware = c.u64()
    selection = []
    for _ in range(c.u32()):
        alg = HASH_NAMES[c.u16()]
        bitmap = c.take(c.u8())
        selection.append((alg, [8 * i + b for i, byte in enumerate(bitmap) for b in range(8) if byte >> b & 1]))
    digest = c.tpm2b()
    c.done()
    return QuoteInfo(signer, extra, clock, reset, restart, safe, firmware, selection, digest)


def verify_quote_signature(public: SigningPublic, attest: bytes, signature: bytes) -> None:
    """Raises cryptography's InvalidSignature (or AssertionError for a malformed TPMT_SIGNATURE)."""
    c = Cursor(signature)
    sig_alg, hash_alg = c.u16(), c.u16()
    assert hash_alg == ALG_SHA256
    if sig_alg == ALG_RSASSA:
        assert isinstance(public.key, rsa.RSAPublicKey)
        raw = c.tpm2b()
        c.done()
        public.key.verify(raw, attest, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert sig_alg == ALG_ECDSA and isinstance(public.key, ec.EllipticCurvePublicKey)
        r, s = int.from_bytes(c.tpm2b(), "big"), int.from_bytes(c.tpm2b(), "big")
        c.done()
        public.key.verify(encode_dss_signature(r, s), attest, ec.ECDSA(hashes.SHA256()))


def composite(pcrs: dict[str, dict[int, bytes]], alg: str = "sha256") -> bytes:
    h = hashlib.new(alg)
    for bank in pcrs.values():
        for index in sorted(bank):
            h.update(bank[index])
    return h.digest()


def tools_pcr_file(pcrs: dict[str, dict[int, bytes]]) -> bytes:
    """PCR values in tpm2-tools' "serialized" -f format (what ``tpm2_quote -o`` writes): raw little-endian C structs.

    TPML_PCR_SELECTION (count, 16 x {hash u16, sizeofSelect u8, pcrSelect[4], pad}), then the number of TPML_DIGEST
    blocks, then each TPML_DIGEST (count, 8 x {size u16, buffer[64]}).
    """
    ids = {name: alg for alg, name in HASH_NAMES.items()}
    selection = struct.pack("<I", len(pcrs))
    for bank, values in pcrs.items():
        bitmap = bytearray(4)
        for index in values:
            bitmap[index // 8] |= 1 << (index % 8)
        selection += struct.pack("<HB4sx", ids[bank], 3, bytes(bitmap))
    selection += b"\x00" * (4 + 16 * 8 - len(selection))
    flat = [values[i] for values in pcrs.values() for i in sorted(values)]
    blocks = [flat[i : i + 8] for i in range(0, len(flat), 8)]
    out = selection + struct.pack("<I", len(blocks))
    for block in blocks:
        out += struct.pack("<I", len(block))
        out += b"".join(struct.pack("<H", len(d)) + d.ljust(64, b"\x00") for d in block)
        out += b"\x00" * (66 * (8 - len(block)))
    return out

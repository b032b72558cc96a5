"""TPM2_MakeCredential in software: the verifier's half of credential activation (pure Python, no TPM, no I/O).

The verifier binds a secret to an AK *name* and encrypts it to an EK public key (TPM 2.0 Part 1, §24 "Credential
Protection"). Only a TPM that holds that EK's private key *and* has an object with that name loaded can recover it
with TPM2_ActivateCredential.

* seed: a random value of the EK nameAlg's digest size, encrypted to the EK: RSA-OAEP (hash = EK nameAlg, label
  ``"IDENTITY\\0"``) for an RSA EK, or one-pass ECDH with an ephemeral key plus KDFe(``"IDENTITY"``) for an ECC EK.
* symKey = KDFa(nameAlg, seed, ``"STORAGE"``, akName, "", EK symmetric key bits); encIdentity = AES-CFB(symKey, IV=0,
  TPM2B_DIGEST(secret)).
* hmacKey = KDFa(nameAlg, seed, ``"INTEGRITY"``, "", "", digest bits); outerHMAC = HMAC(hmacKey, encIdentity || akName).

Outputs are marshaled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET (each with its 2-byte size prefix), exactly what
TPM2_ActivateCredential takes.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from veritee.errors import DecodeError, KeyFormatError, UnsupportedAlgorithmError, ValidationError
from veritee.tpm.alg import HashAlg

__all__ = [
    "EncryptionKey",
    "ObjectAttribute",
    "kdfa",
    "kdfe",
    "make_credential",
    "parse_encryption_key",
]

_ALG_RSA = 0x0001
_ALG_AES = 0x0006
_ALG_NULL = 0x0010
_ALG_ECC = 0x0023
_ALG_CFB = 0x0043
_ALG_ECDAA = 0x001A


class ObjectAttribute(IntFlag):
    """TPMA_OBJECT bits (TPM 2.0 Part 2, §8.3)."""

    FIXED_TPM = 0x00000002
    ST_CLEAR = 0x00000004
    FIXED_PARENT = 0x00000010
    SENSITIVE_DATA_ORIGIN = 0x00000020
    USER_WITH_AUTH = 0x00000040
    ADMIN_WITH_POLICY = 0x00000080
    NO_DA = 0x00000400
    ENCRYPTED_DUPLICATION = 0x00000800
    RESTRICTED = 0x00010000
    DECRYPT = 0x00020000
    SIGN_ENCRYPT = 0x00040000


class EccCurve(IntEnum):
    """TPM_ECC_CURVE values supported for an ECC EK."""

    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005

    @property
    def curve(self) -> ec.EllipticCurve:
        return {
            EccCurve.NIST_P256: ec.SECP256R1(),
            EccCurve.NIST_P384: ec.SECP384R1(),
            EccCurve.NIST_P521: ec.SECP521R1(),
        }[self]

    @property
    def size(self) -> int:
        """Coordinate size in bytes."""
        return {EccCurve.NIST_P256: 32, EccCurve.NIST_P384: 48, EccCurve.NIST_P521: 66}[self]


@dataclass(frozen=True)
class EncryptionKey:
    """The parts of a storage key's TPMT_PUBLIC (typically an EK) that credential protection needs."""

    name_alg: HashAlg
    attributes: ObjectAttribute
    auth_policy: bytes
    symmetric_bits: int
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    curve: EccCurve | None
    public_area: bytes
    ecc_x: bytes = b""

    @property
    def name(self) -> bytes:
        """The object's TPM name: nameAlg (2 bytes) || H_nameAlg(TPMT_PUBLIC)."""
        return struct.pack(">H", self.name_alg) + self.name_alg.digest(self.public_area)


class _Reader:
    """Bounds-checked big-endian reader; every failure is a DecodeError with the offset."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._base = base

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def take(self, n: int, what: str) -> bytes:
        if self._pos + n > len(self._data):
            raise DecodeError(
                f"truncated {what}: need {n} bytes, have {len(self._data) - self._pos}", offset=self.offset
            )
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u16(self, what: str) -> int:
        value: int = struct.unpack(">H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack(">I", self.take(4, what))[0]
        return value

    def tpm2b(self, what: str) -> bytes:
        return self.take(self.u16(f"{what} size"), what)

    def end(self, what: str) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{len(self._data) - self._pos} trailing bytes after {what}", offset=self.offset)


def parse_encryption_key(tpm2b_public: bytes) -> EncryptionKey:
    """Parse a marshaled TPM2B_PUBLIC of an RSA or ECC storage key (restricted decrypt, AES-CFB), e.g. an EK.

    Raises DecodeError for malformed bytes, UnsupportedAlgorithmError for algorithms outside RSA/ECC + AES-CFB,
    KeyFormatError for a key that cannot protect a credential (not a restricted decryption key, bad key material).
    """
    outer = _Reader(tpm2b_public)
    area = outer.tpm2b("TPM2B_PUBLIC")
    outer.end("TPM2B_PUBLIC")
    r = _Reader(area, base=2)
    obj_type = r.u16("TPMT_PUBLIC.type")
    name_alg = HashAlg.from_id(r.u16("TPMT_PUBLIC.nameAlg"))
    attributes = ObjectAttribute(r.u32("TPMT_PUBLIC.objectAttributes"))
    auth_policy = r.tpm2b("TPMT_PUBLIC.authPolicy")
    if obj_type not in (_ALG_RSA, _ALG_ECC):
        raise UnsupportedAlgorithmError(
            f"TPM object type 0x{obj_type:04x} cannot protect a credential (RSA or ECC only)"
        )
    sym_alg = r.u16("symmetric.algorithm")
    if sym_alg != _ALG_AES:
        raise UnsupportedAlgorithmError(f"storage key symmetric algorithm 0x{sym_alg:04x} is not AES")
    sym_bits = r.u16("symmetric.keyBits")
    sym_mode = r.u16("symmetric.mode")
    if sym_bits not in (128, 192, 256) or sym_mode != _ALG_CFB:
        raise UnsupportedAlgorithmError(f"storage key symmetric AES-{sym_bits} mode 0x{sym_mode:04x} is not AES-CFB")
    scheme = r.u16("scheme.scheme")
    if scheme != _ALG_NULL:
        raise KeyFormatError(f"a storage key must have a NULL scheme, not 0x{scheme:04x}")
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    curve: EccCurve | None = None
    if obj_type == _ALG_RSA:
        key_bits = r.u16("rsaDetail.keyBits")
        exponent = r.u32("rsaDetail.exponent") or 65537
        modulus = r.tpm2b("unique.rsa")
        if len(modulus) * 8 != key_bits or key_bits < 1024 or not modulus[0] & 0x80:
            raise KeyFormatError(f"RSA modulus of {len(modulus)} bytes does not match keyBits {key_bits}")
        try:
            key = rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "big")).public_key()
        except ValueError as exc:
            raise KeyFormatError(f"invalid RSA public key: {exc}") from None
    else:
        curve_id = r.u16("eccDetail.curveID")
        try:
            curve = EccCurve(curve_id)
        except ValueError:
            raise UnsupportedAlgorithmError(f"ECC curve 0x{curve_id:04x} is not supported") from None
        kdf = r.u16("eccDetail.kdf.scheme")
        if kdf != _ALG_NULL:
            r.u16("eccDetail.kdf.hashAlg")
        x = r.tpm2b("unique.ecc.x")  # kept as stored: KDFe uses the EK's x exactly as in its public area
        y = r.tpm2b("unique.ecc.y")
        if len(x) > curve.size or len(y) > curve.size:
            raise KeyFormatError(f"ECC point coordinates longer than {curve.size} bytes")
        try:
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve.curve
            ).public_key()
        except ValueError as exc:
            raise KeyFormatError(f"invalid ECC public point: {exc}") from None
    r.end("TPMT_PUBLIC")
    required = ObjectAttribute.RESTRICTED | ObjectAttribute.DECRYPT
    if attributes & required != required or attributes & ObjectAttribute.SIGN_ENCRYPT:
        raise KeyFormatError(f"not a restricted decryption (storage) key: attributes 0x{int(attributes):08x}")
    return EncryptionKey(name_alg, attributes, auth_policy, sym_bits, key, curve, area, x if curve else b"")


def _hmac(alg: HashAlg, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, alg.new().name)


def _label(label: bytes) -> bytes:
    return label if label.endswith(b"\x00") else label + b"\x00"


def kdfa(alg: HashAlg, key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """KDFa (TPM 2.0 Part 1, §11.4.10.2): SP 800-108 counter-mode KDF with HMAC; label gets a NUL if it lacks one."""
    if bits <= 0 or bits % 8:
        raise ValidationError(f"KDFa output must be a positive whole number of bytes, not {bits} bits")
    out = b""
    counter = 0
    suffix = _label(label) + context_u + context_v + struct.pack(">I", bits)
    while len(out) * 8 < bits:
        counter += 1
        out += _hmac(alg, key, struct.pack(">I", counter) + suffix)
    return out[: bits // 8]


def kdfe(alg: HashAlg, z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int) -> bytes:
    """KDFe (TPM 2.0 Part 1, §11.4.10.3): SP 800-56A concatenation KDF over the ECDH shared x coordinate Z."""
    if bits <= 0 or bits % 8:
        raise ValidationError(f"KDFe output must be a positive whole number of bytes, not {bits} bits")
    out = b""
    counter = 0
    suffix = _label(label) + party_u + party_v
    while len(out) * 8 < bits:
        counter += 1
        out += alg.digest(struct.pack(">I", counter) + z + suffix)
    return out[: bits // 8]


def _tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _check_name(ak_name: bytes) -> None:
    if len(ak_name) < 2:
        raise ValidationError(f"object name of {len(ak_name)} bytes is too short")
    alg = HashAlg.from_id(int.from_bytes(ak_name[:2], "big"))
    if len(ak_name) != 2 + alg.digest_size:
        raise ValidationError(f"object name with {alg.label} must be {2 + alg.digest_size} bytes, not {len(ak_name)}")


def _encrypt_seed(ek: EncryptionKey) -> tuple[bytes, bytes]:
    """A fresh seed and its encryption to the EK (the TPM2B_ENCRYPTED_SECRET payload)."""
    digest_size = ek.name_alg.digest_size
    if isinstance(ek.key, rsa.RSAPublicKey):
        seed = os.urandom(digest_size)
        hash_obj = _cryptography_hash(ek.name_alg)
        oaep = padding.OAEP(mgf=padding.MGF1(hash_obj), algorithm=hash_obj, label=b"IDENTITY\x00")
        return seed, ek.key.encrypt(seed, oaep)
    if ek.curve is None:  # parse_encryption_key always sets the curve of an ECC key
        raise KeyFormatError("ECC key without a curve")
    size = ek.curve.size
    ephemeral = ec.generate_private_key(ek.curve.curve)
    z = ephemeral.exchange(ec.ECDH(), ek.key).rjust(size, b"\x00")
    eph = ephemeral.public_key().public_numbers()
    eph_x, eph_y = eph.x.to_bytes(size, "big"), eph.y.to_bytes(size, "big")
    seed = kdfe(ek.name_alg, z, b"IDENTITY", eph_x, ek.ecc_x, digest_size * 8)
    return seed, _tpm2b(eph_x) + _tpm2b(eph_y)


def _cryptography_hash(alg: HashAlg) -> hashes.HashAlgorithm:
    table: dict[HashAlg, hashes.HashAlgorithm] = {
        HashAlg.SHA1: hashes.SHA1(),
        HashAlg.SHA256: hashes.SHA256(),
        HashAlg.SHA384: hashes.SHA384(),
        HashAlg.SHA512: hashes.SHA512(),
    }
    try:
        return table[alg]
    except KeyError:
        raise UnsupportedAlgorithmError(f"{alg.label} cannot be used for RSA-OAEP here") from None


def make_credential(ek_public: bytes, ak_name: bytes, secret: bytes) -> tuple[bytes, bytes]:
    """Protect ``secret`` for the TPM holding ``ek_public`` (marshaled TPM2B_PUBLIC), bound to the object ``ak_name``.

    ``ak_name`` is the AK's TPM name (nameAlg || digest). ``secret`` is 1..digest-size-of-EK-nameAlg bytes (the
    TPM rejects longer credentials). Returns (TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET), both marshaled with sizes.
    """
    ek = parse_encryption_key(ek_public)
    _check_name(ak_name)
    digest_size = ek.name_alg.digest_size
    if not 1 <= len(secret) <= digest_size:
        raise ValidationError(
            f"credential must be 1..{digest_size} bytes for a {ek.name_alg.label} EK, not {len(secret)}"
        )
    seed, encrypted_seed = _encrypt_seed(ek)
    sym_key = kdfa(ek.name_alg, seed, b"STORAGE", ak_name, b"", ek.symmetric_bits)
    encryptor = Cipher(algorithms.AES(sym_key), CFB(b"\x00" * 16)).encryptor()
    enc_identity = encryptor.update(_tpm2b(secret)) + encryptor.finalize()
    hmac_key = kdfa(ek.name_alg, seed, b"INTEGRITY", b"", b"", digest_size * 8)
    outer_hmac = _hmac(ek.name_alg, hmac_key, enc_identity + ak_name)
    return _tpm2b(_tpm2b(outer_hmac) + enc_identity), _tpm2b(encrypted_seed)

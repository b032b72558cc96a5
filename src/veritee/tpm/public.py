"""TPMT_PUBLIC (TPM 2.0 Part 2, 12.2): the public area of a TPM object, its Name and its key."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from veritee.errors import DecodeError, EncodeError, KeyFormatError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg
from veritee.tpm.constants import (
    AK_ATTRIBUTES,
    ECC_CURVE_BYTES,
    HASH_ALGS,
    MAX_DIGEST,
    MAX_ECC_KEY_BYTES,
    MAX_PUBLIC,
    MAX_RSA_KEY_BYTES,
    Hierarchy,
    ObjectAttributes,
    TpmAlgId,
    TpmEccCurve,
)
from veritee.tpm.marshal import Reader, Writer, lookup_table, to_bytes

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""The key types a TPM attestation key can have."""

_ALGS = lookup_table(TpmAlgId)
_CURVES = lookup_table(TpmEccCurve)
_A = TpmAlgId

_NAME_ALGS = HASH_ALGS | {_A.NULL}
_OBJECT_TYPES = frozenset({_A.RSA, _A.KEYEDHASH, _A.ECC, _A.SYMCIPHER})
_SYM_OBJECT_ALGS = frozenset({_A.AES, _A.SM4, _A.CAMELLIA, _A.NULL})
_SYM_MODES = frozenset({_A.CTR, _A.OFB, _A.CBC, _A.CFB, _A.ECB, _A.NULL})
_RSA_SCHEMES = frozenset({_A.RSASSA, _A.RSAPSS, _A.RSAES, _A.OAEP, _A.NULL})
_ECC_SCHEMES = frozenset({_A.ECDSA, _A.ECDAA, _A.SM2, _A.ECSCHNORR, _A.ECDH, _A.ECMQV, _A.NULL})
_KDF_SCHEMES = frozenset({_A.MGF1, _A.KDF1_SP800_56A, _A.KDF2, _A.KDF1_SP800_108, _A.NULL})
_KEYEDHASH_SCHEMES = frozenset({_A.HMAC, _A.XOR, _A.NULL})
_NO_DETAILS = frozenset({_A.NULL, _A.RSAES})  # schemes whose details are TPMS_EMPTY

_CRYPTO_CURVES: dict[TpmEccCurve, type[ec.EllipticCurve]] = {
    TpmEccCurve.NIST_P192: ec.SECP192R1,
    TpmEccCurve.NIST_P224: ec.SECP224R1,
    TpmEccCurve.NIST_P256: ec.SECP256R1,
    TpmEccCurve.NIST_P384: ec.SECP384R1,
    TpmEccCurve.NIST_P521: ec.SECP521R1,
}
_CURVE_BY_NAME = {cls().name: curve for curve, cls in _CRYPTO_CURVES.items()}


@dataclass(frozen=True, slots=True)
class SymDefObject:
    """TPMT_SYM_DEF_OBJECT: the symmetric algorithm of a storage key (NULL for signing keys)."""

    algorithm: TpmAlgId = TpmAlgId.NULL
    key_bits: int = 0
    mode: TpmAlgId = TpmAlgId.NULL

    @classmethod
    def read(cls, r: Reader) -> SymDefObject:
        algorithm = r.enum(TpmAlgId, _ALGS, "symmetric.algorithm", _SYM_OBJECT_ALGS)
        if algorithm is TpmAlgId.NULL:
            return cls()
        key_bits = r.u16("symmetric.keyBits")
        mode = r.enum(TpmAlgId, _ALGS, "symmetric.mode", _SYM_MODES)
        return cls(algorithm, key_bits, mode)

    def write(self, w: Writer) -> None:
        w.u16(self.algorithm)
        if self.algorithm is not TpmAlgId.NULL:
            w.u16(self.key_bits)
            w.u16(self.mode)


@dataclass(frozen=True, slots=True)
class Scheme:
    """TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME / TPMT_KEYEDHASH_SCHEME.

    ``hash_alg`` is NULL for schemes without details; ``count`` is used by ECDAA only, ``kdf`` by XOR only.
    """

    scheme: TpmAlgId = TpmAlgId.NULL
    hash_alg: TpmAlgId = TpmAlgId.NULL
    count: int = 0
    kdf: TpmAlgId = TpmAlgId.NULL

    @classmethod
    def read(cls, r: Reader, allowed: frozenset[TpmAlgId], what: str) -> Scheme:
        scheme = r.enum(TpmAlgId, _ALGS, f"{what}.scheme", allowed)
        if scheme in _NO_DETAILS:
            return cls(scheme)
        hash_alg = r.enum(TpmAlgId, _ALGS, f"{what}.hashAlg", HASH_ALGS)
        if scheme is TpmAlgId.ECDAA:
            return cls(scheme, hash_alg, count=r.u16(f"{what}.count"))
        if scheme is TpmAlgId.XOR:
            return cls(scheme, hash_alg, kdf=r.enum(TpmAlgId, _ALGS, f"{what}.kdf", _KDF_SCHEMES))
        return cls(scheme, hash_alg)

    def write(self, w: Writer) -> None:
        w.u16(self.scheme)
        if self.scheme in _NO_DETAILS:
            return
        w.u16(self.hash_alg)
        if self.scheme is TpmAlgId.ECDAA:
            w.u16(self.count)
        elif self.scheme is TpmAlgId.XOR:
            w.u16(self.kdf)


@dataclass(frozen=True, slots=True)
class RsaParms:
    """TPMS_RSA_PARMS. ``exponent`` is the marshalled value: 0 means the default 65537 (see ``public_exponent``)."""

    symmetric: SymDefObject
    scheme: Scheme
    key_bits: int
    exponent: int = 0

    @property
    def public_exponent(self) -> int:
        return self.exponent or 65537


@dataclass(frozen=True, slots=True)
class EccParms:
    """TPMS_ECC_PARMS."""

    symmetric: SymDefObject
    scheme: Scheme
    curve: TpmEccCurve
    kdf: Scheme = field(default_factory=Scheme)


@dataclass(frozen=True, slots=True)
class KeyedHashParms:
    """TPMS_KEYEDHASH_PARMS (HMAC keys and sealed data objects)."""

    scheme: Scheme


@dataclass(frozen=True, slots=True)
class SymCipherParms:
    """TPMS_SYMCIPHER_PARMS."""

    symmetric: SymDefObject


@dataclass(frozen=True, slots=True)
class EccPoint:
    """TPMS_ECC_POINT (unique field of an ECC key)."""

    x: bytes
    y: bytes


Parameters = RsaParms | EccParms | KeyedHashParms | SymCipherParms
Unique = bytes | EccPoint


@dataclass(frozen=True, slots=True)
class TpmtPublic:
    """TPMT_PUBLIC. ``raw`` is the marshalled area (kept from the input, or marshalled when built in code)."""

    type: TpmAlgId
    name_alg: TpmAlgId
    object_attributes: ObjectAttributes
    auth_policy: bytes
    parameters: Parameters
    unique: Unique
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", self._marshal())

    # --- decoding ---------------------------------------------------------------------------------------------
    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> TpmtPublic:
        """Decode a TPMT_PUBLIC that fills ``data`` exactly."""
        buf = to_bytes(data)
        r = Reader(buf)
        public = cls.read(r)
        r.finish("TPMT_PUBLIC")
        return public

    @classmethod
    def from_tpm2b(cls, data: bytes | bytearray | memoryview) -> TpmtPublic:
        """Decode a TPM2B_PUBLIC (2-byte size, then the TPMT_PUBLIC) that fills ``data`` exactly."""
        buf = to_bytes(data)
        r = Reader(buf)
        size = r.u16("TPM2B_PUBLIC size")
        if size != len(buf) - 2:
            raise DecodeError(f"TPM2B_PUBLIC size {size} does not match the {len(buf) - 2} bytes that follow", offset=0)
        if size > MAX_PUBLIC:
            raise DecodeError(f"TPM2B_PUBLIC size {size} exceeds the maximum {MAX_PUBLIC}", offset=0)
        public = cls.read(r)
        r.finish("TPM2B_PUBLIC")
        return public

    @classmethod
    def read(cls, r: Reader) -> TpmtPublic:
        start = r.pos
        obj_type = r.enum(TpmAlgId, _ALGS, "type", _OBJECT_TYPES)
        name_alg = r.enum(TpmAlgId, _ALGS, "nameAlg", _NAME_ALGS)
        attributes = ObjectAttributes(r.u32("objectAttributes"))
        auth_policy = r.tpm2b("authPolicy", MAX_DIGEST)
        parameters: Parameters
        unique: Unique
        if obj_type is TpmAlgId.RSA:
            symmetric = SymDefObject.read(r)
            scheme = Scheme.read(r, _RSA_SCHEMES, "scheme")
            key_bits = r.u16("keyBits")
            parameters = RsaParms(symmetric, scheme, key_bits, r.u32("exponent"))
            unique = r.tpm2b("unique.rsa", MAX_RSA_KEY_BYTES)
        elif obj_type is TpmAlgId.ECC:
            symmetric = SymDefObject.read(r)
            scheme = Scheme.read(r, _ECC_SCHEMES, "scheme")
            curve = r.enum(TpmEccCurve, _CURVES, "curveID")
            parameters = EccParms(symmetric, scheme, curve, Scheme.read(r, _KDF_SCHEMES, "kdf"))
            x = r.tpm2b("unique.ecc.x", MAX_ECC_KEY_BYTES)
            unique = EccPoint(x, r.tpm2b("unique.ecc.y", MAX_ECC_KEY_BYTES))
        elif obj_type is TpmAlgId.KEYEDHASH:
            parameters = KeyedHashParms(Scheme.read(r, _KEYEDHASH_SCHEMES, "scheme"))
            unique = r.tpm2b("unique.keyedHash", MAX_DIGEST)
        else:
            parameters = SymCipherParms(SymDefObject.read(r))
            unique = r.tpm2b("unique.sym", MAX_DIGEST)
        return cls(obj_type, name_alg, attributes, auth_policy, parameters, unique, r.data[start : r.pos])

    # --- encoding ---------------------------------------------------------------------------------------------
    def pack(self) -> bytes:
        """The marshalled TPMT_PUBLIC."""
        return self.raw

    def to_tpm2b(self) -> bytes:
        """The TPM2B_PUBLIC form (what `tpm2_createak -u` writes)."""
        return len(self.raw).to_bytes(2, "big") + self.raw

    def _marshal(self) -> bytes:
        w = Writer()
        w.u16(self.type)
        w.u16(self.name_alg)
        w.u32(int(self.object_attributes))
        w.tpm2b(self.auth_policy, MAX_DIGEST, "authPolicy")
        p, u = self.parameters, self.unique
        if self.type is TpmAlgId.RSA and isinstance(p, RsaParms) and isinstance(u, bytes):
            p.symmetric.write(w)
            p.scheme.write(w)
            w.u16(p.key_bits)
            w.u32(p.exponent)
            w.tpm2b(u, MAX_RSA_KEY_BYTES, "unique.rsa")
        elif self.type is TpmAlgId.ECC and isinstance(p, EccParms) and isinstance(u, EccPoint):
            p.symmetric.write(w)
            p.scheme.write(w)
            w.u16(p.curve)
            p.kdf.write(w)
            w.tpm2b(u.x, MAX_ECC_KEY_BYTES, "unique.ecc.x")
            w.tpm2b(u.y, MAX_ECC_KEY_BYTES, "unique.ecc.y")
        elif self.type is TpmAlgId.KEYEDHASH and isinstance(p, KeyedHashParms) and isinstance(u, bytes):
            p.scheme.write(w)
            w.tpm2b(u, MAX_DIGEST, "unique.keyedHash")
        elif self.type is TpmAlgId.SYMCIPHER and isinstance(p, SymCipherParms) and isinstance(u, bytes):
            p.symmetric.write(w)
            w.tpm2b(u, MAX_DIGEST, "unique.sym")
        else:
            raise EncodeError(f"parameters {type(p).__name__} and unique do not fit an object of type {self.type.name}")
        return w.getvalue()

    # --- derived values ---------------------------------------------------------------------------------------
    def name(self) -> bytes:
        """The object's Name: nameAlg (2 bytes) || H_nameAlg(marshalled public area)."""
        if self.name_alg is TpmAlgId.NULL:
            raise UnsupportedAlgorithmError("an object with nameAlg NULL has no Name computed from its public area")
        alg = HashAlg.from_id(self.name_alg)
        return int(alg).to_bytes(2, "big") + alg.digest(self.raw)

    @property
    def signing_scheme(self) -> Scheme:
        """The key's scheme (NULL when the key leaves the scheme to each command)."""
        p = self.parameters
        if isinstance(p, RsaParms | EccParms | KeyedHashParms):
            return p.scheme
        return Scheme()

    def public_key(self) -> PublicKey:
        """The key as a ``cryptography`` public key (RSA or ECC areas only). Loaded keys are cached per area."""
        return _load_public_key(self)

    def _public_key(self) -> PublicKey:
        p, u = self.parameters, self.unique
        if isinstance(p, RsaParms) and isinstance(u, bytes):
            if len(u) * 8 != p.key_bits:
                raise KeyFormatError(f"RSA modulus is {len(u) * 8} bits but keyBits says {p.key_bits}")
            try:
                return rsa.RSAPublicNumbers(p.public_exponent, int.from_bytes(u, "big")).public_key()
            except ValueError as exc:
                raise KeyFormatError(f"invalid RSA public key: {exc}") from exc
        if isinstance(p, EccParms) and isinstance(u, EccPoint):
            curve_cls = _CRYPTO_CURVES.get(p.curve)
            if curve_cls is None:
                raise UnsupportedAlgorithmError(f"ECC curve {p.curve.name} is not supported")
            size = ECC_CURVE_BYTES[p.curve]
            if len(u.x) > size or len(u.y) > size:
                raise KeyFormatError(f"ECC point coordinates longer than {size} bytes for {p.curve.name}")
            point = b"\x04" + u.x.rjust(size, b"\x00") + u.y.rjust(size, b"\x00")
            try:
                return ec.EllipticCurvePublicKey.from_encoded_point(curve_cls(), point)
            except ValueError as exc:
                raise KeyFormatError(f"invalid ECC public key: {exc}") from exc
        raise KeyFormatError(f"a {self.type.name} object has no asymmetric public key")

    # --- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_public_key(
        cls,
        key: PublicKey,
        *,
        scheme: TpmAlgId | None = None,
        scheme_hash: HashAlg = HashAlg.SHA256,
        name_alg: HashAlg = HashAlg.SHA256,
        object_attributes: ObjectAttributes = AK_ATTRIBUTES,
        auth_policy: bytes = b"",
    ) -> TpmtPublic:
        """The public area a TPM would report for ``key`` created as an attestation key.

        Defaults match `tpm2_createak -G rsa|ecc -g sha256 -s rsassa|ecdsa`: restricted signing key, RSASSA
        (RSA) or ECDSA (ECC) with SHA-256, nameAlg SHA-256, no auth policy, no symmetric algorithm.
        """
        if isinstance(key, rsa.RSAPublicKey):
            chosen = TpmAlgId.RSASSA if scheme is None else scheme
            if chosen not in _RSA_SCHEMES:
                raise UnsupportedAlgorithmError(f"{chosen.name} is not an RSA scheme")
            numbers = key.public_numbers()
            parms = RsaParms(
                SymDefObject(),
                _scheme(chosen, scheme_hash),
                key.key_size,
                0 if numbers.e == 65537 else numbers.e,
            )
            modulus = numbers.n.to_bytes((key.key_size + 7) // 8, "big")
            return cls(TpmAlgId.RSA, TpmAlgId(name_alg), object_attributes, auth_policy, parms, modulus)
        if isinstance(key, ec.EllipticCurvePublicKey):
            chosen = TpmAlgId.ECDSA if scheme is None else scheme
            if chosen not in _ECC_SCHEMES:
                raise UnsupportedAlgorithmError(f"{chosen.name} is not an ECC scheme")
            curve = _CURVE_BY_NAME.get(key.curve.name)
            if curve is None:
                raise UnsupportedAlgorithmError(f"curve {key.curve.name} has no TPM_ECC_CURVE")
            size = ECC_CURVE_BYTES[curve]
            encoded = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            ecc = EccParms(SymDefObject(), _scheme(chosen, scheme_hash), curve)
            point = EccPoint(encoded[1 : 1 + size], encoded[1 + size :])
            return cls(TpmAlgId.ECC, TpmAlgId(name_alg), object_attributes, auth_policy, ecc, point)
        raise KeyFormatError(f"a TPM attestation key cannot be a {type(key).__name__}")


@lru_cache(maxsize=4096)
def _load_public_key(public: TpmtPublic) -> PublicKey:
    return public._public_key()


def _scheme(scheme: TpmAlgId, hash_alg: HashAlg) -> Scheme:
    if scheme in _NO_DETAILS:
        return Scheme(scheme)
    return Scheme(scheme, TpmAlgId(hash_alg))


def qualified_name(parent: bytes | Hierarchy, name: bytes) -> bytes:
    """An object's qualified name (TPM 2.0 Part 1, 16.6): nameAlg || H_nameAlg(parent's QN || Name).

    ``parent`` is the parent's qualified name, or the hierarchy for a primary object (an AK made by
    `tpm2_createak` under the EK: ``qualified_name(qualified_name(Hierarchy.ENDORSEMENT, ek.name()), ak.name())``).
    This is what TPMS_ATTEST.qualifiedSigner holds.
    """
    if len(name) < 2:
        raise KeyFormatError("a Name has at least the 2-byte nameAlg")
    alg = HashAlg.from_id(int.from_bytes(name[:2], "big"))
    prefix = int(parent).to_bytes(4, "big") if isinstance(parent, Hierarchy) else parent
    return name[:2] + alg.digest(prefix + name)

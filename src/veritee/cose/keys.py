"""COSE keys (RFC 9052 §7, RFC 9053 §7) on top of ``cryptography`` key objects, and RFC 9679 thumbprints.

A :class:`CoseKey` wraps an already-loaded ``cryptography`` key (EC P-256/P-384/P-521, Ed25519, X25519) or the bytes of
a symmetric key, so signing and verifying never re-parse key material. The raw signature primitives live here too:
ECDSA signatures are the fixed-length ``r || s`` of RFC 9053 §2.1 and are produced deterministically (RFC 6979).
"""

from __future__ import annotations

import hmac as _hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from veritee import cbor
from veritee.cose.algorithms import AlgKind, Algorithm, Curve, KeyParam, KeyType
from veritee.errors import KeyFormatError, SignatureError, UnsupportedAlgorithmError

__all__ = ["CoseKey", "KeyObject", "PrivateKeyObject", "PublicKeyObject"]

PrivateKeyObject: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey
PublicKeyObject: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
KeyObject: TypeAlias = PrivateKeyObject | PublicKeyObject | bytes

_EC_CURVES: Final[dict[str, Curve]] = {"secp256r1": Curve.P256, "secp384r1": Curve.P384, "secp521r1": Curve.P521}
_CURVE_OBJ: Final[dict[Curve, ec.EllipticCurve]] = {
    Curve.P256: ec.SECP256R1(),
    Curve.P384: ec.SECP384R1(),
    Curve.P521: ec.SECP521R1(),
}
_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
# ECDSA parameter objects are immutable: build them once per hash.
_ECDSA_SIGN: Final[dict[str, ec.ECDSA]] = {n: ec.ECDSA(h, deterministic_signing=True) for n, h in _HASHES.items()}
_ECDSA_VERIFY: Final[dict[str, ec.ECDSA]] = {n: ec.ECDSA(h) for n, h in _HASHES.items()}
_MAC_TAG_LEN: Final[dict[Algorithm, int]] = {
    Algorithm.HMAC_256_64: 8,
    Algorithm.HMAC_256_256: 32,
    Algorithm.HMAC_384_384: 48,
    Algorithm.HMAC_512_512: 64,
}
_DEFAULT_SIGN_ALG: Final[dict[Curve, Algorithm]] = {
    Curve.P256: Algorithm.ESP256,
    Curve.P384: Algorithm.ESP384,
    Curve.P521: Algorithm.ESP512,
    Curve.Ed25519: Algorithm.Ed25519,
}


def _bstr(params: Mapping[Any, Any], label: int, what: str, size: int | None = None) -> bytes:
    value = params.get(label)
    if not isinstance(value, bytes):
        raise KeyFormatError(f"COSE_Key {what} (label {label}) must be a byte string")
    if size is not None and len(value) != size:
        raise KeyFormatError(f"COSE_Key {what} must be {size} bytes, not {len(value)}")
    return value


def _classify(key: KeyObject) -> tuple[KeyType, Curve | None, bool]:
    if isinstance(key, bytes):
        return KeyType.SYMMETRIC, None, True
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        curve = _EC_CURVES.get(key.curve.name)
        if curve is None:
            raise KeyFormatError(f"unsupported EC curve {key.curve.name}")
        return KeyType.EC2, curve, isinstance(key, ec.EllipticCurvePrivateKey)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyType.OKP, Curve.Ed25519, isinstance(key, ed25519.Ed25519PrivateKey)
    if isinstance(key, x25519.X25519PrivateKey | x25519.X25519PublicKey):
        return KeyType.OKP, Curve.X25519, isinstance(key, x25519.X25519PrivateKey)
    raise KeyFormatError(f"unsupported key object {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class CoseKey:
    """An immutable COSE key: a loaded ``cryptography`` key (or symmetric key bytes) plus optional ``kid``/``alg``.

    ``alg``, when set, restricts the key to that one algorithm (RFC 9052 §7.1).
    """

    key: KeyObject
    kid: bytes | None = None
    alg: Algorithm | None = None
    kty: KeyType = field(init=False, compare=False, repr=False)
    crv: Curve | None = field(init=False, compare=False, repr=False)
    is_private: bool = field(init=False, compare=False, repr=False)
    _public: PublicKeyObject | None = field(init=False, compare=False, repr=False)
    _cache: dict[str, Any] = field(init=False, compare=False, repr=False)  # public() and SHA-256 thumbprint

    def __post_init__(self) -> None:
        if self.kid is not None and not isinstance(self.kid, bytes):
            raise KeyFormatError("kid must be bytes")
        if self.alg is not None:
            object.__setattr__(self, "alg", Algorithm.from_id(self.alg))
        if isinstance(self.key, bytes) and not self.key:
            raise KeyFormatError("a symmetric key must not be empty")
        kty, crv, private = _classify(self.key)
        object.__setattr__(self, "kty", kty)
        object.__setattr__(self, "crv", crv)
        object.__setattr__(self, "is_private", private)
        pub: PublicKeyObject | None = None
        if isinstance(self.key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey):
            pub = self.key.public_key()
        elif not isinstance(self.key, bytes):
            pub = self.key
        object.__setattr__(self, "_public", pub)
        object.__setattr__(self, "_cache", {})
        if self.alg is not None:
            self.check_alg(self.alg)

    # ---- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_pem(
        cls, pem: bytes, *, kid: bytes | None = None, alg: Algorithm | None = None, password: bytes | None = None
    ) -> CoseKey:
        """Load a PEM private key, public key or certificate (its subject public key)."""
        if not isinstance(pem, bytes):
            raise KeyFormatError("PEM input must be bytes")
        obj: Any
        try:
            if b"-----BEGIN CERTIFICATE-----" in pem:
                obj = x509.load_pem_x509_certificate(pem).public_key()
            elif b"PRIVATE KEY-----" in pem:
                obj = serialization.load_pem_private_key(pem, password=password)
            else:
                obj = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"cannot load PEM key: {exc}") from None
        return cls(obj, kid=kid, alg=alg)

    @classmethod
    def symmetric(cls, k: bytes, *, kid: bytes | None = None, alg: Algorithm | None = None) -> CoseKey:
        """A symmetric key (MAC, key wrap, content encryption, or ``direct``)."""
        return cls(bytes(k), kid=kid, alg=alg)

    @classmethod
    def from_cose_key(cls, data: bytes | Mapping[Any, Any]) -> CoseKey:
        """Decode a COSE_Key (CBOR bytes or an already-decoded map); checks sizes and that points are on the curve."""
        params = cbor.decode(data) if isinstance(data, bytes | bytearray) else data
        if not isinstance(params, Mapping):
            raise KeyFormatError("a COSE_Key must be a CBOR map")
        kid = params.get(KeyParam.KID)
        if kid is not None and not isinstance(kid, bytes):
            raise KeyFormatError("COSE_Key kid must be a byte string")
        alg = Algorithm.from_id(params[KeyParam.ALG]) if KeyParam.ALG in params else None
        kty = params.get(KeyParam.KTY)
        obj: KeyObject
        try:
            if kty == KeyType.SYMMETRIC:
                obj = _bstr(params, KeyParam.K, "k")
            elif kty == KeyType.EC2:
                obj = _load_ec2(params)
            elif kty == KeyType.OKP:
                obj = _load_okp(params)
            else:
                raise KeyFormatError(f"unsupported COSE_Key kty {kty!r}")
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            if isinstance(exc, KeyFormatError | UnsupportedAlgorithmError):
                raise
            raise KeyFormatError(f"invalid COSE_Key: {exc}") from None
        return cls(obj, kid=kid, alg=alg)

    @classmethod
    def generate(cls, alg: Algorithm, *, kid: bytes | None = None) -> CoseKey:
        """A fresh random key suitable for ``alg`` (ECDH algorithms get a P-256 key)."""
        alg = Algorithm.from_id(alg)
        kind = alg.kind
        if kind is AlgKind.SIGNATURE:
            crv = alg.curve or Curve.Ed25519
            obj: KeyObject = ed25519.Ed25519PrivateKey.generate() if crv is Curve.Ed25519 else (
                ec.generate_private_key(_CURVE_OBJ[crv]))  # fmt: skip
        elif kind is AlgKind.KEY_AGREEMENT:
            obj = ec.generate_private_key(ec.SECP256R1())
        elif kind is AlgKind.DIRECT:
            raise UnsupportedAlgorithmError("'direct' has no key size: generate a key for the content algorithm")
        else:
            obj = os.urandom(alg.key_size)
        return cls(obj, kid=kid, alg=alg)

    # ---- export -----------------------------------------------------------------------------------------------
    def to_cose_key(self, private: bool = False) -> dict[int, Any]:
        """The COSE_Key map (kty, kid, alg, crv, x, y[, d]); ``private=True`` includes the secret part."""
        if private and not self.is_private:
            raise KeyFormatError("this is a public key: no private part to export")
        out: dict[int, Any] = {KeyParam.KTY.value: self.kty.value}
        if self.kid is not None:
            out[KeyParam.KID.value] = self.kid
        if self.alg is not None:
            out[KeyParam.ALG.value] = self.alg.value
        if isinstance(self.key, bytes):
            if not private:
                raise KeyFormatError("a symmetric key has no public part: use private=True")
            out[KeyParam.K.value] = self.key
            return out
        out.update(self._public_params())
        if private:
            out[KeyParam.D.value] = self._private_bytes()
        return out

    def _public_params(self) -> dict[int, Any]:
        pub = self._public
        assert self.crv is not None and pub is not None
        if isinstance(pub, ec.EllipticCurvePublicKey):
            nums = pub.public_numbers()
            size = self.crv.coordinate_size
            return {KeyParam.CRV.value: self.crv.value, KeyParam.X.value: nums.x.to_bytes(size, "big"),
                    KeyParam.Y.value: nums.y.to_bytes(size, "big")}  # fmt: skip
        return {KeyParam.CRV.value: self.crv.value, KeyParam.X.value: pub.public_bytes_raw()}

    def _private_bytes(self) -> bytes:
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert self.crv is not None
            return key.private_numbers().private_value.to_bytes(self.crv.coordinate_size, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey):
            return key.private_bytes_raw()
        raise KeyFormatError("not a private key")

    def public(self) -> CoseKey:
        """The public half (same kid/alg); symmetric keys have none."""
        if self._public is None:
            raise KeyFormatError("a symmetric key has no public half")
        if not self.is_private:
            return self
        cached = self._cache.get("public")
        if cached is None:
            cached = self._cache["public"] = CoseKey(self._public, kid=self.kid, alg=self.alg)
        assert isinstance(cached, CoseKey)
        return cached

    @property
    def public_key(self) -> PublicKeyObject:
        """The ``cryptography`` public key object."""
        if self._public is None:
            raise KeyFormatError("a symmetric key has no public half")
        return self._public

    def thumbprint(self, hash_alg: hashes.HashAlgorithm | None = None) -> bytes:
        """RFC 9679 thumbprint: hash (default SHA-256) of the deterministic encoding of the required members."""
        if hash_alg is None and "thumbprint" in self._cache:
            cached: bytes = self._cache["thumbprint"]
            return cached
        if isinstance(self.key, bytes):
            members: dict[int, Any] = {KeyParam.KTY.value: self.kty.value, KeyParam.K.value: self.key}
        else:
            members = {KeyParam.KTY.value: self.kty.value, **self._public_params()}
        digest = hashes.Hash(hash_alg or hashes.SHA256())
        digest.update(cbor.encode(members, deterministic=True))
        result = digest.finalize()
        if hash_alg is None:
            self._cache["thumbprint"] = result
        return result

    # ---- algorithm checks and primitives ----------------------------------------------------------------------
    def default_alg(self) -> Algorithm:
        """``alg`` if set, else the fully-specified signature algorithm of the curve (ESP256/384/512, Ed25519)."""
        if self.alg is not None:
            return self.alg
        if self.crv is not None and self.crv in _DEFAULT_SIGN_ALG:
            return _DEFAULT_SIGN_ALG[self.crv]
        raise UnsupportedAlgorithmError(f"no default algorithm for a {self.kty.name} key: set alg")

    def check_alg(self, alg: Algorithm) -> None:
        """Raise :class:`UnsupportedAlgorithmError` unless this key can be used with ``alg``."""
        if self.alg is not None and self.alg != alg:
            raise UnsupportedAlgorithmError(f"key is restricted to {self.alg.name}, not {alg.name}")
        kind = alg.kind
        ok = False
        if kind is AlgKind.SIGNATURE:
            ok = self.crv == alg.curve if alg.curve is not None else self.crv is Curve.Ed25519
        elif kind is AlgKind.MAC or kind is AlgKind.DIRECT:
            ok = isinstance(self.key, bytes)
        elif kind in (AlgKind.KEY_WRAP, AlgKind.CONTENT):
            ok = isinstance(self.key, bytes) and len(self.key) == alg.key_size
        elif kind is AlgKind.KEY_AGREEMENT:
            ok = self.kty is KeyType.EC2 or self.crv is Curve.X25519
        if not ok:
            raise UnsupportedAlgorithmError(f"a {self._describe()} key cannot be used with {alg.name}")

    def _describe(self) -> str:
        if isinstance(self.key, bytes):
            return f"{len(self.key) * 8}-bit symmetric"
        return f"{self.kty.name} {self.crv.name if self.crv else ''}"

    def sign_bytes(self, alg: Algorithm, data: bytes) -> bytes:
        """Sign ``data`` (a ToBeSigned structure) with ``alg``; ECDSA is deterministic (RFC 6979) and raw ``r || s``."""
        self.check_alg(alg)
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            der = key.sign(data, _ECDSA_SIGN[alg.hash_name])
            r, s = decode_dss_signature(der)
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        raise KeyFormatError("signing needs a private key")

    def verify_bytes(self, alg: Algorithm, data: bytes, signature: bytes) -> None:
        """Verify a signature made by :meth:`sign_bytes`; raises :class:`SignatureError`."""
        self.check_alg(alg)
        self.verify_checked(alg, data, signature)

    def verify_checked(self, alg: Algorithm, data: bytes, signature: bytes) -> None:
        """:meth:`verify_bytes` for a caller that has already run :meth:`check_alg` (key selection does)."""
        pub = self._public
        try:
            if isinstance(pub, ec.EllipticCurvePublicKey):
                size = (pub.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    raise SignatureError(f"{alg.name} signature must be {2 * size} bytes, not {len(signature)}")
                der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                           int.from_bytes(signature[size:], "big"))  # fmt: skip
                pub.verify(der, data, _ECDSA_VERIFY[alg.hash_name])
            elif isinstance(pub, ed25519.Ed25519PublicKey):
                pub.verify(signature, data)
            else:  # pragma: no cover - check_alg already rejected other key types
                raise UnsupportedAlgorithmError(f"{alg.name} needs a signature key")
        except InvalidSignature:
            raise SignatureError(f"{alg.name} signature does not verify") from None

    def mac_bytes(self, alg: Algorithm, data: bytes) -> bytes:
        """The (possibly truncated) HMAC tag of ``data``."""
        self.check_alg(alg)
        assert isinstance(self.key, bytes)
        h = crypto_hmac.HMAC(self.key, _HASHES[alg.hash_name])
        h.update(data)
        return h.finalize()[: _MAC_TAG_LEN[alg]]

    def verify_mac_bytes(self, alg: Algorithm, data: bytes, tag: bytes) -> None:
        """Constant-time check of an HMAC tag; raises :class:`SignatureError`."""
        if not _hmac.compare_digest(self.mac_bytes(alg, data), tag):
            raise SignatureError(f"{alg.name} tag does not verify")


def _load_ec2(params: Mapping[Any, Any]) -> ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey:
    crv_id = params.get(KeyParam.CRV)
    if crv_id not in (Curve.P256, Curve.P384, Curve.P521) or isinstance(crv_id, bool):
        raise KeyFormatError(f"unsupported EC2 curve {crv_id!r}")
    crv = Curve(crv_id)
    size = crv.coordinate_size
    curve = _CURVE_OBJ[crv]
    x = _bstr(params, KeyParam.X, "x", size)
    y = params.get(KeyParam.Y)
    if isinstance(y, bool):
        pub = ec.EllipticCurvePublicKey.from_encoded_point(curve, (b"\x03" if y else b"\x02") + x)
    elif isinstance(y, bytes) and len(y) == size:
        pub = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve).public_key()
    else:
        raise KeyFormatError(f"COSE_Key y must be a {size}-byte string or a sign bit")
    if KeyParam.D not in params:
        return pub
    d = _bstr(params, KeyParam.D, "d", size)
    priv = ec.derive_private_key(int.from_bytes(d, "big"), curve)
    if priv.public_key().public_numbers() != pub.public_numbers():
        raise KeyFormatError("COSE_Key d does not match x/y")
    return priv


def _load_okp(params: Mapping[Any, Any]) -> PrivateKeyObject | PublicKeyObject:
    crv_id = params.get(KeyParam.CRV)
    if crv_id == Curve.Ed25519 and not isinstance(crv_id, bool):
        priv_cls: Any = ed25519.Ed25519PrivateKey
        pub_cls: Any = ed25519.Ed25519PublicKey
    elif crv_id == Curve.X25519 and not isinstance(crv_id, bool):
        priv_cls, pub_cls = x25519.X25519PrivateKey, x25519.X25519PublicKey
    else:
        raise KeyFormatError(f"unsupported OKP curve {crv_id!r}")
    x = _bstr(params, KeyParam.X, "x", 32) if KeyParam.X in params or KeyParam.D not in params else None
    if KeyParam.D in params:
        priv = priv_cls.from_private_bytes(_bstr(params, KeyParam.D, "d", 32))
        if x is not None and priv.public_key().public_bytes_raw() != x:
            raise KeyFormatError("COSE_Key d does not match x")
        result: PrivateKeyObject | PublicKeyObject = priv
        return result
    assert x is not None
    result = pub_cls.from_public_bytes(x)
    return result

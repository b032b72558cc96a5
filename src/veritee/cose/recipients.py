"""COSE recipients (RFC 9052 §5.1, RFC 9053 §6): direct, AES key wrap, ECDH-ES + HKDF-SHA256 (direct or + AES-KW).

The key derivation follows RFC 9053 §5.2 (COSE_KDF_Context). draft-ietf-suit-firmware-encryption fixes the
PartyU/PartyV info to nil and SuppPubInfo.other to ``'SUIT Payload Encryption'`` (:data:`SUIT_KDF_OTHER`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from veritee import cbor
from veritee.cose.algorithms import AlgKind, Algorithm, HeaderLabel, KeyParam
from veritee.cose.common import Headers
from veritee.cose.keys import CoseKey
from veritee.errors import DecodeError, DecryptionError, EncodeError, KeyFormatError, UnsupportedAlgorithmError

__all__ = ["SUIT_KDF_OTHER", "Recipient", "RecipientInfo", "kdf_context"]

SUIT_KDF_OTHER: Final = b"SUIT Payload Encryption"


@dataclass(frozen=True, slots=True, eq=False)
class RecipientInfo:
    """A decoded COSE_recipient: headers, the encrypted key (or ``None``/empty) and any nested recipients."""

    headers: Headers
    ciphertext: bytes | None
    recipients: tuple[RecipientInfo, ...] = ()

    @property
    def alg(self) -> Algorithm:
        return self.headers.alg

    @property
    def kid(self) -> bytes | None:
        return self.headers.kid

    @classmethod
    def parse(cls, item: Any) -> RecipientInfo:
        if not isinstance(item, list) or len(item) not in (3, 4):
            raise DecodeError("COSE_recipient must be an array of 3 or 4 items")
        headers = Headers.decode(item[0], item[1], "COSE_recipient")
        if item[2] is not None and not isinstance(item[2], bytes):
            raise DecodeError("COSE_recipient ciphertext must be a byte string or nil")
        nested = parse_recipients(item[3]) if len(item) == 4 else ()
        return cls(headers, item[2], nested)

    def encode(self) -> list[Any]:
        out: list[Any] = [self.headers.protected_raw, self.headers.unprotected, self.ciphertext]
        if self.recipients:
            out.append([r.encode() for r in self.recipients])
        return out


def parse_recipients(value: Any) -> tuple[RecipientInfo, ...]:
    if not isinstance(value, list) or not value:
        raise DecodeError("recipients must be a non-empty array")
    return tuple(RecipientInfo.parse(item) for item in value)


@dataclass(frozen=True, slots=True)
class Recipient:
    """How to deliver the content key to one recipient when encrypting.

    ``key`` is the recipient's public key (ECDH-ES), the key-encryption key (AES-KW) or the content key itself
    (``direct``). ``alg`` defaults to ``key.alg``. ``ephemeral_key`` pins the ECDH-ES ephemeral private key (tests);
    by default a fresh one is generated on the recipient's curve. ``kdf_other`` is SuppPubInfo.other.
    """

    key: CoseKey
    alg: Algorithm | None = None
    kid: bytes | None = None
    kdf_other: bytes | None = None
    ephemeral_key: CoseKey | None = None

    @property
    def algorithm(self) -> Algorithm:
        alg = self.alg or self.key.alg
        if alg is None:
            raise UnsupportedAlgorithmError("recipient has no alg (set Recipient.alg or the key's alg)")
        if alg.kind not in (AlgKind.DIRECT, AlgKind.KEY_WRAP, AlgKind.KEY_AGREEMENT):
            raise UnsupportedAlgorithmError(f"{alg.name} is not a key-distribution algorithm")
        return alg

    @property
    def is_direct(self) -> bool:
        """True when this recipient determines the content key (``direct`` and ECDH-ES + HKDF direct)."""
        return self.algorithm in (Algorithm.direct, Algorithm.ECDH_ES_HKDF_256)


def kdf_context(alg: Algorithm, key_bits: int, protected_raw: bytes, headers: Headers, other: bytes | None) -> bytes:
    """COSE_KDF_Context = [AlgorithmID, PartyUInfo, PartyVInfo, SuppPubInfo] (RFC 9053 §5.2).

    PartyU/PartyV identity, nonce and other come from the recipient headers (-21..-26), nil when absent.
    """
    party_u = [headers.get(HeaderLabel.PARTY_U_IDENTITY), headers.get(HeaderLabel.PARTY_U_NONCE),
               headers.get(HeaderLabel.PARTY_U_OTHER)]  # fmt: skip
    party_v = [headers.get(HeaderLabel.PARTY_V_IDENTITY), headers.get(HeaderLabel.PARTY_V_NONCE),
               headers.get(HeaderLabel.PARTY_V_OTHER)]  # fmt: skip
    supp_pub: list[Any] = [key_bits, protected_raw]
    if other is not None:
        supp_pub.append(other)
    return cbor.encode([alg.value, party_u, party_v, supp_pub])


def _ecdh(private: CoseKey, peer: CoseKey) -> bytes:
    own, other = private.key, peer.key
    try:
        if isinstance(own, ec.EllipticCurvePrivateKey) and isinstance(other, ec.EllipticCurvePublicKey):
            if own.curve.name != other.curve.name:
                raise DecryptionError("ephemeral key is on a different curve than the recipient key")
            return own.exchange(ec.ECDH(), other)
        if isinstance(own, x25519.X25519PrivateKey) and isinstance(other, x25519.X25519PublicKey):
            return own.exchange(other)
    except ValueError as exc:
        raise DecryptionError(f"ECDH failed: {exc}") from None
    raise DecryptionError("ECDH needs a private EC/X25519 key and a public key of the same type")


def _derive(z: bytes, alg: Algorithm, target: Algorithm, info: RecipientInfo, other: bytes | None) -> bytes:
    """HKDF-SHA256 over the ECDH secret, for the key of algorithm ``target`` (content or key-wrap algorithm)."""
    salt = info.headers.get(HeaderLabel.SALT)
    size = target.key_size
    context = kdf_context(target, size * 8, info.headers.protected_raw, info.headers, other)
    return HKDF(algorithm=hashes.SHA256(), length=size, salt=salt, info=context).derive(z)


def _ephemeral(info: RecipientInfo) -> CoseKey:
    value = info.headers.get(HeaderLabel.EPHEMERAL_KEY)
    if not isinstance(value, dict):
        raise DecodeError("ECDH-ES recipient has no ephemeral key (-1) map")
    try:
        return CoseKey.from_cose_key(value)
    except (KeyFormatError, UnsupportedAlgorithmError) as exc:
        raise DecodeError(f"ECDH-ES ephemeral key is invalid: {exc}") from None


def _unwrap(kek: bytes, wrapped: bytes | None) -> bytes:
    if not wrapped:
        raise DecodeError("key-wrap recipient has no wrapped key")
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise DecryptionError("AES key unwrap failed (wrong key or corrupted wrapped key)") from None


def recover_cek(info: RecipientInfo, key: CoseKey, content_alg: Algorithm, kdf_other: bytes | None) -> bytes:
    """The content-encryption key this recipient carries, recovered with ``key``."""
    if info.recipients:
        raise UnsupportedAlgorithmError("multi-level COSE recipients are not supported")
    alg = info.alg
    key.check_alg(alg)
    kind = alg.kind
    if kind is AlgKind.DIRECT:
        if info.ciphertext or info.headers.protected:
            raise DecodeError("a direct recipient must have empty protected headers and ciphertext")
        assert isinstance(key.key, bytes)
        return key.key
    if kind is AlgKind.KEY_WRAP:
        if info.headers.protected:
            raise DecodeError("an AES key-wrap recipient must have empty protected headers")
        assert isinstance(key.key, bytes)
        return _unwrap(key.key, info.ciphertext)
    if kind is not AlgKind.KEY_AGREEMENT:
        raise UnsupportedAlgorithmError(f"{alg.name} is not a key-distribution algorithm")
    if not key.is_private:
        raise KeyFormatError("ECDH-ES decryption needs the recipient's private key")
    z = _ecdh(key, _ephemeral(info))
    wrap = alg.wrap_alg
    if wrap is None:
        if info.ciphertext:
            raise DecodeError("an ECDH-ES direct recipient must have an empty ciphertext")
        return _derive(z, alg, content_alg, info, kdf_other)
    return _unwrap(_derive(z, alg, wrap, info, kdf_other), info.ciphertext)


def _ecdh_headers(spec: Recipient, alg: Algorithm) -> tuple[Headers, bytes]:
    """Headers of a new ECDH-ES recipient, and the shared secret."""
    peer = spec.key
    eph = spec.ephemeral_key
    if eph is None:
        pub = peer.public_key
        if isinstance(pub, ec.EllipticCurvePublicKey):
            eph = CoseKey(ec.generate_private_key(pub.curve))
        elif isinstance(pub, x25519.X25519PublicKey):
            eph = CoseKey(x25519.X25519PrivateKey.generate())
        else:
            raise UnsupportedAlgorithmError(f"{alg.name} needs an EC or X25519 recipient key")
    eph_pub = {k: v for k, v in eph.public().to_cose_key().items() if k not in (KeyParam.KID, KeyParam.ALG)}
    unprotected: dict[int, Any] = {HeaderLabel.EPHEMERAL_KEY.value: eph_pub}
    kid = spec.kid if spec.kid is not None else peer.kid
    if kid is not None:
        unprotected[HeaderLabel.KID.value] = kid
    headers = Headers.build({HeaderLabel.ALG.value: alg.value}, unprotected)
    return headers, _ecdh(eph, peer.public())


def derive_direct_cek(spec: Recipient, content_alg: Algorithm) -> tuple[bytes, list[Any]]:
    """For a ``direct``/ECDH-ES direct recipient: the content key and the encoded recipient."""
    alg = spec.algorithm
    spec.key.check_alg(alg)
    if alg is Algorithm.direct:
        assert isinstance(spec.key.key, bytes)
        kid = spec.kid if spec.kid is not None else spec.key.kid
        unprotected: dict[int, Any] = {HeaderLabel.ALG.value: alg.value}
        if kid is not None:
            unprotected[HeaderLabel.KID.value] = kid
        return spec.key.key, [b"", unprotected, b""]
    headers, z = _ecdh_headers(spec, alg)
    info = RecipientInfo(headers, b"")
    return _derive(z, alg, content_alg, info, spec.kdf_other), info.encode()


def wrap_cek(spec: Recipient, cek: bytes) -> list[Any]:
    """The encoded COSE_recipient that carries ``cek`` by AES key wrap or ECDH-ES + AES key wrap."""
    alg = spec.algorithm
    spec.key.check_alg(alg)
    if alg.kind is AlgKind.KEY_WRAP:
        assert isinstance(spec.key.key, bytes)
        kid = spec.kid if spec.kid is not None else spec.key.kid
        unprotected: dict[int, Any] = {HeaderLabel.ALG.value: alg.value}
        if kid is not None:
            unprotected[HeaderLabel.KID.value] = kid
        return [b"", unprotected, aes_key_wrap(spec.key.key, cek)]
    wrap = alg.wrap_alg
    if wrap is None:
        raise EncodeError(f"{alg.name} determines the content key: it must be the only recipient")
    headers, z = _ecdh_headers(spec, alg)
    info = RecipientInfo(headers, None)
    kek = _derive(z, alg, wrap, info, spec.kdf_other)
    return [headers.protected_raw, headers.unprotected, aes_key_wrap(kek, cek)]


def random_key(alg: Algorithm) -> bytes:
    return os.urandom(alg.key_size)

"""COSE_Encrypt (tag 96) and COSE_Encrypt0 (tag 16): decrypt and encrypt (RFC 9052 §5) with AES-GCM (RFC 9053 §4.1)
and AES-CTR (RFC 9459).

AES-CTR gives no integrity: RFC 9459 requires an empty protected bucket and no external AAD, and the IV is the full
16-byte initial counter block. SUIT protects the plaintext by the image digest in the signed manifest instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veritee import cbor
from veritee.cose.algorithms import AlgKind, Algorithm, HeaderLabel
from veritee.cose.common import (
    COSE_ENCRYPT0_TAG,
    COSE_ENCRYPT_TAG,
    CTX_ENCRYPT,
    CTX_ENCRYPT0,
    Headers,
    KeysArg,
    as_keys,
    candidates,
    decode_cose,
    enc_structure,
    encode_cose,
    unwrap,
)
from veritee.cose.keys import CoseKey
from veritee.cose.recipients import Recipient, RecipientInfo, derive_direct_cek, parse_recipients, recover_cek, wrap_cek
from veritee.errors import (
    DecodeError,
    DecryptionError,
    EncodeError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    ValidationError,
    VeriteeError,
)

__all__ = [
    "Encrypt0Message",
    "EncryptMessage",
    "decrypt",
    "encrypt",
    "encrypt0",
    "encrypt0_detached",
    "encrypt_detached",
]

_CTR = (Algorithm.A128CTR, Algorithm.A192CTR, Algorithm.A256CTR)
_IV_SIZE = {Algorithm.A128GCM: 12, Algorithm.A192GCM: 12, Algorithm.A256GCM: 12,
            Algorithm.A128CTR: 16, Algorithm.A192CTR: 16, Algorithm.A256CTR: 16}  # fmt: skip


def _content_alg(headers: Headers) -> Algorithm:
    alg = headers.alg
    if alg.kind is not AlgKind.CONTENT:
        raise UnsupportedAlgorithmError(f"{alg.name} is not a content-encryption algorithm")
    return alg


def _iv(headers: Headers, alg: Algorithm) -> bytes:
    if headers.get(HeaderLabel.PARTIAL_IV) is not None:
        raise UnsupportedAlgorithmError("Partial IV (needs a Base IV context) is not supported")
    iv = headers.get(HeaderLabel.IV)
    if not isinstance(iv, bytes) or len(iv) != _IV_SIZE[alg]:
        raise ValidationError(f"{alg.name} needs a {_IV_SIZE[alg]}-byte IV header")
    return iv


def _check_ctr(headers: Headers, alg: Algorithm, external_aad: bytes) -> None:
    if alg in _CTR:
        if headers.protected_raw:
            raise ValidationError(f"{alg.name} (RFC 9459) requires an empty protected header")
        if external_aad:
            raise ValidationError(f"{alg.name} cannot protect external AAD")


def _crypt(alg: Algorithm, cek: bytes, iv: bytes, data: bytes, aad: bytes, *, encrypting: bool) -> bytes:
    if len(cek) != alg.key_size:
        raise DecryptionError(f"{alg.name} needs a {alg.key_size}-byte key, not {len(cek)}")
    if alg in _CTR:
        cipher = Cipher(algorithms.AES(cek), modes.CTR(iv))
        ctx = cipher.encryptor() if encrypting else cipher.decryptor()
        return ctx.update(data) + ctx.finalize()
    aead = AESGCM(cek)
    if encrypting:
        return aead.encrypt(iv, data, aad)
    try:
        return aead.decrypt(iv, data, aad)
    except InvalidTag:
        raise DecryptionError(f"{alg.name} authentication failed (wrong key, AAD or corrupted ciphertext)") from None


def _ciphertext(attached: bytes | None, detached: bytes | None) -> bytes:
    if attached is None:
        if detached is None:
            raise ValidationError("the ciphertext is detached: pass detached_ciphertext")
        if not isinstance(detached, bytes | bytearray):
            raise ValidationError("detached_ciphertext must be bytes")
        return bytes(detached)
    if detached is not None:
        raise ValidationError("the ciphertext is attached: do not pass detached_ciphertext")
    return attached


_ERROR_RANK = (DecryptionError, KeyFormatError, DecodeError, ValidationError, UnsupportedAlgorithmError)


def _most_relevant(errors: list[VeriteeError]) -> VeriteeError:
    """The error to report when no recipient worked: a failed decryption beats an unusable key or recipient."""
    for kind in _ERROR_RANK:
        for exc in errors:
            if isinstance(exc, kind):
                if kind is DecryptionError:
                    return DecryptionError(f"COSE_Encrypt: no recipient could be decrypted ({exc})")
                return exc
    return errors[0] if errors else DecodeError("COSE_Encrypt has no recipients")


@dataclass(frozen=True, slots=True, eq=False)
class Encrypt0Message:
    """A decoded COSE_Encrypt0 (the recipient already knows the content key)."""

    headers: Headers
    ciphertext: bytes | None
    tagged: bool = True

    @property
    def alg(self) -> Algorithm:
        return _content_alg(self.headers)

    @property
    def kid(self) -> bytes | None:
        return self.headers.kid

    @classmethod
    def decode(cls, data: bytes) -> Encrypt0Message:
        items, tagged = decode_cose(data, COSE_ENCRYPT0_TAG, (3,), "COSE_Encrypt0")
        return cls._from_items(items, tagged)

    @classmethod
    def _from_items(cls, items: list[Any], tagged: bool) -> Encrypt0Message:
        headers = Headers.decode(items[0], items[1], "COSE_Encrypt0")
        if items[2] is not None and not isinstance(items[2], bytes):
            raise DecodeError("COSE_Encrypt0 ciphertext must be a byte string or nil")
        return cls(headers, items[2], tagged)

    def decrypt(
        self, key_or_keys: KeysArg, *, detached_ciphertext: bytes | None = None, external_aad: bytes = b""
    ) -> bytes:
        """Decrypt with the content key (chosen by kid among several); raises :class:`DecryptionError`."""
        alg = self.alg
        _check_ctr(self.headers, alg, external_aad)
        iv = _iv(self.headers, alg)
        data = _ciphertext(self.ciphertext, detached_ciphertext)
        aad = enc_structure(CTX_ENCRYPT0, self.headers.protected_raw, external_aad)
        try:
            found = candidates(as_keys(key_or_keys), alg, self.kid)
        except SignatureError:
            raise DecryptionError(f"COSE_Encrypt0: no key has kid {self.kid!r}") from None
        for key in found:
            assert isinstance(key.key, bytes)
            try:
                return _crypt(alg, key.key, iv, data, aad, encrypting=False)
            except DecryptionError:
                continue
        raise DecryptionError(f"COSE_Encrypt0: no candidate key decrypts the {alg.name} content")

    def encode(self, *, tag: bool | None = None) -> bytes:
        items = [self.headers.protected_raw, self.headers.unprotected, self.ciphertext]
        return encode_cose(COSE_ENCRYPT0_TAG if (self.tagged if tag is None else tag) else None, items)


@dataclass(frozen=True, slots=True, eq=False)
class EncryptMessage:
    """A decoded COSE_Encrypt: content headers, ciphertext (``None`` when detached) and recipients."""

    headers: Headers
    ciphertext: bytes | None
    recipients: tuple[RecipientInfo, ...]
    tagged: bool = True

    @property
    def alg(self) -> Algorithm:
        return _content_alg(self.headers)

    @classmethod
    def decode(cls, data: bytes) -> EncryptMessage:
        items, tagged = decode_cose(data, COSE_ENCRYPT_TAG, (4,), "COSE_Encrypt")
        return cls._from_items(items, tagged)

    @classmethod
    def _from_items(cls, items: list[Any], tagged: bool) -> EncryptMessage:
        headers = Headers.decode(items[0], items[1], "COSE_Encrypt")
        if items[2] is not None and not isinstance(items[2], bytes):
            raise DecodeError("COSE_Encrypt ciphertext must be a byte string or nil")
        return cls(headers, items[2], parse_recipients(items[3]), tagged)

    def decrypt(
        self,
        key_or_keys: KeysArg,
        *,
        detached_ciphertext: bytes | None = None,
        external_aad: bytes = b"",
        kdf_other: bytes | None = None,
    ) -> bytes:
        """Recover the content key through a recipient that one of the keys opens, then decrypt the content.

        Recipients whose kid matches a key are tried first. ``kdf_other`` is the COSE_KDF_Context SuppPubInfo.other
        for ECDH-ES recipients (:data:`SUIT_KDF_OTHER` for SUIT). Raises :class:`DecryptionError`, or
        :class:`UnsupportedAlgorithmError` when no key fits any recipient's algorithm.
        """
        alg = self.alg
        _check_ctr(self.headers, alg, external_aad)
        iv = _iv(self.headers, alg)
        data = _ciphertext(self.ciphertext, detached_ciphertext)
        aad = enc_structure(CTX_ENCRYPT, self.headers.protected_raw, external_aad)
        keys = as_keys(key_or_keys)
        ordered = sorted(self.recipients, key=lambda r: not any(k.kid is not None and k.kid == r.kid for k in keys))
        errors: list[VeriteeError] = []
        for info in ordered:
            try:
                found = candidates(keys, info.alg, info.kid)
            except SignatureError:
                errors.append(DecryptionError(f"no key has the recipient kid {info.kid!r}"))
                continue
            except VeriteeError as exc:
                errors.append(exc)
                continue
            for key in found:
                try:
                    cek = recover_cek(info, key, alg, kdf_other)
                    return _crypt(alg, cek, iv, data, aad, encrypting=False)
                except VeriteeError as exc:
                    errors.append(exc)
        raise _most_relevant(errors)

    def encode(self, *, tag: bool | None = None) -> bytes:
        items = [self.headers.protected_raw, self.headers.unprotected, self.ciphertext,
                 [r.encode() for r in self.recipients]]  # fmt: skip
        return encode_cose(COSE_ENCRYPT_TAG if (self.tagged if tag is None else tag) else None, items)


def decrypt(
    data: bytes,
    key_or_keys: KeysArg,
    *,
    detached_ciphertext: bytes | None = None,
    external_aad: bytes = b"",
    kdf_other: bytes | None = None,
) -> bytes:
    """Decrypt a COSE_Encrypt (tag 96, or an untagged 4-item array) or COSE_Encrypt0 (tag 16, or 3 items).

    ``detached_ciphertext`` supplies the ciphertext when the structure carries ``nil`` (SUIT's parameter-content).
    """
    if not isinstance(data, bytes | bytearray):
        raise DecodeError("COSE input must be bytes")
    obj = cbor.decode(bytes(data))
    tag = obj.tag if isinstance(obj, cbor.CBORTag) else None
    if tag == COSE_ENCRYPT0_TAG or (tag is None and isinstance(obj, list) and len(obj) == 3):
        items, tagged = unwrap(obj, COSE_ENCRYPT0_TAG, (3,), "COSE_Encrypt0")
        return Encrypt0Message._from_items(items, tagged).decrypt(
            key_or_keys, detached_ciphertext=detached_ciphertext, external_aad=external_aad
        )
    items, tagged = unwrap(obj, COSE_ENCRYPT_TAG, (4,), "COSE_Encrypt")
    return EncryptMessage._from_items(items, tagged).decrypt(
        key_or_keys, detached_ciphertext=detached_ciphertext, external_aad=external_aad, kdf_other=kdf_other
    )


def _content_headers(
    alg: Algorithm, protected: Mapping[Any, Any] | None, unprotected: Mapping[Any, Any] | None, iv: bytes | None
) -> tuple[Headers, bytes]:
    """alg protected for GCM, unprotected for CTR (RFC 9459 forbids protected headers); a fresh IV unless given."""
    if alg.kind is not AlgKind.CONTENT:
        raise UnsupportedAlgorithmError(f"{alg.name} is not a content-encryption algorithm")
    iv = iv if iv is not None else os.urandom(_IV_SIZE[alg])
    if len(iv) != _IV_SIZE[alg]:
        raise EncodeError(f"{alg.name} needs a {_IV_SIZE[alg]}-byte IV")
    prot = dict(protected or {})
    unprot = dict(unprotected or {})
    if HeaderLabel.ALG not in prot and HeaderLabel.ALG not in unprot:
        if alg in _CTR:
            unprot = {HeaderLabel.ALG.value: alg.value, **unprot}
        else:
            prot = {HeaderLabel.ALG.value: alg.value, **prot}
    unprot[HeaderLabel.IV.value] = iv
    headers = Headers.build(prot, unprot)
    if headers.alg != alg:
        raise EncodeError(f"alg header {headers.alg.name} differs from the requested {alg.name}")
    return headers, iv


def _encrypt(
    plaintext: bytes,
    recipients: Sequence[Recipient | CoseKey],
    alg: Algorithm,
    protected: Mapping[Any, Any] | None,
    unprotected: Mapping[Any, Any] | None,
    iv: bytes | None,
    external_aad: bytes,
    tag: bool,
    detached: bool,
) -> tuple[bytes, bytes]:
    specs = [r if isinstance(r, Recipient) else Recipient(r) for r in recipients]
    if not specs:
        raise EncodeError("COSE_Encrypt needs at least one recipient")
    headers, iv = _content_headers(alg, protected, unprotected, iv)
    _check_ctr(headers, alg, external_aad)
    direct = [s for s in specs if s.is_direct]
    if direct:
        if len(specs) != 1:
            raise EncodeError("a direct / ECDH-ES direct recipient must be the only recipient")
        cek, encoded = derive_direct_cek(direct[0], alg)
        if len(cek) != alg.key_size:
            raise UnsupportedAlgorithmError(f"{alg.name} needs a {alg.key_size}-byte key, not {len(cek)}")
        recips = [encoded]
    else:
        cek = os.urandom(alg.key_size)
        recips = [wrap_cek(s, cek) for s in specs]
    aad = enc_structure(CTX_ENCRYPT, headers.protected_raw, external_aad)
    ciphertext = _crypt(alg, cek, iv, plaintext, aad, encrypting=True)
    items = [headers.protected_raw, headers.unprotected, None if detached else ciphertext, recips]
    return encode_cose(COSE_ENCRYPT_TAG if tag else None, items), ciphertext


def encrypt(
    plaintext: bytes,
    recipients: Sequence[Recipient | CoseKey],
    *,
    alg: Algorithm = Algorithm.A128GCM,
    protected: Mapping[Any, Any] | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    iv: bytes | None = None,
    external_aad: bytes = b"",
    tag: bool = True,
) -> bytes:
    """Encrypt into a COSE_Encrypt with the ciphertext attached.

    A random content key is wrapped for each recipient (AES-KW, ECDH-ES + AES-KW); a ``direct`` or ECDH-ES + HKDF
    recipient must be alone and determines the key. A bare :class:`CoseKey` is a recipient using its own ``alg``.
    """
    return _encrypt(plaintext, recipients, alg, protected, unprotected, iv, external_aad, tag, False)[0]


def encrypt_detached(
    plaintext: bytes,
    recipients: Sequence[Recipient | CoseKey],
    *,
    alg: Algorithm = Algorithm.A128GCM,
    protected: Mapping[Any, Any] | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    iv: bytes | None = None,
    external_aad: bytes = b"",
    tag: bool = True,
) -> tuple[bytes, bytes]:
    """As :func:`encrypt` with a ``nil`` ciphertext; returns ``(cose_encrypt, ciphertext)`` (SUIT encryption info)."""
    return _encrypt(plaintext, recipients, alg, protected, unprotected, iv, external_aad, tag, True)


def _encrypt0(
    plaintext: bytes,
    key: CoseKey,
    alg: Algorithm | None,
    protected: Mapping[Any, Any] | None,
    unprotected: Mapping[Any, Any] | None,
    iv: bytes | None,
    external_aad: bytes,
    tag: bool,
    detached: bool,
) -> tuple[bytes, bytes]:
    alg = alg or key.alg or Algorithm.A128GCM
    key.check_alg(alg)
    assert isinstance(key.key, bytes)
    unprot = dict(unprotected or {})
    if key.kid is not None and unprotected is None:
        unprot[HeaderLabel.KID.value] = key.kid
    headers, iv = _content_headers(alg, protected, unprot, iv)
    _check_ctr(headers, alg, external_aad)
    aad = enc_structure(CTX_ENCRYPT0, headers.protected_raw, external_aad)
    ciphertext = _crypt(alg, key.key, iv, plaintext, aad, encrypting=True)
    items = [headers.protected_raw, headers.unprotected, None if detached else ciphertext]
    return encode_cose(COSE_ENCRYPT0_TAG if tag else None, items), ciphertext


def encrypt0(
    plaintext: bytes,
    key: CoseKey,
    *,
    alg: Algorithm | None = None,
    protected: Mapping[Any, Any] | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    iv: bytes | None = None,
    external_aad: bytes = b"",
    tag: bool = True,
) -> bytes:
    """Encrypt into a COSE_Encrypt0 with the symmetric content key (``alg``: argument, key's alg, else A128GCM)."""
    return _encrypt0(plaintext, key, alg, protected, unprotected, iv, external_aad, tag, False)[0]


def encrypt0_detached(
    plaintext: bytes,
    key: CoseKey,
    *,
    alg: Algorithm | None = None,
    protected: Mapping[Any, Any] | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    iv: bytes | None = None,
    external_aad: bytes = b"",
    tag: bool = True,
) -> tuple[bytes, bytes]:
    """As :func:`encrypt0` with a ``nil`` ciphertext; returns ``(cose_encrypt0, ciphertext)``."""
    return _encrypt0(plaintext, key, alg, protected, unprotected, iv, external_aad, tag, True)

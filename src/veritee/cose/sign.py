"""COSE_Sign1 (tag 18) and COSE_Sign (tag 98): decode, verify, sign (RFC 9052 §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from veritee import cbor
from veritee.cose.algorithms import Algorithm, HeaderLabel
from veritee.cose.common import (
    COSE_SIGN1_TAG,
    COSE_SIGN_TAG,
    CTX_SIGNATURE,
    CTX_SIGNATURE1,
    Headers,
    KeysArg,
    as_keys,
    bstr,
    candidates,
    check_bytes,
    decode_cose,
    encode_cose,
    payload_for,
    thaw,
    to_be_signed,
    unwrap,
)
from veritee.cose.keys import CoseKey
from veritee.errors import DecodeError, EncodeError, SignatureError, UnsupportedAlgorithmError, VeriteeError

__all__ = ["Sign1Message", "Sign1Template", "SignMessage", "Signature", "Signer", "sign", "sign1"]

_SIGN1_TAG_HEAD: Final = b"\xd2"  # tag 18
_NIL: Final = b"\xf6"
_EMPTY_AAD: Final = b"\x40"


def _payload_field(value: object, name: str) -> bytes | None:
    if value is not None and not isinstance(value, bytes):
        raise DecodeError(f"{name} payload must be a byte string or nil")
    return value


def _try_keys(keys: list[CoseKey], alg: Algorithm, tbs: bytes, signature: bytes) -> CoseKey:
    for key in keys:
        try:
            key.verify_checked(alg, tbs, signature)
        except SignatureError:
            continue
        return key
    raise SignatureError(f"{alg.name} signature does not verify with any of {len(keys)} candidate key(s)")


@dataclass(frozen=True, slots=True, eq=False)
class Sign1Message:
    """A decoded COSE_Sign1. ``protected_raw`` is the protected header exactly as it was signed."""

    headers: Headers
    payload: bytes | None
    signature: bytes
    tagged: bool = True

    @property
    def protected(self) -> dict[Any, Any]:
        return self.headers.protected

    @property
    def protected_raw(self) -> bytes:
        return self.headers.protected_raw

    @property
    def unprotected(self) -> dict[Any, Any]:
        return self.headers.unprotected

    @property
    def alg(self) -> Algorithm:
        """The signature algorithm (protected, else unprotected ``alg``)."""
        return self.headers.alg

    @property
    def kid(self) -> bytes | None:
        return self.headers.kid

    @classmethod
    def decode(cls, data: bytes) -> Sign1Message:
        """Decode a COSE_Sign1, tagged (18) or not; any structural problem is a :class:`DecodeError`."""
        if type(data) is not bytes:
            items, tagged = decode_cose(data, COSE_SIGN1_TAG, (4,), "COSE_Sign1")
        else:
            obj = cbor.decode(data)
            value = obj.value if type(obj) is cbor.CBORTag and obj.tag == COSE_SIGN1_TAG else None
            if type(value) is tuple and len(value) == 4:  # the usual tagged form, without the generic unwrapping
                protected_raw, unprotected, payload, signature = value
                if type(signature) is bytes and (payload is None or type(payload) is bytes):
                    headers = Headers.decode(protected_raw, thaw(unprotected), "COSE_Sign1")
                    return cls(headers, payload, signature, True)
            items, tagged = unwrap(obj, COSE_SIGN1_TAG, (4,), "COSE_Sign1")
        headers = Headers.decode(items[0], items[1], "COSE_Sign1")
        payload = _payload_field(items[2], "COSE_Sign1")
        if not isinstance(items[3], bytes):
            raise DecodeError("COSE_Sign1 signature must be a byte string")
        return cls(headers, payload, items[3], tagged)

    def to_be_signed(self, *, detached_payload: bytes | None = None, external_aad: bytes = b"") -> bytes:
        """The Sig_structure bytes the signature covers."""
        payload = self.payload
        if payload is not None and detached_payload is None and type(external_aad) is bytes and not external_aad:
            return b"\x84" + CTX_SIGNATURE1 + bstr(self.headers.protected_raw) + _EMPTY_AAD + bstr(payload)
        payload = payload_for(payload, detached_payload)
        return to_be_signed(CTX_SIGNATURE1, self.headers.protected_raw, None, external_aad, payload)

    def verify(
        self, key_or_keys: KeysArg, *, detached_payload: bytes | None = None, external_aad: bytes = b""
    ) -> CoseKey:
        """Verify with one key or the matching one of several (by kid where present); return the key that verified.

        Raises :class:`SignatureError` on a bad signature, :class:`UnsupportedAlgorithmError` if no key can do ``alg``.
        """
        alg = self.alg
        keys = candidates(as_keys(key_or_keys), alg, self.kid)
        tbs = self.to_be_signed(detached_payload=detached_payload, external_aad=external_aad)
        return _try_keys(keys, alg, tbs, self.signature)

    def encode(self, *, tag: bool | None = None) -> bytes:
        """Re-encode (the raw protected header is kept, so a decoded message re-encodes byte for byte)."""
        items = [self.headers.protected_raw, self.headers.unprotected, self.payload, self.signature]
        return encode_cose(COSE_SIGN1_TAG if (self.tagged if tag is None else tag) else None, items)


def _build_signing_headers(
    key: CoseKey, protected: Mapping[Any, Any] | bytes | None, unprotected: Mapping[Any, Any] | None
) -> tuple[Headers, Algorithm]:
    if isinstance(protected, bytes):
        headers = Headers.build(protected, unprotected)
    else:
        prot = dict(protected or {})
        if HeaderLabel.ALG not in prot:
            prot = {HeaderLabel.ALG.value: key.default_alg().value, **prot}
        unprot = dict(unprotected) if unprotected is not None else {}
        if unprotected is None and key.kid is not None and HeaderLabel.KID not in prot:
            unprot[HeaderLabel.KID.value] = key.kid
        headers = Headers.build(prot, unprot)
    alg = headers.alg
    key.check_alg(alg)
    return headers, alg


class Sign1Template:
    """COSE_Sign1 signing with one key and fixed headers, prepared once.

    The headers follow the rules of :func:`sign1` and are built, checked and encoded when the template is made;
    ``template.sign(payload)`` then returns exactly what ``sign1(payload, key, protected=..., unprotected=...)``
    returns, concatenating the Sig_structure and the COSE_Sign1 array from their encoded parts (RFC 9052 §4.4).
    """

    __slots__ = ("_headers", "_sig_prefix", "_sign1_prefix", "alg", "key")

    def __init__(
        self,
        key: CoseKey,
        *,
        protected: Mapping[Any, Any] | bytes | None = None,
        unprotected: Mapping[Any, Any] | None = None,
    ) -> None:
        if not key.is_private:
            raise EncodeError("signing needs a private key")
        headers, alg = _build_signing_headers(key, protected, unprotected)
        raw = headers.protected_raw
        self.key = key
        self.alg = alg
        self._headers = headers  # never handed out, so nobody can change these dicts
        self._sig_prefix = b"\x84" + CTX_SIGNATURE1 + bstr(raw)
        self._sign1_prefix = b"\x84" + bstr(raw) + cbor.encode(headers.unprotected)

    def sign(self, payload: bytes, *, detached: bool = False, tag: bool = True, external_aad: bytes = b"") -> bytes:
        """The COSE_Sign1 over ``payload`` (see :func:`sign1` for ``detached``, ``tag`` and ``external_aad``)."""
        if type(external_aad) is bytes and not external_aad:
            aad = _EMPTY_AAD
        else:
            aad = bstr(check_bytes(external_aad, "external_aad"))
        encoded = bstr(payload if type(payload) is bytes else check_bytes(payload, "payload"))
        signature = self.key.sign_bytes(self.alg, self._sig_prefix + aad + encoded)
        return (
            (_SIGN1_TAG_HEAD if tag else b"") + self._sign1_prefix + (_NIL if detached else encoded) + bstr(signature)
        )


_MEMO_SCALARS: Final = frozenset({int, str, bytes, bool, type(None)})
_MEMO_SLOT: Final = "sign1-templates"
_MEMO_MAX: Final = 32


def _memo_items(bucket: Mapping[Any, Any] | None) -> tuple[Any, ...] | None:
    """A key for a small header map of scalars that tells apart what ``==`` does not (``1``/``True``, labels/ints)."""
    if bucket is None:
        return ()
    if type(bucket) is not dict or len(bucket) > 4:
        return None
    labels = tuple(bucket)
    values = tuple(bucket.values())
    types = (*map(type, labels), *map(type, values))
    return (labels, values, types) if _MEMO_SCALARS.issuperset(types) else None


def _template(
    key: CoseKey, protected: Mapping[Any, Any] | bytes | None, unprotected: Mapping[Any, Any] | None
) -> Sign1Template:
    """A template for these headers; small all-scalar header maps are memoised per key.

    The memo only ever holds templates that a full build accepted, under a key that tells apart values ``==`` does
    not, so signing again with the same headers skips building, encoding and validating them.
    """
    if not key.is_private:
        raise EncodeError("signing needs a private key")
    memo_key: tuple[Any, ...] | None = None
    if protected is None or type(protected) is dict:
        prot_items = _memo_items(protected)
        unprot_items = _memo_items(unprotected) if prot_items is not None else None
        if prot_items is not None and unprot_items is not None:
            memo_key = (protected is None, prot_items, unprotected is None, unprot_items)
            memo: dict[tuple[Any, ...], Sign1Template] | None = key._cache.get(_MEMO_SLOT)
            if memo is not None:
                found = memo.get(memo_key)
                if found is not None:
                    return found
    template = Sign1Template(key, protected=protected, unprotected=unprotected)
    if memo_key is not None:
        memo = key._cache.setdefault(_MEMO_SLOT, {})
        if len(memo) < _MEMO_MAX:
            memo[memo_key] = template
    return template


def _signing_headers(
    key: CoseKey, protected: Mapping[Any, Any] | bytes | None, unprotected: Mapping[Any, Any] | None
) -> tuple[Headers, Algorithm]:
    """Headers with ``alg`` first in the protected bucket (added from the key unless given) and the key's kid."""
    template = _template(key, protected, unprotected)
    return template._headers, template.alg


def sign1(
    payload: bytes,
    key: CoseKey,
    *,
    protected: Mapping[Any, Any] | bytes | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    detached: bool = False,
    tag: bool = True,
    external_aad: bytes = b"",
) -> bytes:
    """Sign ``payload`` into a COSE_Sign1.

    ``alg`` comes from ``protected`` if present, else the key (its ``alg``, or ESP256/ESP384/ESP512/Ed25519 by curve)
    and is put first in the protected map. With ``unprotected=None`` the key's kid (if any) goes there. ``protected``
    may also be the raw protected bytes to reproduce an existing message. ``detached`` leaves ``nil`` as the payload.
    To sign many payloads with the same key and headers, :class:`Sign1Template` prepares the headers once.
    """
    return _template(key, protected, unprotected).sign(payload, detached=detached, tag=tag, external_aad=external_aad)


@dataclass(frozen=True, slots=True, eq=False)
class Signature:
    """One COSE_Signature of a COSE_Sign."""

    headers: Headers
    signature: bytes

    @property
    def protected(self) -> dict[Any, Any]:
        return self.headers.protected

    @property
    def protected_raw(self) -> bytes:
        return self.headers.protected_raw

    @property
    def unprotected(self) -> dict[Any, Any]:
        return self.headers.unprotected

    @property
    def alg(self) -> Algorithm:
        return self.headers.alg

    @property
    def kid(self) -> bytes | None:
        return self.headers.kid


@dataclass(frozen=True, slots=True)
class Signer:
    """A signer for :func:`sign` with explicit per-signature headers (defaults as in :func:`sign1`)."""

    key: CoseKey
    protected: Mapping[Any, Any] | bytes | None = None
    unprotected: Mapping[Any, Any] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class SignMessage:
    """A decoded COSE_Sign: body headers, payload and one or more signatures."""

    headers: Headers
    payload: bytes | None
    signatures: tuple[Signature, ...]
    tagged: bool = True

    @property
    def protected(self) -> dict[Any, Any]:
        return self.headers.protected

    @property
    def protected_raw(self) -> bytes:
        return self.headers.protected_raw

    @property
    def unprotected(self) -> dict[Any, Any]:
        return self.headers.unprotected

    @property
    def algs(self) -> tuple[Algorithm | int | str, ...]:
        """Each signer's alg value (as an :class:`Algorithm` where known)."""
        out: list[Algorithm | int | str] = []
        for sig in self.signatures:
            value = sig.headers.get(HeaderLabel.ALG)
            try:
                out.append(Algorithm.from_id(value))
            except UnsupportedAlgorithmError:
                out.append(value)
        return tuple(out)

    @classmethod
    def decode(cls, data: bytes) -> SignMessage:
        """Decode a COSE_Sign, tagged (98) or not."""
        items, tagged = decode_cose(data, COSE_SIGN_TAG, (4,), "COSE_Sign")
        headers = Headers.decode(items[0], items[1], "COSE_Sign")
        payload = _payload_field(items[2], "COSE_Sign")
        if not isinstance(items[3], list) or not items[3]:
            raise DecodeError("COSE_Sign signatures must be a non-empty array")
        sigs = []
        for entry in items[3]:
            if not isinstance(entry, list) or len(entry) != 3:
                raise DecodeError("COSE_Signature must be an array of 3 items")
            sig_headers = Headers.decode(entry[0], entry[1], "COSE_Signature")
            if not isinstance(entry[2], bytes):
                raise DecodeError("COSE_Signature signature must be a byte string")
            sigs.append(Signature(sig_headers, entry[2]))
        return cls(headers, payload, tuple(sigs), tagged)

    def to_be_signed(
        self, signature: Signature, *, detached_payload: bytes | None = None, external_aad: bytes = b""
    ) -> bytes:
        payload = payload_for(self.payload, detached_payload)
        return to_be_signed(
            CTX_SIGNATURE, self.headers.protected_raw, signature.headers.protected_raw, external_aad, payload
        )

    def verify(
        self, key_or_keys: KeysArg, *, detached_payload: bytes | None = None, external_aad: bytes = b""
    ) -> CoseKey:
        """Verify the first signature that one of the keys can check (by alg, then kid); return that key.

        Raises :class:`SignatureError` if a candidate signature fails or none matches a key's kid,
        :class:`UnsupportedAlgorithmError` if no key can do any signer's algorithm.
        """
        keys = as_keys(key_or_keys)
        payload_for(self.payload, detached_payload)
        last: VeriteeError | None = None
        for sig in self.signatures:
            try:
                alg = sig.alg
                found = candidates(keys, alg, sig.kid)
                tbs = self.to_be_signed(sig, detached_payload=detached_payload, external_aad=external_aad)
                return _try_keys(found, alg, tbs, sig.signature)
            except SignatureError as exc:
                last = exc
            except (UnsupportedAlgorithmError, DecodeError) as exc:
                if not isinstance(last, SignatureError):
                    last = exc
        if isinstance(last, SignatureError):
            raise SignatureError(f"COSE_Sign: no signature verifies ({last})")
        raise UnsupportedAlgorithmError(f"COSE_Sign: no key can check any of the signers' algorithms ({last})")

    def encode(self, *, tag: bool | None = None) -> bytes:
        sigs = [[s.headers.protected_raw, s.headers.unprotected, s.signature] for s in self.signatures]
        items = [self.headers.protected_raw, self.headers.unprotected, self.payload, sigs]
        return encode_cose(COSE_SIGN_TAG if (self.tagged if tag is None else tag) else None, items)


def sign(
    payload: bytes,
    keys: Sequence[CoseKey | Signer],
    *,
    protected: Mapping[Any, Any] | bytes | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    detached: bool = False,
    tag: bool = True,
    external_aad: bytes = b"",
) -> bytes:
    """Sign ``payload`` into a COSE_Sign with one COSE_Signature per key (``alg`` and kid as in :func:`sign1`)."""
    if not keys:
        raise EncodeError("COSE_Sign needs at least one signer")
    body = Headers.build(protected, unprotected)
    sigs = []
    for entry in keys:
        signer = entry if isinstance(entry, Signer) else Signer(entry)
        headers, alg = _signing_headers(signer.key, signer.protected, signer.unprotected)
        tbs = to_be_signed(CTX_SIGNATURE, body.protected_raw, headers.protected_raw, external_aad, payload)
        sigs.append([headers.protected_raw, headers.unprotected, signer.key.sign_bytes(alg, tbs)])
    items = [body.protected_raw, body.unprotected, None if detached else payload, sigs]
    return encode_cose(COSE_SIGN_TAG if tag else None, items)

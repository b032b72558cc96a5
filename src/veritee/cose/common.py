"""Shared COSE plumbing: header buckets (RFC 9052 §3), tags, key selection, hand-built ToBeSigned/MAC/Enc structures.

The ``*_structure`` helpers build the CBOR arrays by concatenation from the raw protected bytes, so nothing that a
signature covers is ever decoded and re-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import cbor2

from veritee import cbor
from veritee.cose.algorithms import Algorithm, HeaderLabel
from veritee.cose.keys import CoseKey
from veritee.errors import (
    DecodeError,
    EncodeError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    ValidationError,
)

__all__ = [
    "COSE_ENCRYPT0_TAG",
    "COSE_ENCRYPT_TAG",
    "COSE_MAC0_TAG",
    "COSE_SIGN1_TAG",
    "COSE_SIGN_TAG",
    "Headers",
    "KeysArg",
]

COSE_SIGN_TAG: Final = 98
COSE_SIGN1_TAG: Final = 18
COSE_ENCRYPT_TAG: Final = 96
COSE_ENCRYPT0_TAG: Final = 16
COSE_MAC_TAG: Final = 97
COSE_MAC0_TAG: Final = 17

KeysArg = CoseKey | Sequence[CoseKey]

# Labels whose meaning veritee implements; a 'crit' list naming anything else is rejected (RFC 9052 §3.1).
_UNDERSTOOD: Final = frozenset(int(label) for label in HeaderLabel)
_BSTR_LABELS: Final = frozenset(int(x) for x in (HeaderLabel.KID, HeaderLabel.IV, HeaderLabel.PARTIAL_IV,
                                                   HeaderLabel.SALT))  # fmt: skip
_ALG: Final = int(HeaderLabel.ALG)
_CRIT: Final = int(HeaderLabel.CRIT)
_IV: Final = int(HeaderLabel.IV)
_PARTIAL_IV: Final = int(HeaderLabel.PARTIAL_IV)


def head(major: int, n: int) -> bytes:
    """A CBOR initial byte plus argument in preferred (shortest) form."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


_BSTR_HEADS: Final = tuple(head(2, n) for n in range(256))


def bstr(data: bytes) -> bytes:
    """The CBOR encoding of a byte string."""
    n = len(data)
    return (_BSTR_HEADS[n] if n < 256 else head(2, n)) + data


def check_bytes(value: object, what: str) -> bytes:
    if type(value) is bytes:
        return value
    if not isinstance(value, bytes | bytearray):
        raise EncodeError(f"{what} must be bytes, not {type(value).__name__}")
    return bytes(value)


def to_be_signed(
    context: bytes, body_protected: bytes, sign_protected: bytes | None, aad: bytes, payload: bytes
) -> bytes:
    """Sig_structure / MAC_structure (RFC 9052 §4.4, §6.3); ``context`` is the already-encoded tstr."""
    aad = check_bytes(aad, "external_aad")
    payload = check_bytes(payload, "payload")
    if sign_protected is None:
        return b"\x84" + context + bstr(body_protected) + bstr(aad) + bstr(payload)
    return b"\x85" + context + bstr(body_protected) + bstr(sign_protected) + bstr(aad) + bstr(payload)


def enc_structure(context: bytes, protected: bytes, aad: bytes) -> bytes:
    """Enc_structure (RFC 9052 §5.3)."""
    return b"\x83" + context + bstr(protected) + bstr(check_bytes(aad, "external_aad"))


CTX_SIGNATURE1: Final = b"\x6aSignature1"
CTX_SIGNATURE: Final = b"\x69Signature"
CTX_MAC0: Final = b"\x64MAC0"
CTX_ENCRYPT0: Final = b"\x68Encrypt0"
CTX_ENCRYPT: Final = b"\x67Encrypt"


_SCALARS: Final = (int, str, bytes, bool, type(None))
# Protected headers already decoded and found valid on their own (see Headers.decode): small all-scalar maps, the
# usual ``{1: alg}``, keyed by their exact bytes and copied out. Bounded.
_PROTECTED_CACHE: dict[bytes, dict[Any, Any]] = {}
_PROTECTED_CACHE_MAX: Final = 512


def _check_bucket(bucket: dict[Any, Any], where: str) -> None:
    """The checks one header bucket must pass on its own: label types, and the types of well-known values."""
    for label, value in bucket.items():
        kind = type(label)
        if kind is not int and kind is not str and (isinstance(label, bool) or not isinstance(label, int | str)):
            raise DecodeError(f"{where}: header label {label!r} is neither int nor tstr")
        if label in _BSTR_LABELS and not isinstance(value, bytes):
            raise DecodeError(f"{where}: header {HeaderLabel(label).name} must be a byte string")
        if label == _ALG and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise DecodeError(f"{where}: alg must be an int or tstr")


def _check_crit(protected: dict[Any, Any], where: str) -> None:
    crit = protected[_CRIT]
    if not isinstance(crit, list) or not crit:
        raise DecodeError(f"{where}: crit must be a non-empty array")
    for label in crit:
        if isinstance(label, bool) or not isinstance(label, int | str):
            raise DecodeError(f"{where}: crit entry {label!r} is not a header label")
        if label not in protected:
            raise DecodeError(f"{where}: crit names {label!r}, which is not a protected header")
        if not isinstance(label, int) or label not in _UNDERSTOOD:
            raise ValidationError(f"{where}: critical header {label!r} is not understood")


class Headers:
    """The two header buckets of a COSE structure: the protected map (with its raw bytes) and the unprotected map."""

    __slots__ = ("protected", "protected_raw", "unprotected")

    def __init__(self, protected_raw: bytes, protected: dict[Any, Any], unprotected: dict[Any, Any]) -> None:
        self.protected_raw = protected_raw
        self.protected = protected
        self.unprotected = unprotected

    @classmethod
    def decode(cls, protected_raw: object, unprotected: object, where: str) -> Headers:
        """Validate both buckets (types of well-known labels, no label in both, 'crit' understood)."""
        if not isinstance(protected_raw, bytes):
            raise DecodeError(f"{where}: protected header must be a byte string")
        cached = _PROTECTED_CACHE.get(protected_raw) if protected_raw else None
        protected: Any = dict(cached) if cached is not None else (cbor.decode(protected_raw) if protected_raw else {})
        if not isinstance(protected, dict):
            raise DecodeError(f"{where}: protected header must encode a map")
        if not isinstance(unprotected, dict):
            raise DecodeError(f"{where}: unprotected header must be a map")
        if cached is None:
            _check_bucket(protected, where)
            if (protected and len(protected_raw) <= 64 and len(_PROTECTED_CACHE) < _PROTECTED_CACHE_MAX
                    and all(type(v) in _SCALARS for v in protected.values())):  # fmt: skip
                _PROTECTED_CACHE[protected_raw] = dict(protected)
        _check_bucket(unprotected, where)
        if protected and unprotected:
            for label in unprotected:
                if label in protected:
                    both = protected.keys() & unprotected.keys()
                    raise DecodeError(f"{where}: header labels {sorted(map(str, both))} appear in both buckets")
        if _CRIT in unprotected:
            raise DecodeError(f"{where}: crit must be a protected header")
        if _CRIT in protected:
            _check_crit(protected, where)
        if (_IV in protected or _IV in unprotected) and (_PARTIAL_IV in protected or _PARTIAL_IV in unprotected):
            raise DecodeError(f"{where}: IV and Partial IV must not both be present")
        return cls(protected_raw, protected, unprotected)

    @classmethod
    def build(cls, protected: Mapping[Any, Any] | bytes | None, unprotected: Mapping[Any, Any] | None) -> Headers:
        """Headers for a new structure; a protected mapping is encoded in insertion order (empty: zero-length)."""
        if isinstance(protected, bytes):
            raw = protected
        else:
            prot = {int(k) if isinstance(k, HeaderLabel) else k: v for k, v in (protected or {}).items()}
            raw = cbor.encode(prot) if prot else b""
        return cls.decode(raw, {int(k) if isinstance(k, HeaderLabel) else k: v for k, v in (unprotected or {}).items()},
                          "new COSE structure")  # fmt: skip

    def get(self, label: int) -> Any:
        """A header value from the protected bucket, else the unprotected one, else ``None``."""
        if label in self.protected:
            return self.protected[label]
        return self.unprotected.get(label)

    @property
    def alg(self) -> Algorithm:
        """The algorithm header; :class:`ValidationError` if absent, :class:`UnsupportedAlgorithmError` if unknown."""
        value = self.get(HeaderLabel.ALG)
        if value is None:
            raise ValidationError("COSE structure has no alg header")
        return Algorithm.from_id(value)

    @property
    def kid(self) -> bytes | None:
        value = self.get(HeaderLabel.KID)
        return value if isinstance(value, bytes) else None


_PLAIN: Final = frozenset({int, str, bytes, bool, float, type(None)})
_MAPS: Final = frozenset({dict, cbor2.frozendict})


def thaw(obj: Any) -> Any:
    """Mutable copies of what cbor2 decodes inside a tag (tuples -> lists, frozendicts -> dicts; keys unchanged)."""
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is tuple or kind is list:
        return [x if type(x) in _PLAIN else thaw(x) for x in obj]
    if kind in _MAPS:
        out = dict(obj.items())  # (dict(frozendict) takes cbor2's slow Mapping path)
        for value in out.values():
            if type(value) not in _PLAIN:
                return {k: v if type(v) in _PLAIN else thaw(v) for k, v in out.items()}
        return out
    if isinstance(obj, tuple | list):
        return [thaw(x) for x in obj]
    if isinstance(obj, Mapping):
        return {k: v if type(v) in _PLAIN else thaw(v) for k, v in obj.items()}
    if isinstance(obj, cbor.CBORTag):
        return cbor.CBORTag(obj.tag, thaw(obj.value))
    return obj


def unwrap(obj: Any, tag: int, length: tuple[int, ...], name: str) -> tuple[list[Any], bool]:
    """The array inside an optional COSE tag; checks the tag number and the array length."""
    tagged = isinstance(obj, cbor.CBORTag)
    if tagged:
        if obj.tag != tag:
            raise DecodeError(f"expected {name} (tag {tag}), found tag {obj.tag}")
        obj = thaw(obj.value)
    if not isinstance(obj, list) or len(obj) not in length:
        raise DecodeError(f"{name} must be an array of {' or '.join(map(str, length))} items")
    return obj, tagged


def decode_cose(data: bytes, tag: int, length: tuple[int, ...], name: str) -> tuple[list[Any], bool]:
    if not isinstance(data, bytes | bytearray):
        raise DecodeError(f"{name} input must be bytes")
    return unwrap(cbor.decode(bytes(data)), tag, length, name)


def as_keys(key_or_keys: KeysArg) -> list[CoseKey]:
    keys = [key_or_keys] if isinstance(key_or_keys, CoseKey) else list(key_or_keys)
    if not keys or not all(isinstance(k, CoseKey) for k in keys):
        raise KeyFormatError("expected a CoseKey or a non-empty sequence of CoseKey")
    return keys


def candidates(keys: list[CoseKey], alg: Algorithm, kid: bytes | None) -> list[CoseKey]:
    """The keys to try for a structure with ``alg``/``kid``: able to do ``alg``; kid matches first, then kid-less keys.

    Raises :class:`UnsupportedAlgorithmError` if no key can do ``alg``, :class:`SignatureError` if the kid matches none.
    """
    usable = []
    for key in keys:
        try:
            key.check_alg(alg)
        except UnsupportedAlgorithmError:
            continue
        usable.append(key)
    if not usable:
        raise UnsupportedAlgorithmError(f"none of the {len(keys)} key(s) can be used with {alg.name}")
    if kid is None:
        return usable
    matching = [k for k in usable if k.kid == kid] + [k for k in usable if k.kid is None]
    if not matching:
        raise SignatureError(f"no {alg.name} key has kid {kid.hex()}")
    return matching


def payload_for(payload: bytes | None, detached: bytes | None) -> bytes:
    """The payload to verify: the attached one, or the detached one when the structure carries ``nil``."""
    if payload is None:
        if detached is None:
            raise ValidationError("the payload is detached: pass detached_payload")
        return check_bytes(detached, "detached_payload")
    if detached is not None:
        raise ValidationError("the payload is attached: do not pass detached_payload")
    return payload


def encode_cose(tag: int | None, items: list[Any]) -> bytes:
    return cbor.encode(cbor.CBORTag(tag, items) if tag is not None else items)

"""COSE_Mac0 (tag 17) with HMAC (RFC 9052 §6, RFC 9053 §3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from veritee.cose.algorithms import AlgKind, Algorithm, HeaderLabel
from veritee.cose.common import (
    COSE_MAC0_TAG,
    CTX_MAC0,
    Headers,
    KeysArg,
    as_keys,
    candidates,
    decode_cose,
    encode_cose,
    payload_for,
    to_be_signed,
)
from veritee.cose.keys import CoseKey
from veritee.errors import DecodeError, SignatureError, UnsupportedAlgorithmError

__all__ = ["Mac0Message", "mac0"]


@dataclass(frozen=True, slots=True, eq=False)
class Mac0Message:
    """A decoded COSE_Mac0."""

    headers: Headers
    payload: bytes | None
    tag: bytes
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
        alg = self.headers.alg
        if alg.kind is not AlgKind.MAC:
            raise UnsupportedAlgorithmError(f"{alg.name} is not a MAC algorithm")
        return alg

    @property
    def kid(self) -> bytes | None:
        return self.headers.kid

    @classmethod
    def decode(cls, data: bytes) -> Mac0Message:
        """Decode a COSE_Mac0, tagged (17) or not."""
        items, tagged = decode_cose(data, COSE_MAC0_TAG, (4,), "COSE_Mac0")
        headers = Headers.decode(items[0], items[1], "COSE_Mac0")
        if items[2] is not None and not isinstance(items[2], bytes):
            raise DecodeError("COSE_Mac0 payload must be a byte string or nil")
        if not isinstance(items[3], bytes):
            raise DecodeError("COSE_Mac0 tag must be a byte string")
        return cls(headers, items[2], items[3], tagged)

    def verify(
        self, key_or_keys: KeysArg, *, detached_payload: bytes | None = None, external_aad: bytes = b""
    ) -> CoseKey:
        """Check the tag with the (kid-matching) symmetric key; return it. Raises :class:`SignatureError`."""
        alg = self.alg
        keys = candidates(as_keys(key_or_keys), alg, self.kid)
        data = to_be_signed(CTX_MAC0, self.headers.protected_raw, None, external_aad,
                            payload_for(self.payload, detached_payload))  # fmt: skip
        for key in keys:
            try:
                key.verify_mac_bytes(alg, data, self.tag)
            except SignatureError:
                continue
            return key
        raise SignatureError(f"{alg.name} tag does not verify with any of {len(keys)} candidate key(s)")

    def encode(self, *, tag: bool | None = None) -> bytes:
        items = [self.headers.protected_raw, self.headers.unprotected, self.payload, self.tag]
        return encode_cose(COSE_MAC0_TAG if (self.tagged if tag is None else tag) else None, items)


def mac0(
    payload: bytes,
    key: CoseKey,
    *,
    protected: Mapping[Any, Any] | bytes | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    detached: bool = False,
    tag: bool = True,
    external_aad: bytes = b"",
) -> bytes:
    """MAC ``payload`` into a COSE_Mac0; ``alg`` from ``protected``, else the key's alg, else HMAC 256/256."""
    if isinstance(protected, bytes):
        headers = Headers.build(protected, unprotected)
    else:
        prot = dict(protected or {})
        if HeaderLabel.ALG not in prot:
            prot = {HeaderLabel.ALG.value: (key.alg or Algorithm.HMAC_256_256).value, **prot}
        unprot = dict(unprotected) if unprotected is not None else {}
        if unprotected is None and key.kid is not None:
            unprot[HeaderLabel.KID.value] = key.kid
        headers = Headers.build(prot, unprot)
    alg = headers.alg
    if alg.kind is not AlgKind.MAC:
        raise UnsupportedAlgorithmError(f"{alg.name} is not a MAC algorithm")
    data = to_be_signed(CTX_MAC0, headers.protected_raw, None, external_aad, payload)
    items = [headers.protected_raw, headers.unprotected, None if detached else payload, key.mac_bytes(alg, data)]
    return encode_cose(COSE_MAC0_TAG if tag else None, items)

"""TEEP messages inside COSE: sign a message into COSE_Sign1 (or COSE_Sign for a first QueryRequest that offers
several algorithms) and verify + decode against trust anchors.

Signers are identified by ``kid`` = the RFC 9679 thumbprint of their public key. A message without a kid (libteep
sends none) is checked against every trust anchor that can do its algorithm. A signer may also present its public key
in a ``kccs`` header (RFC 9528: a CWT claims set whose ``cnf`` holds a COSE_Key); it is only used when the caller
allows learning keys on first use, and the key that verified is reported so the caller can pin it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from veritee import cbor
from veritee.cose import (
    Algorithm,
    CoseKey,
    HeaderLabel,
    Headers,
    Sign1Message,
    Sign1Template,
    Signer,
    SignMessage,
    sign,
    sign1,
)
from veritee.errors import (
    DecodeError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
)
from veritee.teep.codes import CipherSuite, CoseType
from veritee.teep.messages import Message, QueryRequest, decode_message

__all__ = [
    "KCCS_HEADER",
    "VerifiedMessage",
    "open_message",
    "peek_message",
    "presented_key",
    "sign_message",
    "sign_query_request",
]

KCCS_HEADER: Final = 14  # RFC 9528: kccs, a CWT Claims Set carrying a COSE_Key in its cnf claim
_CWT_CNF: Final = 8
_CNF_COSE_KEY: Final = 1
_SIGN1_TAG: Final = 18
_SIGN_TAG: Final = 98
_SIGN1_HEAD: Final = b"\xd2"
_SIGN_HEAD: Final = b"\xd8\x62"


@dataclass(frozen=True)
class VerifiedMessage:
    """A TEEP message whose signature verified, with who signed it and how."""

    message: Message
    signer: CoseKey
    alg: Algorithm
    cose_type: CoseType
    kid: bytes | None
    learned: bool = False  # the signer's key came from the message itself (kccs), not from a trust anchor

    @property
    def suite(self) -> CipherSuite:
        """The cipher suite the message was protected with (a COSE_Sign counts as its verifying Sign operation)."""
        return CipherSuite(((int(self.cose_type), int(self.alg)),))

    @property
    def signer_thumbprint(self) -> bytes:
        return self.signer.thumbprint()


_ALG_LABEL: Final = int(HeaderLabel.ALG)
_KID_LABEL: Final = int(HeaderLabel.KID)


def _kid_header(key: CoseKey, kid: bytes | bool | None) -> dict[int, Any]:
    if kid is False:
        return {}
    value = key.thumbprint() if kid is True or kid is None else kid
    return {_KID_LABEL: value}


def sign_message(
    message: Message | bytes,
    key: CoseKey,
    *,
    alg: Algorithm | int | None = None,
    kid: bytes | bool = True,
    present_key: bool = False,
) -> bytes:
    """COSE_Sign1 (tagged) over the encoded message.

    ``alg`` defaults to the key's (ESP256 for P-256, Ed25519 for Ed25519); pass ``Algorithm.ES256`` / ``EdDSA`` for
    peers on the older suites. ``kid=True`` puts the RFC 9679 thumbprint in the unprotected header, ``kid=False``
    leaves it out, bytes set it verbatim. ``present_key`` adds a kccs header with the public COSE_Key.
    """
    payload = message if isinstance(message, bytes) else message.encode()
    chosen = Algorithm.from_id(alg) if alg is not None else key.default_alg()
    if not present_key and (kid is True or kid is False or type(kid) is bytes):
        return _template(key, chosen, kid).sign(payload)
    unprotected = _kid_header(key, kid)
    if present_key:
        unprotected[KCCS_HEADER] = {_CWT_CNF: {_CNF_COSE_KEY: key.public().to_cose_key()}}
    return sign1(payload, key, protected={_ALG_LABEL: chosen.value}, unprotected=unprotected)


# Prepared COSE_Sign1 headers per (signing key, alg, kid choice): a TAM or Agent signs every message with the same few.
# Keyed by the key's identity; each entry keeps its key alive, so that identity cannot be reused. Bounded.
_TEMPLATES: dict[tuple[int, Algorithm, bytes | bool], tuple[CoseKey, Sign1Template]] = {}
_TEMPLATES_MAX: Final = 64


def _template(key: CoseKey, alg: Algorithm, kid: bytes | bool) -> Sign1Template:
    slot = (id(key), alg, kid)
    entry = _TEMPLATES.get(slot)
    if entry is not None and entry[0] is key:
        return entry[1]
    template = Sign1Template(key, protected={_ALG_LABEL: alg.value}, unprotected=_kid_header(key, kid))
    if len(_TEMPLATES) >= _TEMPLATES_MAX:
        _TEMPLATES.clear()
    _TEMPLATES[slot] = (key, template)
    return template


def sign_query_request(
    message: QueryRequest | bytes,
    signers: Sequence[tuple[CoseKey, Algorithm | int]],
    *,
    kid: bool = True,
    body_protected: bytes = b"",
) -> bytes:
    """COSE_Sign (tagged) with one signature per (key, alg): a first QueryRequest offering several algorithms.

    ``body_protected`` is the encoded body protected header (empty by default; libteep writes ``a0``).
    """
    payload = message if isinstance(message, bytes) else message.encode()
    entries = [
        Signer(key, protected={int(HeaderLabel.ALG): int(Algorithm.from_id(alg))}, unprotected=_kid_header(key, kid))
        for key, alg in signers
    ]
    return sign(payload, entries, protected=body_protected)


def presented_key(headers: Mapping[Any, Any]) -> CoseKey | None:
    """The public key a signer presented in a kccs header, if any (not trusted by itself)."""
    ccs = headers.get(KCCS_HEADER)
    if ccs is None:
        return None
    if not isinstance(ccs, Mapping) or not isinstance(ccs.get(_CWT_CNF), Mapping):
        raise DecodeError("kccs header must be a CWT claims set with a cnf map")
    cose_key = ccs[_CWT_CNF].get(_CNF_COSE_KEY)
    if not isinstance(cose_key, Mapping):
        raise DecodeError("kccs cnf must carry a COSE_Key (label 1)")
    key = CoseKey.from_cose_key(cose_key)
    if key.is_private:
        raise KeyFormatError("kccs must not carry a private key")
    return key


def _matching(anchors: Iterable[CoseKey], alg: Algorithm, kid: bytes | None) -> list[CoseKey]:
    usable = []
    for anchor in anchors:
        try:
            anchor.check_alg(alg)
        except UnsupportedAlgorithmError:
            continue
        if kid is None or kid == anchor.kid or kid == anchor.thumbprint():
            usable.append(anchor)
    return usable


def _verify_one(
    tbs: bytes,
    signature: bytes,
    alg: Algorithm,
    kid: bytes | None,
    headers: Headers,
    anchors: Sequence[CoseKey],
    learn: bool,
) -> tuple[CoseKey, bool]:
    found = _matching(anchors, alg, kid)
    for key in found:
        try:
            key.verify_checked(alg, tbs, signature)  # _matching has checked that the key can do alg
        except SignatureError:
            continue
        return key, False
    if found and kid is not None:
        raise SignatureError(f"{alg.name} signature does not verify with the trust anchor for kid {kid.hex()}")
    offered = presented_key({**headers.unprotected, **headers.protected}) if learn else None
    if offered is not None:
        if kid is not None and kid != offered.thumbprint():
            raise UntrustedSignerError("the presented key does not match the kid")
        offered.verify_bytes(alg, tbs, signature)
        return offered, True
    if kid is None:
        raise UntrustedSignerError(f"no trust anchor verifies this {alg.name} signature of a signer without kid")
    raise UntrustedSignerError(f"kid {kid.hex()} ({alg.name}) is not among the {len(anchors)} trust anchor(s)")


def open_message(
    data: bytes,
    trust_anchors: Sequence[CoseKey],
    *,
    compat: bool = False,
    allowed_algs: Iterable[Algorithm | int] | None = None,
    learn: bool = False,
) -> VerifiedMessage:
    """Verify a COSE_Sign1 / COSE_Sign TEEP message against ``trust_anchors`` and decode its payload.

    Raises DecodeError (not COSE, not CBOR), UnsupportedAlgorithmError (no signature uses an allowed algorithm),
    UntrustedSignerError (no trust anchor for the signer's kid, or, without a kid, none that verifies),
    SignatureError (the anchor named by the kid does not verify) and ValidationError (the payload is not a valid
    TEEP message).
    """
    allowed = None if allowed_algs is None else {int(a) for a in allowed_algs}
    # The usual tagged forms are recognised by their first bytes (d2 = tag 18, d8 62 = tag 98), so the message is
    # decoded once, by the COSE decoder; anything else is decoded here first to find out what it is.
    if type(data) is bytes and data[:1] == _SIGN1_HEAD:
        tag: int | None = _SIGN1_TAG
    elif type(data) is bytes and data[:2] == _SIGN_HEAD:
        tag = _SIGN_TAG
    else:
        outer = cbor.decode(data)
        tag = outer.tag if isinstance(outer, cbor.CBORTag) else None
    if tag == _SIGN_TAG:
        multi = SignMessage.decode(data)
        if multi.payload is None:
            raise DecodeError("a TEEP COSE_Sign must carry its payload")
        last: Exception | None = None
        for sig in multi.signatures:
            try:
                alg = sig.alg
                if allowed is not None and int(alg) not in allowed:
                    raise UnsupportedAlgorithmError(f"{alg.name} is not an allowed algorithm")
                tbs = multi.to_be_signed(sig)
                key, learned = _verify_one(tbs, sig.signature, alg, sig.kid, sig.headers, trust_anchors, learn)
            except (UnsupportedAlgorithmError, UntrustedSignerError, SignatureError) as exc:
                last = exc
                continue
            message = decode_message(multi.payload, compat=compat)
            return VerifiedMessage(message, key, alg, CoseType.SIGN, sig.kid, learned)
        if isinstance(last, SignatureError | UntrustedSignerError | UnsupportedAlgorithmError):
            raise type(last)(f"COSE_Sign: no signature verifies ({last})")
        raise DecodeError("COSE_Sign without signatures")
    if tag not in (None, _SIGN1_TAG):
        raise DecodeError(f"a TEEP message is a COSE_Sign1 (18) or COSE_Sign (98), not tag {tag}")
    single = Sign1Message.decode(data)
    payload = single.payload
    if payload is None:
        raise DecodeError("a TEEP COSE_Sign1 must carry its payload")
    headers = single.headers
    alg = headers.alg
    if allowed is not None and int(alg) not in allowed:
        raise UnsupportedAlgorithmError(f"{alg.name} is not an allowed algorithm")
    kid = headers.kid
    key, learned = _verify_one(single.to_be_signed(), single.signature, alg, kid, headers, trust_anchors, learn)
    message = decode_message(payload, compat=compat)
    return VerifiedMessage(message, key, alg, CoseType.SIGN1, kid, learned)


@dataclass(frozen=True)
class PeekedMessage:
    """An UNVERIFIED look inside a (possibly COSE-wrapped) TEEP message: for diagnostics only."""

    payload: bytes
    cose_type: CoseType | None
    algs: tuple[int | str, ...]
    kids: tuple[bytes | None, ...]


def peek_message(data: bytes) -> PeekedMessage:
    """Split a COSE_Sign1 / COSE_Sign / bare TEEP message without verifying anything."""
    outer = cbor.decode(data)
    tag = outer.tag if isinstance(outer, cbor.CBORTag) else None
    if tag == _SIGN_TAG:
        multi = SignMessage.decode(data)
        if multi.payload is None:
            raise DecodeError("COSE_Sign without payload")
        return PeekedMessage(
            multi.payload,
            CoseType.SIGN,
            tuple(s.headers.get(HeaderLabel.ALG) for s in multi.signatures),
            tuple(s.kid for s in multi.signatures),
        )
    if tag == _SIGN1_TAG or (isinstance(outer, list) and len(outer) == 4 and isinstance(outer[0], bytes)):
        single = Sign1Message.decode(data)
        if single.payload is None:
            raise DecodeError("COSE_Sign1 without payload")
        return PeekedMessage(single.payload, CoseType.SIGN1, (single.headers.get(HeaderLabel.ALG),), (single.kid,))
    if tag is not None:
        raise DecodeError(f"not a TEEP message: CBOR tag {tag}")
    return PeekedMessage(bytes(data), None, (), ())

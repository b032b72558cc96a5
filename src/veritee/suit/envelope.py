"""SUIT_Envelope: strict decoding, authentication (manifest-37 §8.3) and severable members (§8.5).

Authentication: the SUIT_Digest in the authentication wrapper is computed over the *bstr-wrapped* manifest (the CBOR
byte-string head included); each COSE block signs (or MACs) that digest as a detached payload, i.e. the encoded
SUIT_Digest that the wrapper carries inside its bstr. A manifest is authentic when its digest matches and at least one
block verifies with a trust anchor (or with a key delegated to by a trust anchor, see :func:`_delegated_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from veritee import cbor
from veritee.cose import CoseKey, Mac0Message, Sign1Message, SignMessage
from veritee.errors import (
    DigestMismatchError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
    VeriteeError,
)
from veritee.suit.labels import (
    COSE_TAGS,
    SEVERABLE_MEMBERS,
    SUIT_ENVELOPE_TAG,
    CoseTag,
    EnvelopeKey,
    ManifestKey,
)
from veritee.suit.manifest import SEQUENCE_MEMBERS, Manifest, TextEntry, decode_manifest, decode_text
from veritee.suit.model import CommandSequence, SuitDigest, is_array, is_map, parse_sequence

__all__ = ["Authentication", "Envelope", "VerifiedManifest", "decode_envelope"]

_CWT_CNF = 8
_CNF_COSE_KEY = 1


@dataclass(frozen=True, slots=True)
class Authentication:
    """SUIT_Authentication: the digest of the manifest (and its encoding, the detached payload) and the COSE blocks."""

    digest: SuitDigest
    digest_raw: bytes
    blocks: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class VerifiedManifest:
    """An authenticated manifest with its severable members resolved (present ones checked against their digests)."""

    envelope: Envelope
    manifest: Manifest
    digest: SuitDigest
    signer: CoseKey
    sequences: Mapping[ManifestKey, CommandSequence]
    text: Mapping[str, TextEntry] | None
    absent: frozenset[ManifestKey]

    @property
    def sequence_number(self) -> int:
        return self.manifest.sequence_number


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded SUIT_Envelope. ``manifest`` is parsed but NOT authenticated until :meth:`verify` succeeds."""

    raw: bytes
    tagged: bool
    authentication: Authentication
    manifest_raw: bytes
    manifest: Manifest
    severable: Mapping[ManifestKey, bytes]
    integrated: Mapping[str, bytes]
    delegation: tuple[tuple[bytes, ...], ...]
    extensions: Mapping[int, bytes]

    @property
    def digest(self) -> SuitDigest:
        """The manifest digest claimed by the authentication wrapper (checked by :meth:`verify`)."""
        return self.authentication.digest

    def encode(self) -> bytes:
        return self.raw

    def verify(self, trust_anchors: CoseKey | Sequence[CoseKey]) -> VerifiedManifest:
        """Authenticate the manifest and resolve severable members.

        Raises :class:`DigestMismatchError` (manifest or severed member digest), :class:`SignatureError` (a block whose
        kid names a trust anchor does not verify, or no block at all), :class:`UntrustedSignerError` (no trust anchor
        verifies any block), :class:`ValidationError` for inconsistent severable members.
        """
        anchors = [trust_anchors] if isinstance(trust_anchors, CoseKey) else list(trust_anchors)
        auth = self.authentication
        if not auth.digest.matches(cbor.encode(self.manifest_raw)):
            raise DigestMismatchError(
                f"manifest digest {auth.digest.of(cbor.encode(self.manifest_raw))} differs from the authenticated "
                f"digest {auth.digest}"
            )
        anchors.extend(_delegated_keys(self.delegation, anchors))
        signer = _authenticate(auth, anchors)
        sequences = dict(self.manifest.sequences)
        text = self.manifest.text
        for key, member in self.severable.items():
            expected = self.manifest.severed.get(key)
            if expected is None:
                raise ValidationError(f"the envelope carries {key.name.lower()} but the manifest does not sever it")
            if not expected.matches(cbor.encode(member)):
                raise DigestMismatchError(f"severed {key.name.lower()} does not match its digest {expected}")
            if key == ManifestKey.TEXT:
                text = MappingProxyType(decode_text(member))
            else:
                sequences[key] = parse_sequence(member, what=f"{key.name.lower()} sequence")
        absent = frozenset(k for k in self.manifest.severed if k not in self.severable)
        return VerifiedManifest(
            envelope=self,
            manifest=self.manifest,
            digest=auth.digest,
            signer=signer,
            sequences=MappingProxyType(sequences),
            text=text,
            absent=absent,
        )

    def sever(self, *keys: ManifestKey) -> Envelope:
        """A copy without the given severable members (the manifest keeps their digests; signatures stay valid)."""
        value = cbor.decode(self.raw)
        body = dict(value.value if isinstance(value, cbor.CBORTag) else value)
        for key in keys:
            if key not in self.manifest.severed:
                raise ValidationError(f"{ManifestKey(key).name.lower()} is not severable in this manifest")
            body.pop(int(key), None)
        return decode_envelope(cbor.encode(cbor.CBORTag(SUIT_ENVELOPE_TAG, body) if self.tagged else body))


def _cose_tag(block: bytes) -> int:
    value = cbor.decode(block)
    if not isinstance(value, cbor.CBORTag) or value.tag not in COSE_TAGS:
        raise ValidationError("an authentication block must be a tagged COSE structure")
    if value.tag not in (CoseTag.SIGN1, CoseTag.SIGN, CoseTag.MAC0, CoseTag.MAC):
        raise ValidationError(f"COSE tag {value.tag} is not an authentication block")
    return value.tag


def _anchor_for_kid(kid: bytes, anchors: list[CoseKey]) -> list[CoseKey]:
    """Trust anchors named by ``kid`` (their kid, or their RFC 9679 thumbprint, as TEEP uses)."""
    found = []
    for anchor in anchors:
        if anchor.kid == kid:
            found.append(anchor)
        elif anchor.thumbprint() == kid:
            found.append(CoseKey(anchor.key, kid=kid, alg=anchor.alg))
    return found


def _verify_block(block: bytes, payload: bytes, anchors: list[CoseKey]) -> CoseKey:
    tag = _cose_tag(block)
    message: Sign1Message | SignMessage | Mac0Message
    if tag == CoseTag.SIGN1:
        message = Sign1Message.decode(block)
    elif tag == CoseTag.SIGN:
        message = SignMessage.decode(block)
    elif tag == CoseTag.MAC0:
        message = Mac0Message.decode(block)
    else:
        raise UnsupportedAlgorithmError("COSE_Mac (tag 97) authentication blocks are not supported")
    kid = None if isinstance(message, SignMessage) else message.kid
    keys = anchors
    if kid is not None:
        keys = _anchor_for_kid(kid, anchors)
        if not keys:
            raise UntrustedSignerError(f"the signer kid {kid.hex()} is not a trust anchor")
    if not keys:
        raise UntrustedSignerError("no trust anchors were given")
    try:
        return message.verify(keys, detached_payload=payload)
    except UnsupportedAlgorithmError as exc:
        raise UntrustedSignerError(f"no trust anchor can verify this block: {exc}") from None
    except SignatureError as exc:
        if kid is not None:
            raise
        raise UntrustedSignerError(f"no trust anchor verifies the authentication block ({exc})") from None


def _authenticate(auth: Authentication, anchors: list[CoseKey]) -> CoseKey:
    if not auth.blocks:
        raise SignatureError("the authentication wrapper holds no COSE authentication block")
    errors: list[VeriteeError] = []
    for block in auth.blocks:
        try:
            return _verify_block(block, auth.digest_raw, anchors)
        except (VerificationError, UnsupportedAlgorithmError) as exc:
            errors.append(exc)
    for kind in (SignatureError, UntrustedSignerError):
        for error in errors:
            if isinstance(error, kind):
                raise error
    raise errors[0]


def _delegated_keys(chains: tuple[tuple[bytes, ...], ...], anchors: list[CoseKey]) -> list[CoseKey]:
    """Keys delegated by SUIT_Delegation chains: each CWT (COSE_Sign1) is signed by a trust anchor or by the key that
    the previous CWT of its chain confirmed (claim ``cnf`` {1: COSE_Key}); the last confirmed key of a chain may then
    authenticate the manifest. Time claims are not evaluated (the core has no clock).
    """
    delegated: list[CoseKey] = []
    for chain in chains:
        signers = list(anchors)
        for cwt in chain:
            message = Sign1Message.decode(cwt)
            if message.payload is None:
                raise ValidationError("a delegation CWT must carry its claims")
            try:
                message.verify(signers)
            except (SignatureError, UnsupportedAlgorithmError) as exc:
                raise UntrustedSignerError(f"a delegation CWT is not signed by a trusted key: {exc}") from None
            claims = cbor.decode(message.payload)
            cnf = claims.get(_CWT_CNF) if is_map(claims) else None
            if not is_map(cnf) or _CNF_COSE_KEY not in cnf:
                raise ValidationError("a delegation CWT must confirm a COSE_Key (cnf {1: COSE_Key})")
            signers = [CoseKey.from_cose_key(cnf[_CNF_COSE_KEY])]
        delegated.extend(signers)
    return delegated


def _bstr(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ValidationError(f"{what} must be a byte string")
    return value


def _decode_authentication(raw: bytes) -> Authentication:
    value = cbor.decode(raw)
    if not is_array(value) or not value:
        raise ValidationError("SUIT_Authentication must be an array [bstr digest, * bstr COSE]")
    digest_raw = _bstr(value[0], "the authentication digest")
    digest = SuitDigest.decode(digest_raw)
    blocks = tuple(_bstr(b, "an authentication block") for b in value[1:])
    for block in blocks:
        _cose_tag(block)
    return Authentication(digest, digest_raw, blocks)


def _decode_delegation(raw: bytes) -> tuple[tuple[bytes, ...], ...]:
    value = cbor.decode(raw)
    if not is_array(value) or not value or not all(is_array(c) and c for c in value):
        raise ValidationError("SUIT_Delegation must be [+ [+ bstr .cbor CWT]]")
    return tuple(tuple(_bstr(cwt, "a delegation CWT") for cwt in chain) for chain in value)


def decode_envelope(data: bytes) -> Envelope:
    """Decode a SUIT_Envelope (tag 107 optional). Raises DecodeError / ValidationError / UnsupportedAlgorithmError."""
    value = cbor.decode(data)
    tagged = isinstance(value, cbor.CBORTag)
    if tagged:
        if value.tag != SUIT_ENVELOPE_TAG:
            raise ValidationError(f"CBOR tag {value.tag} is not a SUIT_Envelope (tag {SUIT_ENVELOPE_TAG})")
        value = value.value
    if not is_map(value):
        raise ValidationError("SUIT_Envelope must be a map")
    keys = list(value.keys())
    for required in (EnvelopeKey.AUTHENTICATION_WRAPPER, EnvelopeKey.MANIFEST):
        if required not in value:
            raise ValidationError(f"SUIT_Envelope lacks {required.name.lower()} ({int(required)})")
    if keys.index(EnvelopeKey.AUTHENTICATION_WRAPPER) > keys.index(EnvelopeKey.MANIFEST):
        raise ValidationError("the authentication wrapper must come before the manifest")
    authentication = _decode_authentication(_bstr(value[EnvelopeKey.AUTHENTICATION_WRAPPER], "authentication-wrapper"))
    manifest_raw = _bstr(value[EnvelopeKey.MANIFEST], "the manifest")
    manifest = decode_manifest(manifest_raw)
    severable: dict[ManifestKey, bytes] = {}
    integrated: dict[str, bytes] = {}
    extensions: dict[int, bytes] = {}
    delegation: tuple[tuple[bytes, ...], ...] = ()
    for key, item in value.items():
        if key in (EnvelopeKey.AUTHENTICATION_WRAPPER, EnvelopeKey.MANIFEST):
            continue
        if isinstance(key, str):
            integrated[key] = _bstr(item, f"integrated payload {key!r}")
        elif not isinstance(key, int) or isinstance(key, bool):
            raise ValidationError(f"envelope key {key!r} is neither an integer nor text")
        elif key == EnvelopeKey.DELEGATION:
            delegation = _decode_delegation(_bstr(item, "suit-delegation"))
        elif key in SEVERABLE_MEMBERS:
            severable[ManifestKey(key)] = _bstr(item, f"severable member {key}")
        elif key in SEQUENCE_MEMBERS:
            raise ValidationError(f"manifest member {key} is not severable and cannot be in the envelope")
        else:
            extensions[key] = _bstr(item, f"envelope extension {key}")
    return Envelope(
        raw=bytes(data),
        tagged=tagged,
        authentication=authentication,
        manifest_raw=manifest_raw,
        manifest=manifest,
        severable=MappingProxyType(severable),
        integrated=MappingProxyType(integrated),
        delegation=delegation,
        extensions=MappingProxyType(extensions),
    )

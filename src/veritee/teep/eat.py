"""Entity Attestation Tokens (RFC 9711) for the TEEP EAT profile (draft-ietf-teep-protocol-26 §5).

The profile: CBOR only, definite lengths, preferred serialization, no tags inside the claims; required claims ueid,
oemid, hwmodel, hwversion, manifests and cnf (whose kid is the RFC 9679 thumbprint of the TEEP Agent's key);
eat_nonce (a single bstr) with the nonce freshness mechanism. The token is a COSE_Sign1 by the attestation key
(optionally inside the CWT tag 61), identified by kid = the thumbprint of that key.

``decode_eat`` looks inside without verifying (diagnostics, the RFC 9711 examples); ``verify_eat`` checks the
signature against trust anchors, the profile, the nonce / age and the cnf binding, and returns the claims.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from veritee import cbor
from veritee.cose import Algorithm, CoseKey, HeaderLabel, Sign1Message, sign1
from veritee.errors import (
    DecodeError,
    FreshnessError,
    SignatureError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
)

__all__ = [
    "CWT_TAG",
    "TEEP_EAT_MEDIA_TYPE",
    "TEEP_EAT_PROFILE",
    "Claim",
    "ConfirmationKeyMismatch",
    "DecodedEat",
    "EatClaims",
    "check_nonce",
    "decode_eat",
    "make_teep_claims",
    "sign_eat",
    "verify_eat",
]

TEEP_EAT_PROFILE: Final = "urn:ietf:rfc:rfcXXXX"
"""The profile URI of draft -26 (the RFC number is assigned on publication)."""
TEEP_EAT_MEDIA_TYPE: Final = f"application/eat+cwt; eat_profile={TEEP_EAT_PROFILE}"
CWT_TAG: Final = 61
_SIGN1_TAG: Final = 18


class Claim(IntEnum):
    """CWT / EAT claim keys (RFC 8392, RFC 8747, RFC 9711)."""

    ISS = 1
    SUB = 2
    AUD = 3
    EXP = 4
    NBF = 5
    IAT = 6
    CTI = 7
    CNF = 8
    EAT_NONCE = 10
    UEID = 256
    SUEIDS = 257
    OEMID = 258
    HWMODEL = 259
    HWVERSION = 260
    UPTIME = 261
    OEMBOOT = 262
    DBGSTAT = 263
    LOCATION = 264
    EAT_PROFILE = 265
    SUBMODS = 266
    BOOTCOUNT = 267
    BOOTSEED = 268
    DLOAS = 269
    SWNAME = 270
    SWVERSION = 271
    MANIFESTS = 272
    MEASUREMENTS = 273
    MEASRES = 274
    INTUSE = 275


_CNF_COSE_KEY: Final = 1
_CNF_KID: Final = 3
TEEP_REQUIRED: Final = (Claim.UEID, Claim.OEMID, Claim.HWMODEL, Claim.HWVERSION, Claim.MANIFESTS, Claim.CNF)


class ConfirmationKeyMismatch(VerificationError):
    """The token's cnf claim names another key than the one that signed the TEEP message (impersonation)."""


def _bstr_range(value: Any, name: str, lo: int, hi: int) -> None:
    if not isinstance(value, bytes) or not lo <= len(value) <= hi:
        raise ValidationError(f"EAT {name} must be a byte string of {lo}..{hi} bytes")


@dataclass(frozen=True)
class EatClaims:
    """A validated EAT claims set. ``claims`` is the map as decoded (it re-encodes byte for byte)."""

    claims: Mapping[Any, Any]
    quirks: tuple[str, ...] = field(default=(), compare=False)
    manifests_label: int = field(default=Claim.MANIFESTS, compare=False)  # 273 for D.2-style tokens (compat)

    @classmethod
    def from_cbor(cls, value: Any, *, compat: bool = False) -> EatClaims:
        """Check the types of the claims we interpret (others are kept as they are)."""
        if not isinstance(value, Mapping):
            raise ValidationError("an EAT claims set is a map")
        quirks: list[str] = []
        nonce = value.get(Claim.EAT_NONCE)
        if nonce is not None:
            items = nonce if isinstance(nonce, list | tuple) else [nonce]
            if not items:
                raise ValidationError("EAT eat_nonce array must not be empty")
            for item in items:
                _bstr_range(item, "eat_nonce", 8, 64)
        if Claim.UEID in value:
            _bstr_range(value[Claim.UEID], "ueid", 7, 33)
        if Claim.OEMID in value:
            oemid = value[Claim.OEMID]
            if not (isinstance(oemid, bytes) or (isinstance(oemid, int) and not isinstance(oemid, bool))):
                raise ValidationError("EAT oemid is a byte string (random or IEEE OUI) or an integer (PEN)")
        if Claim.HWMODEL in value:
            _bstr_range(value[Claim.HWMODEL], "hwmodel", 1, 32)
        if Claim.HWVERSION in value:
            quirks += _check_version(value[Claim.HWVERSION], "hwversion", compat)
        if Claim.CNF in value:
            cnf = value[Claim.CNF]
            if not isinstance(cnf, Mapping) or len(cnf) != 1 or not ({_CNF_COSE_KEY, 2, _CNF_KID} & set(cnf)):
                raise ValidationError(
                    "EAT cnf is a map with exactly one of COSE_Key (1), Encrypted_COSE_Key (2), kid (3)"
                )
            if _CNF_KID in cnf and not isinstance(cnf[_CNF_KID], bytes):
                raise ValidationError("EAT cnf kid is a byte string")
        if Claim.IAT in value and (isinstance(value[Claim.IAT], bool) or not isinstance(value[Claim.IAT], int | float)):
            raise ValidationError("EAT iat is a NumericDate")
        if Claim.EAT_PROFILE in value and not isinstance(value[Claim.EAT_PROFILE], str | bytes):
            raise ValidationError("EAT eat_profile is a URI (tstr) or an OID (bstr)")
        if Claim.ISS in value and not isinstance(value[Claim.ISS], str):
            raise ValidationError("CWT iss is a text string")
        for key in (Claim.MANIFESTS, Claim.MEASUREMENTS):
            if key in value:
                _check_manifest_list(value[key], key.name.lower())
        label = int(Claim.MANIFESTS)
        if compat and Claim.MANIFESTS not in value and Claim.MEASUREMENTS in value:
            quirks.append("manifests under 273 (draft D.2); RFC 9711 assigns 272 (273 is measurements)")
            label = int(Claim.MEASUREMENTS)
        return cls(value, tuple(quirks), label)

    def _get(self, claim: Claim) -> Any:
        return self.claims.get(claim)

    @property
    def nonce(self) -> bytes | tuple[bytes, ...] | None:
        value = self._get(Claim.EAT_NONCE)
        return tuple(value) if isinstance(value, list | tuple) else value

    @property
    def ueid(self) -> bytes | None:
        return self._get(Claim.UEID)  # type: ignore[no-any-return]

    @property
    def oemid(self) -> bytes | int | None:
        return self._get(Claim.OEMID)  # type: ignore[no-any-return]

    @property
    def hwmodel(self) -> bytes | None:
        return self._get(Claim.HWMODEL)  # type: ignore[no-any-return]

    @property
    def hwversion(self) -> tuple[str, int | None] | None:
        value = self._get(Claim.HWVERSION)
        if value is None:
            return None
        version = value[0].decode("utf-8", "replace") if isinstance(value[0], bytes) else value[0]
        return version, (value[1] if len(value) > 1 else None)

    @property
    def manifests(self) -> tuple[tuple[int, Any], ...] | None:
        value = self.claims.get(self.manifests_label)
        return None if value is None else tuple((int(m[0]), m[1]) for m in value)

    @property
    def cnf_kid(self) -> bytes | None:
        cnf = self._get(Claim.CNF)
        return cnf.get(_CNF_KID) if isinstance(cnf, Mapping) else None

    @property
    def iat(self) -> int | float | None:
        return self._get(Claim.IAT)  # type: ignore[no-any-return]

    @property
    def profile(self) -> str | bytes | None:
        return self._get(Claim.EAT_PROFILE)  # type: ignore[no-any-return]

    @property
    def issuer(self) -> str | None:
        return self._get(Claim.ISS)  # type: ignore[no-any-return]

    def encode(self) -> bytes:
        return cbor.encode(self.claims)

    def missing_teep_claims(self) -> tuple[Claim, ...]:
        """Required claims of the TEEP profile that are absent (manifests under 273 count in compat mode)."""
        missing = [c for c in TEEP_REQUIRED if c not in self.claims]
        if Claim.MANIFESTS in missing and self.manifests is not None:
            missing.remove(Claim.MANIFESTS)
        return tuple(missing)

    def check_teep_profile(self, *, compat: bool = False) -> tuple[str, ...]:
        """Raise ValidationError unless the TEEP profile's claims are present; return the quirks accepted (compat)."""
        missing = self.missing_teep_claims()
        if Claim.CNF not in missing and self.cnf_kid is None:
            raise ValidationError("TEEP EAT profile: cnf must carry a kid")
        if isinstance(self.nonce, tuple):
            raise ValidationError("TEEP EAT profile: eat_nonce is a single byte string")
        if not missing:
            return ()
        names = ", ".join(c.name.lower() for c in missing)
        if compat and Claim.CNF not in missing:
            return (f"TEEP EAT profile claims missing (accepted in compat mode): {names}",)
        raise ValidationError(f"TEEP EAT profile: required claims missing: {names}")


def _check_version(value: Any, name: str, compat: bool) -> list[str]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= 2:
        raise ValidationError(f"EAT {name} is [version, ?scheme]")
    if len(value) == 2 and (isinstance(value[1], bool) or not isinstance(value[1], int)):
        raise ValidationError(f"EAT {name} version scheme is an integer")
    if isinstance(value[0], str):
        return []
    if compat and isinstance(value[0], bytes):
        return [f"{name} version is a byte string (libteep); RFC 9711 wants text"]
    raise ValidationError(f"EAT {name} version is a text string")


def _check_manifest_list(value: Any, name: str) -> None:
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError(f"EAT {name} is a non-empty array of [content-format, body]")
    for entry in value:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise ValidationError(f"EAT {name} entries are [content-format, body]")
        if isinstance(entry[0], bool) or not isinstance(entry[0], int) or entry[0] < 0:
            raise ValidationError(f"EAT {name} content format is an unsigned integer")


def make_teep_claims(
    *,
    agent_key: CoseKey,
    ueid: bytes,
    oemid: bytes | int,
    hwmodel: bytes,
    hwversion: tuple[str, int] | tuple[str],
    manifests: Sequence[tuple[int, Any]],
    nonce: bytes | None = None,
    iat: int | None = None,
    profile: str | None = TEEP_EAT_PROFILE,
    extra: Mapping[int, Any] | None = None,
) -> EatClaims:
    """The claims set of the TEEP profile; cnf kid = RFC 9679 thumbprint of the Agent's TEEP key."""
    claims: dict[int, Any] = {Claim.CNF.value: {_CNF_KID: agent_key.public().thumbprint()}}
    if nonce is not None:
        claims[Claim.EAT_NONCE.value] = nonce
    if iat is not None:
        claims[Claim.IAT.value] = iat
    claims.update({
        Claim.UEID.value: ueid,
        Claim.OEMID.value: oemid,
        Claim.HWMODEL.value: hwmodel,
        Claim.HWVERSION.value: list(hwversion),
        Claim.MANIFESTS.value: [[int(fmt), body] for fmt, body in manifests],
    })  # fmt: skip
    if profile is not None:
        claims[Claim.EAT_PROFILE.value] = profile
    for key, value in (extra or {}).items():
        claims.setdefault(int(key), value)
    result = EatClaims.from_cbor(claims)
    result.check_teep_profile()
    return result


def sign_eat(claims: EatClaims, attestation_key: CoseKey, *, alg: Algorithm | int | None = None) -> bytes:
    """COSE_Sign1 (tag 18) over the claims, kid = RFC 9679 thumbprint of the attestation key."""
    chosen = Algorithm.from_id(alg) if alg is not None else attestation_key.default_alg()
    return sign1(
        claims.encode(),
        attestation_key,
        protected={int(HeaderLabel.ALG): int(chosen)},
        unprotected={int(HeaderLabel.KID): attestation_key.public().thumbprint()},
    )


@dataclass(frozen=True)
class DecodedEat:
    """An EAT split open WITHOUT verification: the claims and, when signed, the COSE_Sign1."""

    claims: EatClaims
    sign1: Sign1Message | None
    cwt_tagged: bool


def decode_eat(data: bytes, *, compat: bool = False) -> DecodedEat:
    """Decode an EAT: a COSE_Sign1 (optionally in CWT tag 61) or a bare claims map. Nothing is verified."""
    outer = cbor.decode(data)
    cwt = isinstance(outer, cbor.CBORTag) and outer.tag == CWT_TAG
    inner = outer.value if cwt else outer
    if isinstance(inner, Mapping):
        return DecodedEat(EatClaims.from_cbor(inner, compat=compat), None, cwt)
    if isinstance(inner, cbor.CBORTag) and inner.tag != _SIGN1_TAG:
        raise DecodeError(f"an EAT is a COSE_Sign1 (tag 18) or a claims map, not tag {inner.tag}")
    message = Sign1Message.decode(cbor.encode(inner) if cwt else data)
    if message.payload is None:
        raise DecodeError("an EAT COSE_Sign1 carries its claims as the payload")
    return DecodedEat(EatClaims.from_cbor(cbor.decode(message.payload), compat=compat), message, cwt)


def check_nonce(claims: EatClaims, expected: bytes) -> None:
    """FreshnessError unless eat_nonce is (or contains) ``expected``; compared in constant time."""
    nonce = claims.nonce
    values = nonce if isinstance(nonce, tuple) else ((nonce,) if nonce is not None else ())
    if not values:
        raise FreshnessError("the EAT has no eat_nonce")
    if not any(hmac.compare_digest(v, expected) for v in values):
        raise FreshnessError("the EAT nonce does not match the challenge")


def verify_eat(
    data: bytes,
    trust_anchors: Sequence[CoseKey],
    *,
    expected_nonce: bytes | None = None,
    agent_key: CoseKey | None = None,
    now: float | None = None,
    max_age: float | None = None,
    teep_profile: bool = True,
    compat: bool = False,
) -> EatClaims:
    """Verify a signed EAT and return its claims.

    Checks: the COSE_Sign1 signature against ``trust_anchors`` (by kid = thumbprint, else every anchor); the TEEP
    profile's claims (``teep_profile``); ``expected_nonce`` against eat_nonce; ``now``/``max_age`` against iat; and
    that cnf's kid is the thumbprint of ``agent_key`` (the key that signed the TEEP message carrying the token).
    """
    decoded = decode_eat(data, compat=compat)
    message = decoded.sign1
    if message is None:
        raise SignatureError("the EAT is not signed")
    alg = message.alg
    kid = message.kid
    candidates = [k for k in trust_anchors if kid is None or kid in (k.kid, k.public().thumbprint())]
    if not candidates:
        raise UntrustedSignerError("the EAT signer is not among the trust anchors")
    tbs = message.to_be_signed()
    for key in candidates:
        try:
            key.verify_bytes(alg, tbs, message.signature)
            break
        except SignatureError:
            continue
    else:
        if kid is None:
            raise UntrustedSignerError("no trust anchor verifies the EAT (it names no kid)")
        raise SignatureError("the EAT signature does not verify with the trust anchor its kid names")
    claims = decoded.claims
    quirks = list(claims.quirks)
    if teep_profile:
        quirks += claims.check_teep_profile(compat=compat)
    if expected_nonce is not None:
        check_nonce(claims, expected_nonce)
    if max_age is not None:
        if now is None:
            raise ValidationError("checking the token's age needs now")
        iat = claims.iat
        if iat is None:
            raise FreshnessError("the EAT has no iat to check its age")
        if now - iat > max_age or iat - now > max_age:
            raise FreshnessError(f"the EAT was issued {now - iat:.0f} s from now; allowed {max_age} s")
    if agent_key is not None:
        kid_claim = claims.cnf_kid
        if kid_claim is None or not hmac.compare_digest(kid_claim, agent_key.public().thumbprint()):
            raise ConfirmationKeyMismatch("the EAT cnf kid is not the thumbprint of the TEEP Agent's key")
    return EatClaims(claims.claims, tuple(quirks), claims.manifests_label)

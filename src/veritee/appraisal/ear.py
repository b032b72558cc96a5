"""EAR: EAT Attestation Results (draft-ietf-rats-ear, profile ``tag:github.com,2023:veraison/ear``).

An :class:`AttestationResult` carries, per attester ("submod"), an ``ear.status`` trust tier and an AR4SI
trustworthiness vector (draft-ietf-rats-ar4si) computed from an appraisal's findings, plus the appraisal policy id,
the verifier identity, ``iat`` and the ``eat_nonce``. It is signed as a JWT (JWS compact, ES256 or EdDSA) or as a CWT
(COSE_Sign1, see :mod:`veritee.appraisal.ear_cwt`). Verification functions return the result or raise.

JSON claim names and CBOR labels are those of the veraison profile: eat_profile 265, iat 6, eat_nonce 10,
submods 266, ear.status 1000, ear.trustworthiness-vector 1001, ear.appraisal-policy-id 1003, ear.verifier-id 1004
({developer 0, build 1}); vector claims 0-7 in AR4SI order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from veritee.appraisal.findings import CATALOGUE, Check, Claim, Finding, Severity
from veritee.appraisal.jws import PrivateKey, PublicKey, b64url_decode, b64url_encode, sign_compact, verify_compact
from veritee.errors import DecodeError, FreshnessError, ValidationError

__all__ = [
    "EAR_PROFILE",
    "AttestationResult",
    "EarAppraisal",
    "TrustTier",
    "VerifierId",
    "attestation_result",
    "ear_status",
    "sign_jwt",
    "trust_vector",
    "verify_jwt",
]

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
FINDINGS_CLAIM = "ear.veritee.findings"  # unregistered extension: the ids of the findings behind the vector


class TrustTier(IntEnum):
    """ear.status values (AR4SI trust tiers)."""

    NONE = 0
    AFFIRMING = 2
    WARNING = 32
    CONTRAINDICATED = 96

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> TrustTier:
        for tier in cls:
            if tier.label == label:
                return tier
        raise ValidationError(f"ear.status {label!r} is not none, affirming, warning or contraindicated")

    @classmethod
    def of_claim(cls, value: int) -> TrustTier:
        """The tier of an AR4SI claim value: -1..1 none, 2..31 affirming, 32..95 warning, 96..127 contraindicated
        (negative values mirror the positive ranges)."""
        magnitude = abs(value)
        if magnitude <= 1:
            return cls.NONE
        if magnitude <= 31 or (value < 0 and magnitude <= 32):
            return cls.AFFIRMING
        if magnitude <= 95 or (value < 0 and magnitude <= 96):
            return cls.WARNING
        return cls.CONTRAINDICATED


@dataclass(frozen=True, slots=True)
class VerifierId:
    """ear.verifier-id: who built the verifier and which build it is."""

    developer: str
    build: str


@dataclass(frozen=True, slots=True)
class EarAppraisal:
    """One submod: status, trustworthiness vector (claims with value 0 are omitted), policy id, finding ids."""

    status: TrustTier
    vector: Mapping[Claim, int] = field(default_factory=dict)
    policy_id: str | None = None
    findings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttestationResult:
    iat: int
    verifier_id: VerifierId
    submods: Mapping[str, EarAppraisal]
    nonce: bytes | None = None
    profile: str = EAR_PROFILE

    # --- JSON (the JWT claims set) -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "eat_profile": self.profile,
            "iat": self.iat,
            "ear.verifier-id": {"developer": self.verifier_id.developer, "build": self.verifier_id.build},
            "submods": {name: _submod_json(sub) for name, sub in self.submods.items()},
        }
        if self.nonce is not None:
            claims["eat_nonce"] = b64url_encode(self.nonce)
        return claims

    @classmethod
    def from_json(cls, claims: Any) -> AttestationResult:
        """Check and convert a JWT claims set; raises ValidationError naming the first bad claim."""
        top = _obj(claims, "EAR claims")
        profile = top.get("eat_profile")
        if profile != EAR_PROFILE:
            raise ValidationError(f"eat_profile is {profile!r}, expected {EAR_PROFILE!r}")
        verifier = _obj(top.get("ear.verifier-id"), "ear.verifier-id")
        nonce = None
        if "eat_nonce" in top:
            try:
                nonce = b64url_decode(_str(top["eat_nonce"], "eat_nonce"), "eat_nonce")
            except DecodeError as exc:
                raise ValidationError(str(exc)) from None
        submods = _obj(top.get("submods"), "submods")
        return cls(
            iat=_int(top.get("iat"), "iat"),
            verifier_id=VerifierId(
                developer=_str(verifier.get("developer"), "ear.verifier-id.developer"),
                build=_str(verifier.get("build"), "ear.verifier-id.build"),
            ),
            submods=_submods({name: _submod_from_json(sub, name) for name, sub in submods.items()}),
            nonce=_check_nonce(nonce),
        )

    # --- CBOR (the CWT claims set) -----------------------------------------------------------------------------
    def to_cbor_claims(self) -> dict[int, Any]:
        claims: dict[int, Any] = {
            265: self.profile,
            6: self.iat,
            1004: {0: self.verifier_id.developer, 1: self.verifier_id.build},
            266: {name: _submod_cbor(sub) for name, sub in self.submods.items()},
        }
        if self.nonce is not None:
            claims[10] = self.nonce
        return claims

    @classmethod
    def from_cbor_claims(cls, claims: Any) -> AttestationResult:
        top = _obj(claims, "EAR claims", keys=int)
        if top.get(265) != EAR_PROFILE:
            raise ValidationError(f"eat_profile (265) is {top.get(265)!r}, expected {EAR_PROFILE!r}")
        verifier = _obj(top.get(1004), "ear.verifier-id (1004)", keys=int)
        nonce = top.get(10)
        if nonce is not None and not isinstance(nonce, bytes):
            raise ValidationError("eat_nonce (10) must be a byte string")
        submods = _obj(top.get(266), "submods (266)")
        return cls(
            iat=_int(top.get(6), "iat (6)"),
            verifier_id=VerifierId(
                developer=_str(verifier.get(0), "ear.verifier-id developer (0)"),
                build=_str(verifier.get(1), "ear.verifier-id build (1)"),
            ),
            submods=_submods({name: _submod_from_cbor(sub, name) for name, sub in submods.items()}),
            nonce=_check_nonce(nonce),
        )


# --- helpers for (de)serialisation --------------------------------------------------------------------------------
def _obj(value: Any, where: str, *, keys: type = str) -> dict[Any, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, keys) and not isinstance(k, bool) for k in value):
        raise ValidationError(f"{where} must be a map with {keys.__name__} keys")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a string")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"{where} must be an integer")
    return value


def _check_nonce(nonce: bytes | None) -> bytes | None:
    if nonce is not None and not 8 <= len(nonce) <= 64:
        raise ValidationError(f"eat_nonce must be 8 to 64 bytes, got {len(nonce)}")
    return nonce


def _submods(submods: dict[str, EarAppraisal]) -> Mapping[str, EarAppraisal]:
    if not submods:
        raise ValidationError("submods must name at least one attester")
    return MappingProxyType(submods)


def _claim_value(value: Any, where: str) -> int:
    number = _int(value, where)
    if not -128 <= number <= 127:
        raise ValidationError(f"{where} must be in -128..127, got {number}")
    return number


def _submod_json(sub: EarAppraisal) -> dict[str, Any]:
    out: dict[str, Any] = {"ear.status": sub.status.label}
    vector = {claim.value: value for claim, value in sub.vector.items() if value}
    if vector:
        out["ear.trustworthiness-vector"] = vector
    if sub.policy_id is not None:
        out["ear.appraisal-policy-id"] = sub.policy_id
    if sub.findings:
        out[FINDINGS_CLAIM] = list(sub.findings)
    return out


def _submod_cbor(sub: EarAppraisal) -> dict[Any, Any]:
    out: dict[Any, Any] = {1000: int(sub.status)}
    vector = {claim.cbor_key: value for claim, value in sub.vector.items() if value}
    if vector:
        out[1001] = vector
    if sub.policy_id is not None:
        out[1003] = sub.policy_id
    if sub.findings:
        out[FINDINGS_CLAIM] = list(sub.findings)
    return out


_CLAIMS_BY_NAME = {claim.value: claim for claim in Claim}
_CLAIMS_BY_KEY = {claim.cbor_key: claim for claim in Claim}


def _findings_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{where} must be a list of strings")
    return tuple(value)


def _submod_from_json(value: Any, name: str) -> EarAppraisal:
    sub = _obj(value, f"submods[{name!r}]")
    vector: dict[Claim, int] = {}
    for claim_name, claim_value in _obj(sub.get("ear.trustworthiness-vector", {}), "trustworthiness vector").items():
        claim = _CLAIMS_BY_NAME.get(claim_name)
        if claim is None:
            raise ValidationError(f"submods[{name!r}]: unknown trustworthiness claim {claim_name!r}")
        vector[claim] = _claim_value(claim_value, f"submods[{name!r}].{claim_name}")
    policy_id = sub.get("ear.appraisal-policy-id")
    return EarAppraisal(
        status=TrustTier.from_label(_str(sub.get("ear.status"), f"submods[{name!r}].ear.status")),
        vector=MappingProxyType(vector),
        policy_id=None if policy_id is None else _str(policy_id, f"submods[{name!r}].ear.appraisal-policy-id"),
        findings=_findings_list(sub.get(FINDINGS_CLAIM), f"submods[{name!r}].{FINDINGS_CLAIM}"),
    )


def _submod_from_cbor(value: Any, name: str) -> EarAppraisal:
    if not isinstance(value, dict):
        raise ValidationError(f"submods[{name!r}] must be a map")
    status = _int(value.get(1000), f"submods[{name!r}] ear.status (1000)")
    try:
        tier = TrustTier(status)
    except ValueError:
        raise ValidationError(f"submods[{name!r}] ear.status {status} is not 0, 2, 32 or 96") from None
    vector: dict[Claim, int] = {}
    for key, claim_value in _obj(value.get(1001, {}), "trustworthiness vector (1001)", keys=int).items():
        claim = _CLAIMS_BY_KEY.get(key)
        if claim is None:
            raise ValidationError(f"submods[{name!r}]: unknown trustworthiness claim key {key}")
        vector[claim] = _claim_value(claim_value, f"submods[{name!r}] claim {key}")
    policy_id = value.get(1003)
    return EarAppraisal(
        status=tier,
        vector=MappingProxyType(vector),
        policy_id=None if policy_id is None else _str(policy_id, f"submods[{name!r}] policy id (1003)"),
        findings=_findings_list(value.get(FINDINGS_CLAIM), f"submods[{name!r}].{FINDINGS_CLAIM}"),
    )


# --- from findings to a trustworthiness vector --------------------------------------------------------------------
_RANK = {TrustTier.AFFIRMING: 0, TrustTier.NONE: 1, TrustTier.WARNING: 2, TrustTier.CONTRAINDICATED: 3}


def _worse(new: int, current: int) -> bool:
    if current == 0:
        return new != 0
    return _RANK[TrustTier.of_claim(new)] > _RANK[TrustTier.of_claim(current)]


def trust_vector(findings: Iterable[Finding], checks: Iterable[Check]) -> dict[Claim, int]:
    """The AR4SI vector: what the checks that ran affirm, overridden by what each finding contradicts.

    A verified quote affirms instance-identity (2); an appraised boot (log + boot policy) affirms hardware (2),
    configuration (2) and executables (3, boot-time); with the runtime policy appraised too, executables become 2
    (boot- and run-time) and file-system 2. Each finding then sets the claims its catalogue entry names, keeping the
    worst tier per claim. Runtime-opaque, storage-opaque and sourced-data are never claimed (a TPM quote says
    nothing about them).
    """
    ran = set(checks)
    vector = dict.fromkeys(Claim, 0)
    boot = {Check.BOOT_LOG, Check.BOOT_POLICY} <= ran
    runtime = {Check.IMA_LOG, Check.RUNTIME_POLICY} <= ran
    if Check.QUOTE in ran:
        vector[Claim.INSTANCE_IDENTITY] = 2
    if boot:
        vector[Claim.HARDWARE] = 2
        vector[Claim.CONFIGURATION] = 2
        vector[Claim.EXECUTABLES] = 2 if runtime else 3
    if runtime:
        vector[Claim.FILE_SYSTEM] = 2
    for item in findings:
        spec = CATALOGUE.get(item.id)
        if spec is None:
            continue
        for claim, value in spec.claims.items():
            if _worse(value, vector[claim]):
                vector[claim] = value
    return {claim: value for claim, value in vector.items() if value}


def ear_status(vector: Mapping[Claim, int], findings: Iterable[Finding]) -> TrustTier:
    """The worst tier of the vector's claims, and never better than the findings allow: any failing finding makes
    the result contraindicated, any warning at least warning."""
    status = TrustTier.NONE
    for value in vector.values():
        tier = TrustTier.of_claim(value)
        if tier is not TrustTier.NONE and (status is TrustTier.NONE or _RANK[tier] > _RANK[status]):
            status = tier
    worst = max((item.severity for item in findings), default=Severity.INFO)
    if worst.fails:
        return TrustTier.CONTRAINDICATED
    if worst is Severity.WARNING and status in (TrustTier.NONE, TrustTier.AFFIRMING):
        return TrustTier.WARNING
    return status


def attestation_result(
    findings: Iterable[Finding],
    checks: Iterable[Check],
    *,
    verifier_id: VerifierId,
    policy_id: str | None,
    nonce: bytes | None = None,
    iat: int | None = None,
    submod: str = "platform",
) -> AttestationResult:
    """An attestation result with one submod for an appraisal (pass ``appraisal.findings`` and ``appraisal.checks``)."""
    items = tuple(findings)
    vector = trust_vector(items, checks)
    return AttestationResult(
        iat=int(time.time()) if iat is None else iat,
        verifier_id=verifier_id,
        submods=MappingProxyType(
            {
                submod: EarAppraisal(
                    status=ear_status(vector, items),
                    vector=MappingProxyType(vector),
                    policy_id=policy_id,
                    findings=tuple(dict.fromkeys(item.id for item in items if item.severity > Severity.INFO)),
                )
            }
        ),
        nonce=_check_nonce(nonce),
    )


# --- JWT ----------------------------------------------------------------------------------------------------------
def sign_jwt(result: AttestationResult, key: PrivateKey) -> str:
    """The result as a signed JWT (ES256 for a P-256 key, EdDSA for Ed25519)."""
    payload = json.dumps(result.to_json(), separators=(",", ":")).encode()
    return sign_compact(payload, key)


def verify_jwt(token: str, key: PublicKey, *, expected_nonce: bytes | None = None) -> AttestationResult:
    """Verify a signed EAR JWT and return its result. Raises SignatureError (bad signature or algorithm),
    DecodeError (not a JWT), ValidationError (not an EAR), FreshnessError (not the expected nonce)."""
    header, payload = verify_compact(token, key)
    if header.get("typ", "JWT") != "JWT":
        raise ValidationError(f"JWS typ {header.get('typ')!r} is not JWT")
    try:
        claims = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"JWT payload is not JSON: {exc}") from None
    result = AttestationResult.from_json(claims)
    check_nonce(result, expected_nonce)
    return result


def check_nonce(result: AttestationResult, expected_nonce: bytes | None) -> None:
    """Raise FreshnessError when an expected nonce is given and the result does not carry exactly it."""
    if expected_nonce is not None and result.nonce != expected_nonce:
        raise FreshnessError("the attestation result's eat_nonce is not the expected nonce")

"""The TAM's attestation gate: appraise what an Agent sent in its QueryResponse and say whether it may get anything.

Two modes, chosen by the attestation-payload-format of the QueryResponse:

* **background check** (the TEEP EAT profile, the default format): the EAT is verified here with
  :func:`veritee.teep.eat.verify_eat` against the device's own attestation key and the configured attester keys,
  bound to this session (eat_nonce = our challenge, cnf kid = the thumbprint of the key that signed the TEEP message,
  iat within ``max_age``); its claims are checked against :class:`EatPolicy`; and when the EAT carries platform
  evidence (claim :data:`PLATFORM_EVIDENCE_CLAIM`) it is appraised by an :class:`Appraiser`: locally with
  :func:`veritee.appraisal.appraise` (:class:`LocalAppraiser`) or by a remote verifier (:class:`HttpAppraiser`).
* **passport**: the payload is an EAR (``eat_profile`` ``tag:github.com,2023:veraison/ear``; a JWT when the format
  says ``+jwt``, else a CWT) signed by one of the trusted verifier keys, whose eat_nonce is our challenge.

Platform evidence: the private-use claim ``-70001`` defined by :mod:`veritee.service.tee_evidence` (the Agent side,
:class:`~veritee.service.tee_evidence.PlatformEvidenceAgent`, and docs of that module): ``{"ak": TPM2B_PUBLIC,
"attest": TPMS_ATTEST, "sig": TPMT_SIGNATURE, "pcrs": tpm2-tools PCR blob}``, a TPM2_Quote whose qualifying data is
:func:`~veritee.service.tee_evidence.quote_nonce` of the TEEP challenge. The nonce is never taken from the device.

Remote verifier contract (:class:`HttpAppraiser`): the platform verifier's one-shot ``POST /v1/verify``
(:mod:`veritee.web.verifier_app`). The JSON body is ``{"evidence": {"nonce", "quote", "signature", "pcrs",
"ak_public": standard base64, "event_log": null, "ima": {"offset": 0, "entries": ""}}}`` plus the configured
``boot_policy`` / ``runtime_policy`` documents, if any; ``nonce`` is the quote's qualifying data. The answer is 200
with the EAR: ``application/json`` ``{"ear": JWT, ...}`` (what /v1/verify returns), or the token itself
(``application/eat+jwt`` text, ``application/eat+cwt`` bytes). Only the EAR is believed: it is verified with the
configured verifier keys and must carry the nonce; its status decides.

Every check that fails is a :class:`Verdict` that does not pass (with the reason), never an exception: the caller
records it on the device.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

import httpx

from veritee.appraisal import appraise
from veritee.appraisal.ear import EAR_PROFILE, AttestationResult, TrustTier, ear_status, trust_vector, verify_jwt
from veritee.appraisal.ear_cwt import verify_cwt
from veritee.appraisal.policy import CompiledPolicy
from veritee.appraisal.result import Evidence
from veritee.cose import CoseKey
from veritee.errors import (
    DecodeError,
    KeyFormatError,
    SignatureError,
    TransportError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
    VeriteeError,
)
from veritee.service.tee_evidence import PLATFORM_EVIDENCE_CLAIM, PlatformEvidence, quote_nonce
from veritee.store.tam_models import AttestationStatus
from veritee.teep.eat import EatClaims, verify_eat
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

__all__ = [
    "PLATFORM_EVIDENCE_CLAIM",
    "Appraiser",
    "AttestationConfig",
    "AttestationMode",
    "AttestationRequest",
    "EatPolicy",
    "HttpAppraiser",
    "LocalAppraiser",
    "PlatformInput",
    "PlatformVerdict",
    "Verdict",
    "attest",
    "verify_ear",
]

_STATUS: Final = {
    TrustTier.NONE: AttestationStatus.NONE,
    TrustTier.AFFIRMING: AttestationStatus.AFFIRMING,
    TrustTier.WARNING: AttestationStatus.WARNING,
    TrustTier.CONTRAINDICATED: AttestationStatus.CONTRAINDICATED,
}
_RANK: Final = {TrustTier.AFFIRMING: 0, TrustTier.NONE: 1, TrustTier.WARNING: 2, TrustTier.CONTRAINDICATED: 3}
_EVIDENCE_ERRORS = (VerificationError, DecodeError, ValidationError, UnsupportedAlgorithmError, KeyFormatError)


class AttestationMode(StrEnum):
    BACKGROUND_CHECK = "background-check"
    PASSPORT = "passport"


# --- platform evidence --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlatformInput:
    """Platform evidence from an EAT, with the TEEP challenge its quote must be over."""

    evidence: PlatformEvidence
    challenge: bytes

    @property
    def nonce(self) -> bytes:
        """The quote's expected qualifying data."""
        return quote_nonce(self.challenge)

    def appraisal_evidence(self) -> Evidence:
        _selections, banks = parse_tpm2tools_pcr_blob(self.evidence.pcrs)
        return Evidence(
            ak_public=self.evidence.ak,
            quote=self.evidence.attest,
            signature=self.evidence.sig,
            pcrs=banks,
            nonce=self.nonce,
        )


@dataclass(frozen=True)
class PlatformVerdict:
    status: TrustTier
    findings: tuple[str, ...]
    policy_id: str | None
    verifier: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.label, "findings": list(self.findings), "policy_id": self.policy_id,
                "verifier": self.verifier}  # fmt: skip


@runtime_checkable
class Appraiser(Protocol):
    """Appraises platform evidence. Raises a VeriteeError when it cannot produce a verdict (unreachable verifier,
    undecodable evidence, an answer that does not verify); the gate then fails closed."""

    def appraise(self, evidence: PlatformInput) -> PlatformVerdict: ...


class LocalAppraiser:
    """Platform appraisal in-process with :func:`veritee.appraisal.appraise` against a compiled policy."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy

    def appraise(self, evidence: PlatformInput) -> PlatformVerdict:
        result = appraise(evidence.appraisal_evidence(), self.policy)
        tier = ear_status(trust_vector(result.findings, result.checks), result.findings)
        ids = tuple(dict.fromkeys(f.id for f in result.findings if f.severity.fails))
        return PlatformVerdict(tier, ids, result.policy_id, "local")


def worst_tier(result: AttestationResult) -> TrustTier:
    return max((sub.status for sub in result.submods.values()), key=lambda t: _RANK[t])


def verify_ear(
    token: bytes | str, keys: Sequence[CoseKey], nonce: bytes, *, jwt: bool | None = None
) -> AttestationResult:
    """Verify an EAR (JWT text or CWT bytes) with the first of ``keys`` that verifies it, bound to ``nonce``."""
    if not keys:
        raise UntrustedSignerError("no trusted verifier keys are configured for attestation results")
    as_jwt = isinstance(token, str) if jwt is None else jwt
    last: VeriteeError | None = None
    for key in keys:
        try:
            if as_jwt:
                text = token if isinstance(token, str) else token.decode("ascii")
                return verify_jwt(text.strip(), key.public_key, expected_nonce=nonce)  # type: ignore[arg-type]
            raw = token if isinstance(token, bytes) else token.encode("ascii")
            return verify_cwt(raw, key.public_key, expected_nonce=nonce)  # type: ignore[arg-type]
        except (SignatureError, UnsupportedAlgorithmError, KeyFormatError) as exc:
            last = exc
        except UnicodeError as exc:
            raise DecodeError(f"an EAR JWT is ASCII text: {exc}") from None
    raise UntrustedSignerError(f"no trusted verifier key verifies the attestation result ({last})")


class HttpAppraiser:
    """Platform appraisal by a remote verifier (see the contract in the module docstring)."""

    def __init__(
        self,
        url: str,
        verifier_keys: Sequence[CoseKey],
        *,
        policies: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not verifier_keys:
            raise ValidationError("a remote verifier needs the keys its attestation results are signed with")
        unknown = sorted(set(policies or {}) - {"boot_policy", "runtime_policy"})
        if unknown:
            raise ValidationError(f"remote verifier policies are boot_policy and runtime_policy, not {unknown}")
        self.url = url
        self.verifier_keys = tuple(verifier_keys)
        self.policies = dict(policies or {})
        self.timeout = timeout
        self.verify = verify
        self.transport = transport

    def request_body(self, evidence: PlatformInput) -> dict[str, Any]:
        """The JSON posted to the verifier (see the module docstring)."""
        e = evidence.evidence

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")

        wire = {"nonce": b64(evidence.nonce), "quote": b64(e.attest), "signature": b64(e.sig), "pcrs": b64(e.pcrs),
                "ak_public": b64(e.ak), "event_log": None, "ima": {"offset": 0, "entries": ""}}  # fmt: skip
        return {"evidence": wire, **self.policies}

    def appraise(self, evidence: PlatformInput) -> PlatformVerdict:
        body = self.request_body(evidence)
        try:
            with httpx.Client(
                timeout=self.timeout, verify=self.verify, transport=self.transport, follow_redirects=False
            ) as client:
                response = client.post(self.url, json=body, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransportError(f"verifier {self.url} unreachable: {exc}") from None
        if response.status_code != 200:
            raise TransportError(f"verifier {self.url} answered HTTP {response.status_code}")
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        token: bytes | str
        if media == "application/json":
            try:
                token = response.json()["ear"]
            except (ValueError, KeyError, TypeError) as exc:
                raise DecodeError(f"verifier answer is not {{'ear': token}}: {exc}") from None
            if not isinstance(token, str):
                raise DecodeError("verifier answer: 'ear' must be a JWT string")
        elif media.endswith("+cwt"):
            token = response.content
        else:
            token = response.text
        result = verify_ear(token, self.verifier_keys, evidence.nonce)
        findings = tuple(f for sub in result.submods.values() for f in sub.findings)
        policies = {sub.policy_id for sub in result.submods.values() if sub.policy_id}
        return PlatformVerdict(worst_tier(result), findings, ",".join(sorted(policies)) or None, self.url)


# --- the gate -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EatPolicy:
    """What the EAT claims must say. ``oemids`` / ``hwmodels``: allowed values (None: any)."""

    oemids: frozenset[bytes | int] | None = None
    hwmodels: frozenset[bytes] | None = None
    max_age: float = 300.0
    require_platform_evidence: bool = False
    accept_warning: bool = False
    compat: bool = False


@dataclass(frozen=True)
class AttestationConfig:
    """Keys and policy of the gate. ``attester_keys`` sign EATs for any device (e.g. a manufacturer's key) in
    addition to a device's registered attestation key; ``verifier_keys`` sign the EARs accepted in passport mode
    (and by :class:`HttpAppraiser`); ``platform`` appraises platform evidence (None: not appraised)."""

    attester_keys: tuple[CoseKey, ...] = ()
    verifier_keys: tuple[CoseKey, ...] = ()
    policy: EatPolicy = field(default_factory=EatPolicy)
    platform: Appraiser | None = None


@dataclass(frozen=True)
class AttestationRequest:
    payload: bytes
    media_type: str
    challenge: bytes
    agent_key: CoseKey
    device_keys: tuple[CoseKey, ...]
    node: str
    now: float


@dataclass(frozen=True)
class Verdict:
    """The gate's decision. ``claims`` are the verified EAT claims (background check) to bind to the session."""

    status: AttestationStatus
    passed: bool
    mode: AttestationMode
    reason: str
    claims: EatClaims | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "status": self.status.value, "passed": self.passed, "reason": self.reason,
                **self.details}  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


def _outcome(tier: TrustTier, policy: EatPolicy, mode: AttestationMode, reason: str, **kw: Any) -> Verdict:
    passed = tier is TrustTier.AFFIRMING or (tier is TrustTier.WARNING and policy.accept_warning)
    return Verdict(_STATUS[tier], passed, mode, reason, **kw)


def _fail(mode: AttestationMode, reason: str, status: AttestationStatus = AttestationStatus.CONTRAINDICATED,
          details: Mapping[str, Any] | None = None) -> Verdict:  # fmt: skip
    return Verdict(status, False, mode, reason, details=dict(details or {}))


def is_passport(media_type: str) -> bool:
    return EAR_PROFILE in media_type


def attest(request: AttestationRequest, config: AttestationConfig) -> Verdict:
    """Run the gate on one attestation payload (never raises for bad evidence: see :class:`Verdict`)."""
    if is_passport(request.media_type):
        return _passport(request, config)
    return _background_check(request, config)


def _passport(request: AttestationRequest, config: AttestationConfig) -> Verdict:
    mode = AttestationMode.PASSPORT
    jwt = "+jwt" in request.media_type
    try:
        token: bytes | str = request.payload.decode("ascii") if jwt else request.payload
        result = verify_ear(token, config.verifier_keys, request.challenge, jwt=jwt)
    except UnicodeDecodeError:
        return _fail(mode, "attestation result: a JWT is ASCII text")
    except _EVIDENCE_ERRORS as exc:
        return _fail(mode, f"attestation result: {exc}")
    age = request.now - result.iat
    if abs(age) > config.policy.max_age:
        return _fail(mode, f"attestation result issued {age:.0f} s ago; allowed {config.policy.max_age} s")
    tier = worst_tier(result)
    details = {
        "verifier": {"developer": result.verifier_id.developer, "build": result.verifier_id.build},
        "submods": {name: sub.status.label for name, sub in result.submods.items()},
        "iat": result.iat,
    }
    return _outcome(tier, config.policy, mode, f"attestation result: {tier.label}", details=details)


def _background_check(request: AttestationRequest, config: AttestationConfig) -> Verdict:
    mode = AttestationMode.BACKGROUND_CHECK
    policy = config.policy
    anchors = (*request.device_keys, *config.attester_keys)
    if not anchors:
        return _fail(mode, "no attestation key is known for this device", AttestationStatus.NONE)
    try:
        claims = verify_eat(
            request.payload,
            anchors,
            expected_nonce=request.challenge,
            agent_key=request.agent_key,
            now=request.now,
            max_age=policy.max_age,
            compat=policy.compat,
        )
    except _EVIDENCE_ERRORS as exc:
        return _fail(mode, f"evidence: {exc}")
    details: dict[str, Any] = {
        "ueid": _jsonable(claims.ueid),
        "oemid": _jsonable(claims.oemid),
        "hwmodel": _jsonable(claims.hwmodel),
        "hwversion": _jsonable(list(claims.hwversion) if claims.hwversion else None),
        "iat": claims.iat,
    }
    if policy.oemids is not None and claims.oemid not in policy.oemids:
        return _fail(mode, f"oemid {_jsonable(claims.oemid)} is not allowed", details=details)
    if policy.hwmodels is not None and claims.hwmodel not in policy.hwmodels:
        return _fail(mode, f"hwmodel {_jsonable(claims.hwmodel)} is not allowed", details=details)
    platform = claims.claims.get(PLATFORM_EVIDENCE_CLAIM)
    if platform is None:
        if policy.require_platform_evidence:
            return _fail(mode, "the policy requires platform evidence; the EAT has none", details=details)
        return _outcome(TrustTier.AFFIRMING, policy, mode, "evidence verified", claims=claims, details=details)
    if config.platform is None:
        if policy.require_platform_evidence:
            return _fail(mode, "platform evidence cannot be appraised: no appraiser configured", details=details)
        details["platform"] = {"status": "not appraised"}
        return _outcome(TrustTier.AFFIRMING, policy, mode, "evidence verified", claims=claims, details=details)
    try:
        evidence = PlatformInput(PlatformEvidence.from_cbor(platform), request.challenge)
        verdict = config.platform.appraise(evidence)
    except TransportError as exc:
        return _fail(mode, f"platform appraisal: {exc}", AttestationStatus.NONE, details)
    except VeriteeError as exc:
        return _fail(mode, f"platform appraisal: {exc}", details=details)
    details["platform"] = verdict.to_json()
    reason = f"evidence verified; platform {verdict.status.label}"
    return _outcome(verdict.status, policy, mode, reason, claims=claims, details=details)

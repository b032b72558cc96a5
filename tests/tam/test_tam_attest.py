"""The attestation gate: background-check EATs (claims policy, platform evidence, local and remote appraisal) and
passport EARs. Every failure is a verdict that does not pass, with its reason."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tam_support import DEVICE, SoftQuoter, new_key

from veritee.appraisal.ear import EAR_PROFILE, VerifierId, attestation_result, sign_jwt
from veritee.appraisal.ear_cwt import sign_cwt
from veritee.appraisal.findings import Check, finding
from veritee.appraisal.policy import compile_policy
from veritee.cose import CoseKey
from veritee.errors import TransportError, UntrustedSignerError, ValidationError
from veritee.service.tam_attest import (
    AttestationConfig,
    AttestationMode,
    AttestationRequest,
    EatPolicy,
    HttpAppraiser,
    LocalAppraiser,
    PlatformInput,
    attest,
    verify_ear,
)
from veritee.service.tee_evidence import PLATFORM_EVIDENCE_CLAIM, PlatformEvidence
from veritee.store.tam_models import AttestationStatus
from veritee.teep.eat import make_teep_claims, sign_eat

CHALLENGE = bytes(range(32))
AGENT = new_key()
ATTESTER = new_key()
VERIFIER = new_key()
JWT_FORMAT = f"application/eat+jwt; eat_profile={EAR_PROFILE}"
CWT_FORMAT = f"application/eat+cwt; eat_profile={EAR_PROFILE}"
EAT_FORMAT = "application/eat+cwt; eat_profile=urn:ietf:rfc:rfcXXXX"


def eat(*, nonce: bytes = CHALLENGE, agent: CoseKey = AGENT, signer: CoseKey = ATTESTER, iat: float | None = None,
        extra: dict[int, Any] | None = None) -> bytes:  # fmt: skip
    claims = make_teep_claims(agent_key=agent, ueid=DEVICE.ueid, oemid=DEVICE.oemid, hwmodel=DEVICE.hwmodel,
                              hwversion=DEVICE.hwversion, manifests=DEVICE.manifests, nonce=nonce,
                              iat=int(time.time() if iat is None else iat), extra=extra)  # fmt: skip
    return sign_eat(claims, signer)


def request(
    payload: bytes, media_type: str = EAT_FORMAT, *, device_keys: tuple[CoseKey, ...] = ()
) -> AttestationRequest:
    return AttestationRequest(payload, media_type, CHALLENGE, AGENT.public(), device_keys, "ab" * 32, time.time())


def config(**changes: Any) -> AttestationConfig:
    base: dict[str, Any] = {"attester_keys": (ATTESTER.public(),), "verifier_keys": (VERIFIER.public(),)}
    return AttestationConfig(**{**base, **changes})


def ear(*, nonce: bytes = CHALLENGE, findings: tuple[Any, ...] = (), iat: int | None = None) -> Any:
    return attestation_result(findings, {Check.QUOTE}, verifier_id=VerifierId("veritee", "test"), policy_id="p",
                              nonce=nonce, iat=iat)  # fmt: skip


def _private(key: CoseKey) -> Any:
    return key.key


# --- background check ---------------------------------------------------------------------------------------------
def test_a_fresh_bound_eat_from_a_trusted_attester_passes() -> None:
    verdict = attest(request(eat()), config())
    assert verdict.passed and verdict.status is AttestationStatus.AFFIRMING
    assert verdict.mode is AttestationMode.BACKGROUND_CHECK and verdict.claims is not None
    assert verdict.to_json()["hwmodel"] == DEVICE.hwmodel.hex()
    own = new_key()  # a device's own registered attestation key works without any global attester
    assert attest(request(eat(signer=own), device_keys=(own.public(),)), config(attester_keys=())).passed


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (lambda: eat(nonce=b"another challenge"), "nonce"),
        (lambda: eat(agent=new_key()), "cnf"),
        (lambda: eat(signer=new_key()), "trust anchor"),
        (lambda: eat(iat=time.time() - 3600), "issued"),
        (lambda: b"\xa0", "not signed"),
        (lambda: b"\xff", ""),
    ],
)
def test_eats_that_do_not_verify_fail_with_a_reason(payload: Any, reason: str) -> None:
    verdict = attest(request(payload()), config())
    assert not verdict.passed and verdict.status is AttestationStatus.CONTRAINDICATED
    assert reason in verdict.reason and verdict.reason.startswith("evidence:")


def test_no_attestation_key_at_all_is_no_verdict() -> None:
    verdict = attest(request(eat()), config(attester_keys=()))
    assert not verdict.passed and verdict.status is AttestationStatus.NONE


def test_claims_policy() -> None:
    assert attest(request(eat()), config(policy=EatPolicy(oemids=frozenset({DEVICE.oemid})))).passed
    for policy in (EatPolicy(oemids=frozenset({b"\x00\x00\x01"})), EatPolicy(hwmodels=frozenset({b"other"}))):
        verdict = attest(request(eat()), config(policy=policy))
        assert not verdict.passed and "not allowed" in verdict.reason
    required = attest(request(eat()), config(policy=EatPolicy(require_platform_evidence=True)))
    assert not required.passed and "platform evidence" in required.reason


# --- platform evidence --------------------------------------------------------------------------------------------
def platform_eat(quoter: SoftQuoter) -> bytes:
    return eat(extra={PLATFORM_EVIDENCE_CLAIM: quoter.evidence(CHALLENGE).to_cbor()})


def test_platform_evidence_is_appraised_locally() -> None:
    local = LocalAppraiser(compile_policy(None, None, name="quote-only"))
    good = attest(request(platform_eat(SoftQuoter())), config(platform=local))
    assert good.passed and good.to_json()["platform"]["status"] == "affirming"
    replayed = attest(request(platform_eat(SoftQuoter(wrong_nonce=True))), config(platform=local))
    assert not replayed.passed and replayed.to_json()["platform"]["findings"]
    broken = attest(request(eat(extra={PLATFORM_EVIDENCE_CLAIM: {"ak": b"x"}})), config(platform=local))
    assert not broken.passed and "platform appraisal" in broken.reason
    unappraised = attest(request(platform_eat(SoftQuoter())), config())
    assert unappraised.passed and unappraised.to_json()["platform"] == {"status": "not appraised"}


class FakeVerifier:
    """A remote verifier honouring the /v1/verify contract: appraises the posted quote locally, signs an EAR."""

    def __init__(self, key: CoseKey, *, status: int = 200, answer: str = "json", nonce: bytes | None = None) -> None:
        self.key, self.status, self.answer, self.nonce = key, status, answer, nonce
        self.local = LocalAppraiser(compile_policy(None, None, name="remote"))
        self.seen: list[dict[str, Any]] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, http_request: httpx.Request) -> httpx.Response:
        body = json.loads(http_request.content)
        self.seen.append(body)
        if self.status != 200:
            return httpx.Response(self.status)
        wire = {k: base64.b64decode(v, validate=True) for k, v in body["evidence"].items() if isinstance(v, str)}
        evidence = PlatformEvidence(wire["ak_public"], wire["quote"], wire["signature"], wire["pcrs"])
        verdict = self.local.appraise(PlatformInput(evidence, wire["nonce"]))
        assert verdict.status.label == "affirming", verdict.findings
        result = ear(nonce=self.nonce or wire["nonce"])
        if self.answer == "cwt":
            cwt = sign_cwt(result, _private(self.key))
            return httpx.Response(200, content=cwt, headers={"content-type": "application/eat+cwt"})
        token = sign_jwt(result, _private(self.key))
        if self.answer == "jwt":
            return httpx.Response(200, text=token, headers={"content-type": "application/eat+jwt"})
        return httpx.Response(200, json={"passed": True, "findings": [], "ear": token, "policy_id": "p"})


@pytest.mark.parametrize("answer", ["json", "jwt", "cwt"])
def test_platform_evidence_is_appraised_by_a_remote_verifier(answer: str) -> None:
    fake = FakeVerifier(VERIFIER, answer=answer)
    policies: dict[str, Any] = {"runtime_policy": {"digests": {}}}
    remote = HttpAppraiser(
        "https://verifier.example/v1/verify", (VERIFIER.public(),), policies=policies, transport=fake.transport
    )
    verdict = attest(request(platform_eat(SoftQuoter())), config(platform=remote))
    assert verdict.passed, verdict.reason
    assert verdict.to_json()["platform"]["verifier"] == "https://verifier.example/v1/verify"
    [posted] = fake.seen
    assert set(posted) == {"evidence", "runtime_policy"} and posted["runtime_policy"] == {"digests": {}}
    assert set(posted["evidence"]) == {"nonce", "quote", "signature", "pcrs", "ak_public", "event_log", "ima"}
    assert posted["evidence"]["nonce"] == base64.b64encode(CHALLENGE).decode()
    assert posted["evidence"]["ima"] == {"offset": 0, "entries": ""} and posted["evidence"]["event_log"] is None


def test_remote_verifier_failures_fail_closed() -> None:
    url = "https://verifier.example/v1/verify"
    cases = [
        (FakeVerifier(VERIFIER, status=503), AttestationStatus.NONE),
        (FakeVerifier(new_key()), AttestationStatus.CONTRAINDICATED),  # signed by a key we do not trust
        (FakeVerifier(VERIFIER, nonce=b"some other nonce"), AttestationStatus.CONTRAINDICATED),
    ]
    for fake, status in cases:
        remote = HttpAppraiser(url, (VERIFIER.public(),), transport=fake.transport)
        verdict = attest(request(platform_eat(SoftQuoter())), config(platform=remote))
        assert not verdict.passed and verdict.status is status and "platform appraisal" in verdict.reason

    def unreachable(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    remote = HttpAppraiser(url, (VERIFIER.public(),), transport=httpx.MockTransport(unreachable))
    with pytest.raises(TransportError):
        remote.appraise(PlatformInput(SoftQuoter().evidence(CHALLENGE), CHALLENGE))
    with pytest.raises(ValidationError):
        HttpAppraiser(url, ())
    with pytest.raises(ValidationError):
        HttpAppraiser(url, (VERIFIER.public(),), policies={"mb_refstate": {}})


# --- passport -----------------------------------------------------------------------------------------------------
def test_passport_ears_from_trusted_verifiers_pass() -> None:
    jwt = sign_jwt(ear(), _private(VERIFIER)).encode()
    verdict = attest(request(jwt, JWT_FORMAT), config())
    assert verdict.passed and verdict.mode is AttestationMode.PASSPORT and verdict.claims is None
    cwt = sign_cwt(ear(), _private(VERIFIER))
    assert attest(request(cwt, CWT_FORMAT), config()).passed


def test_passport_ears_that_are_stale_foreign_or_negative_fail() -> None:
    stranger = CoseKey(ec.generate_private_key(ec.SECP256R1()))
    cases = [
        sign_jwt(ear(nonce=b"another session"), _private(VERIFIER)).encode(),
        sign_jwt(ear(), _private(stranger)).encode(),
        sign_jwt(ear(iat=int(time.time()) - 3600), _private(VERIFIER)).encode(),
        b"not.a.jwt",
        b"\xff\xfe",
    ]
    for payload in cases:
        verdict = attest(request(payload, JWT_FORMAT), config())
        assert not verdict.passed and verdict.mode is AttestationMode.PASSPORT
    assert not attest(
        request(sign_jwt(ear(), _private(VERIFIER)).encode(), JWT_FORMAT), config(verifier_keys=())
    ).passed


def test_warning_results_pass_only_when_the_policy_accepts_them() -> None:
    warned = ear(findings=(finding("quote.clock_unsafe", "the TPM clock is not safe"),))
    token = sign_jwt(warned, _private(VERIFIER)).encode()
    strict = attest(request(token, JWT_FORMAT), config())
    lenient = attest(request(token, JWT_FORMAT), config(policy=EatPolicy(accept_warning=True)))
    assert strict.status is lenient.status is AttestationStatus.WARNING
    assert not strict.passed and lenient.passed


def test_verify_ear_needs_keys() -> None:
    with pytest.raises(UntrustedSignerError):
        verify_ear("a.b.c", (), CHALLENGE)

"""EAR attestation results: trustworthiness vectors from findings, JWT (ES256/EdDSA) and CWT signing, verification."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from appraisal_support import bundle_files, evidence, keylime_policy
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee import cbor
from veritee.appraisal import Check, Claim, appraise
from veritee.appraisal.ear import (
    EAR_PROFILE,
    AttestationResult,
    TrustTier,
    VerifierId,
    attestation_result,
    sign_jwt,
    trust_vector,
    verify_jwt,
)
from veritee.appraisal.ear_cwt import sign_cwt, verify_cwt
from veritee.appraisal.findings import finding
from veritee.appraisal.jws import b64url_encode
from veritee.errors import DecodeError, FreshnessError, SignatureError, ValidationError, VeriteeError

VERIFIER = VerifierId(developer="https://veritee.example", build="veritee 0.1")
NONCE = bytes(range(20))
ALL = frozenset(Check)


@pytest.fixture(scope="module", params=["es256", "eddsa"])
def key(request: pytest.FixtureRequest) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if request.param == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def test_bundle_pass_and_fail_statuses(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    files = bundle_files()
    policy = keylime_policy(files)
    passed = appraise(evidence(files), policy)
    result = attestation_result(
        passed.findings, passed.checks, verifier_id=VERIFIER, policy_id=passed.policy_id, nonce=NONCE, iat=1700000000
    )
    token = sign_jwt(result, key)
    verified = verify_jwt(token, key.public_key(), expected_nonce=NONCE)
    assert verified == result
    sub = verified.submods["platform"]
    assert sub.status is TrustTier.AFFIRMING
    assert dict(sub.vector) == {
        Claim.INSTANCE_IDENTITY: 2,
        Claim.CONFIGURATION: 2,
        Claim.EXECUTABLES: 2,
        Claim.FILE_SYSTEM: 2,
        Claim.HARDWARE: 2,
    }
    assert sub.policy_id == policy.policy_id and sub.findings == ()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["eat_profile"] == EAR_PROFILE == "tag:github.com,2023:veraison/ear"
    assert claims["ear.verifier-id"] == {"developer": VERIFIER.developer, "build": VERIFIER.build}
    assert claims["submods"]["platform"]["ear.status"] == "affirming"
    assert claims["eat_nonce"] == b64url_encode(NONCE)

    failed = appraise(evidence(dict(files, **{"nonce.hex": b"00" * 20})), policy)
    bad = attestation_result(failed.findings, failed.checks, verifier_id=VERIFIER, policy_id=policy.policy_id)
    sub = verify_cwt(sign_cwt(bad, key), key.public_key()).submods["platform"]
    assert sub.status is TrustTier.CONTRAINDICATED
    assert sub.vector[Claim.INSTANCE_IDENTITY] == 96
    assert sub.findings == ("quote.nonce_mismatch",)


def test_vector_mapping() -> None:
    assert trust_vector([], [Check.QUOTE]) == {Claim.INSTANCE_IDENTITY: 2}
    boot_only = trust_vector([], [Check.QUOTE, Check.BOOT_LOG, Check.BOOT_POLICY])
    assert boot_only[Claim.EXECUTABLES] == 3 and Claim.FILE_SYSTEM not in boot_only
    vector = trust_vector(
        [
            finding("ima.not_in_policy", "x"),
            finding("ima.digest_mismatch", "y"),
            finding("boot.kernel_cmdline_mismatch", "z"),
            finding("quote.signature_invalid", "s"),
        ],
        ALL,
    )
    assert vector[Claim.EXECUTABLES] == 96 and vector[Claim.FILE_SYSTEM] == 96  # the worst tier wins
    assert vector[Claim.CONFIGURATION] == 32
    assert vector[Claim.INSTANCE_IDENTITY] == 99
    assert vector[Claim.HARDWARE] == 2
    warning = attestation_result([finding("quote.clock_unsafe", "w")], ALL, verifier_id=VERIFIER, policy_id=None)
    assert warning.submods["platform"].status is TrustTier.WARNING
    info = attestation_result([finding("quote.reset", "r")], ALL, verifier_id=VERIFIER, policy_id=None)
    assert info.submods["platform"].status is TrustTier.AFFIRMING and info.submods["platform"].findings == ()
    malformed = attestation_result(
        [finding("evidence.malformed", "m", part="quote")], [], verifier_id=VERIFIER, policy_id=None
    )
    assert malformed.submods["platform"].status is TrustTier.CONTRAINDICATED
    assert dict(malformed.submods["platform"].vector) == {Claim.INSTANCE_IDENTITY: 1}


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (0, 0),
        (1, 0),
        (-1, 0),
        (2, 2),
        (31, 2),
        (-32, 2),
        (32, 32),
        (95, 32),
        (-96, 32),
        (96, 96),
        (127, 96),
        (-128, 96),
    ],
)
def test_tiers(value: int, tier: int) -> None:
    assert TrustTier.of_claim(value) == tier


def test_jwt_rejections(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    result = attestation_result([], ALL, verifier_id=VERIFIER, policy_id="p", nonce=NONCE, iat=1)
    token = sign_jwt(result, key)
    head, payload, signature = token.split(".")
    other = ec.generate_private_key(ec.SECP256R1()) if isinstance(key, ed25519.Ed25519PrivateKey) else key
    stranger = ed25519.Ed25519PrivateKey.generate() if other is key else ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError):
        verify_jwt(token, stranger.public_key())
    forged_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_claims["submods"]["platform"]["ear.status"] = "affirming"
    forged_claims["iat"] = 2
    forged = f"{head}.{b64url_encode(json.dumps(forged_claims).encode())}.{signature}"
    with pytest.raises(SignatureError):
        verify_jwt(forged, key.public_key())
    none_header = b64url_encode(json.dumps({"alg": "none"}).encode())
    with pytest.raises(SignatureError, match="alg"):
        verify_jwt(f"{none_header}.{payload}.", key.public_key())
    crit = b64url_encode(
        json.dumps({"alg": json.loads(base64.urlsafe_b64decode(head + "=="))["alg"], "crit": ["x"]}).encode()
    )
    with pytest.raises(SignatureError, match="critical"):
        verify_jwt(f"{crit}.{payload}.{signature}", key.public_key())
    with pytest.raises(FreshnessError):
        verify_jwt(token, key.public_key(), expected_nonce=b"another nonce")
    for broken in ("a.b", "!!.e30.e30", f"{head}.{payload}.{signature}=", ""):
        with pytest.raises(DecodeError):
            verify_jwt(broken, key.public_key())


def test_cwt_rejections(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    result = attestation_result([], ALL, verifier_id=VERIFIER, policy_id="p", nonce=NONCE, iat=1)
    token = sign_cwt(result, key)
    assert verify_cwt(token, key.public_key(), expected_nonce=NONCE) == result
    tampered = bytearray(token)
    tampered[-1] ^= 1
    with pytest.raises(SignatureError):
        verify_cwt(bytes(tampered), key.public_key())
    claims = cbor.decode(cbor.decode(token).value[2]) if isinstance(cbor.decode(token), cbor.CBORTag) else None
    assert claims is not None and claims[265] == EAR_PROFILE and claims[10] == NONCE
    assert claims[266]["platform"][1000] == 2
    with pytest.raises(FreshnessError):
        verify_cwt(token, key.public_key(), expected_nonce=b"x" * 8)


def _claims() -> dict[str, Any]:
    return attestation_result([], ALL, verifier_id=VERIFIER, policy_id="p", nonce=NONCE, iat=5).to_json()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(eat_profile="tag:other"),
        lambda c: c.pop("iat"),
        lambda c: c.update(iat="now"),
        lambda c: c.update(submods={}),
        lambda c: c["submods"]["platform"].update({"ear.status": "great"}),
        lambda c: c["submods"]["platform"]["ear.trustworthiness-vector"].update({"vibes": 2}),
        lambda c: c["submods"]["platform"]["ear.trustworthiness-vector"].update({"hardware": 500}),
        lambda c: c.update(eat_nonce="AAAA"),
        lambda c: c.pop("ear.verifier-id"),
    ],
)
def test_claims_validation(mutate: Any) -> None:
    claims = _claims()
    assert AttestationResult.from_json(claims).iat == 5
    mutate(claims)
    with pytest.raises(ValidationError):
        AttestationResult.from_json(claims)


@settings(max_examples=100, deadline=None)
@given(token=st.binary(max_size=200))
def test_random_cwt_tokens_raise_typed_errors(token: bytes) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VeriteeError):
        verify_cwt(token, key.public_key())


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=200))
def test_random_jwt_tokens_raise_typed_errors(token: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VeriteeError):
        verify_jwt(token, key.public_key())

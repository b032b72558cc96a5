"""EAT evidence for the TEEP profile: libteep's evidence and attestation results, RFC 9711's CWT example, the draft's
D.2 claims, and our own build -> sign -> verify path with its freshness and key-binding checks."""

from __future__ import annotations

from typing import Any

import pytest
from teep_support import TOKEN, LibteepKeys, libteep_keys, vector_hex

from veritee import cbor
from veritee.cose import Algorithm, CoseKey, Sign1Message
from veritee.errors import FreshnessError, SignatureError, UntrustedSignerError, ValidationError
from veritee.teep.eat import (
    TEEP_EAT_MEDIA_TYPE,
    TEEP_EAT_PROFILE,
    Claim,
    ConfirmationKeyMismatch,
    EatClaims,
    check_nonce,
    decode_eat,
    make_teep_claims,
    sign_eat,
    verify_eat,
)


@pytest.fixture(scope="module")
def keys() -> LibteepKeys:
    return libteep_keys()


LIBTEEP_TOKENS = [("evidence", "agent", "Intel SGX TEEP Agent"), ("attestation_results", "verifier", "Naive Verifier")]


@pytest.mark.parametrize(("name", "signer", "issuer"), LIBTEEP_TOKENS)
def test_libteep_tokens(keys: LibteepKeys, name: str, signer: str, issuer: str) -> None:
    data = vector_hex("libteep", f"{name}_cose.hex")
    key: CoseKey = getattr(keys, signer)
    with pytest.raises(ValidationError, match="hwversion"):
        verify_eat(data, [key.public()])  # libteep writes the version as a byte string
    claims = verify_eat(data, [key.public()], compat=True, expected_nonce=TOKEN)
    assert claims.issuer == issuer
    assert claims.hwversion == ("1.3.4", 1)
    assert claims.ueid == bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea")
    assert claims.oemid == bytes.fromhex("894823")
    assert claims.claims[-70000] == bytes(range(16))  # a private claim, kept
    assert any("manifests" in q for q in claims.quirks)
    # The bare claims file is the signed payload.
    assert claims.encode() == vector_hex("libteep", f"{name}.hex")
    # Deterministic ECDSA: signing the decoded claims again gives the same token.
    assert sign_eat(EatClaims.from_cbor(cbor.decode(claims.encode()), compat=True), key, alg=Algorithm.ES256) == data
    with pytest.raises(FreshnessError):
        verify_eat(data, [key.public()], compat=True, expected_nonce=b"\x00" * 16)
    # libteep's cnf kid is not the thumbprint of any published key: binding to the Agent's key fails.
    with pytest.raises(ConfirmationKeyMismatch):
        verify_eat(data, [key.public()], compat=True, agent_key=keys.agent)
    with pytest.raises(UntrustedSignerError):
        verify_eat(data, [keys.tam.public()], compat=True)


def test_rfc9711_cwt_example_decodes() -> None:
    data = vector_hex("eat-rfc9711", "Example-Tokens_valid_cwt.derived.hex")
    decoded = decode_eat(data)
    assert decoded.cwt_tagged and decoded.sign1 is not None
    assert decoded.sign1.alg is Algorithm.ES256
    claims = decoded.claims
    assert claims.nonce == bytes.fromhex("d79b964ddd5471c1393c8888")
    assert claims.ueid == bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea")
    assert claims.oemid == 64242  # a Private Enterprise Number
    assert claims.hwversion == ("3.1", 1)
    assert claims.claims[Claim.OEMBOOT] is True and claims.claims[Claim.DBGSTAT] == 3
    assert claims.missing_teep_claims() == (Claim.HWMODEL, Claim.MANIFESTS, Claim.CNF)
    with pytest.raises(UntrustedSignerError):  # RFC 9711 publishes no key for it
        verify_eat(data, [CoseKey.generate(Algorithm.ES256).public()])


D2_CLAIMS: dict[int, Any] = {
    8: {3: bytes.fromhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")},
    10: bytes.fromhex("948f8860d13a463e8e"),
    256: bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea"),
    258: bytes.fromhex("894823"),
    259: bytes.fromhex("549dcecc8b987c737b44e40f7c635ce8"),
    260: ["1.3.4", 1],
    273: [[60, {1: "https://example.com/manifest.cbor",
                0: [-16, bytes.fromhex("a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609")]}]],
}  # fmt: skip


def test_draft_d2_claims_use_273_for_manifests() -> None:
    strict = EatClaims.from_cbor(D2_CLAIMS)
    assert strict.manifests is None
    with pytest.raises(ValidationError, match="manifests"):
        strict.check_teep_profile()
    compat = EatClaims.from_cbor(D2_CLAIMS, compat=True)
    assert compat.manifests is not None and compat.manifests[0][0] == 60
    assert compat.check_teep_profile(compat=True) == ()
    assert any("273" in q for q in compat.quirks)
    assert compat.cnf_kid == D2_CLAIMS[8][3]
    check_nonce(compat, bytes.fromhex("948f8860d13a463e8e"))


def _evidence(agent: CoseKey, nonce: bytes | None, iat: int | None = None) -> EatClaims:
    return make_teep_claims(
        agent_key=agent,
        ueid=b"\x01" + bytes(16),
        oemid=bytes.fromhex("894823"),
        hwmodel=b"model-hash",
        hwversion=("1.3.4", 1),
        manifests=[(60, {1: "https://tam.example/agent.suit", 0: [-16, bytes(32)]})],
        nonce=nonce,
        iat=iat,
    )


def test_build_sign_verify(keys: LibteepKeys) -> None:
    attester = CoseKey.generate(Algorithm.ESP256)
    nonce = bytes(range(32))
    token = sign_eat(_evidence(keys.agent, nonce, iat=1_000), attester)
    assert Sign1Message.decode(token).kid == attester.thumbprint()
    claims = verify_eat(token, [attester.public()], expected_nonce=nonce, agent_key=keys.agent, now=1_030, max_age=60)
    assert claims.cnf_kid == keys.agent.thumbprint()
    assert claims.profile == TEEP_EAT_PROFILE
    assert f"application/eat+cwt; eat_profile={TEEP_EAT_PROFILE}" == TEEP_EAT_MEDIA_TYPE
    with pytest.raises(FreshnessError, match="issued"):
        verify_eat(token, [attester.public()], now=2_000, max_age=60)
    with pytest.raises(ValidationError, match="needs now"):
        verify_eat(token, [attester.public()], max_age=60)
    with pytest.raises(ConfirmationKeyMismatch):
        verify_eat(token, [attester.public()], agent_key=keys.tam)
    tampered = bytearray(token)
    tampered[tampered.index(b"model-hash")] ^= 1
    with pytest.raises(SignatureError):
        verify_eat(bytes(tampered), [attester.public()])
    unsigned = _evidence(keys.agent, nonce).encode()
    assert decode_eat(unsigned).sign1 is None
    with pytest.raises(SignatureError, match="not signed"):
        verify_eat(unsigned, [attester.public()])
    no_iat = sign_eat(_evidence(keys.agent, nonce), attester)
    with pytest.raises(FreshnessError, match="no iat"):
        verify_eat(no_iat, [attester.public()], now=1, max_age=1)


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({10: b"short"}, "eat_nonce"),
        ({10: []}, "must not be empty"),
        ({256: b"\x01"}, "ueid"),
        ({258: "text"}, "oemid"),
        ({259: b""}, "hwmodel"),
        ({260: []}, "hwversion"),
        ({260: ["1", "x"]}, "scheme"),
        ({8: {3: "kid"}}, "kid is a byte string"),
        ({8: {9: b""}}, "exactly one"),
        ({6: "now"}, "NumericDate"),
        ({265: 1}, "eat_profile"),
        ({1: b"iss"}, "iss"),
        ({272: [[-1, b""]]}, "content format"),
        ({272: []}, "non-empty"),
        ([1], "is a map"),
    ],
)
def test_claim_types(claims: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        EatClaims.from_cbor(claims)


def test_profile_requirements(keys: LibteepKeys) -> None:
    evidence = _evidence(keys.agent, b"n" * 8)
    assert evidence.check_teep_profile() == ()
    two_nonces = EatClaims.from_cbor({**evidence.claims, 10: [b"a" * 8, b"b" * 8]})
    with pytest.raises(ValidationError, match="single byte string"):
        two_nonces.check_teep_profile()
    check_nonce(two_nonces, b"b" * 8)  # RFC 9711 allows an array; the TEEP profile does not
    no_cnf = EatClaims.from_cbor({k: v for k, v in evidence.claims.items() if k != 8})
    with pytest.raises(ValidationError, match="cnf"):
        no_cnf.check_teep_profile(compat=True)  # cnf is never optional: it binds the token to the Agent
    with pytest.raises(FreshnessError, match="no eat_nonce"):
        check_nonce(EatClaims.from_cbor({256: bytes(17)}), b"x" * 8)

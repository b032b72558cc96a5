"""COSE against the shared conformance vectors (libteep, draft-ietf-teep-protocol, SUIT manifest and trust domains)."""

from __future__ import annotations

import hashlib

import pytest
from cose_vectors import auth_wrapper, cose_key, pem_key, suit_section, teep_update_envelopes, untag, vector

from veritee import cbor
from veritee.cose import (
    SUIT_KDF_OTHER,
    Algorithm,
    CoseKey,
    EncryptMessage,
    Sign1Message,
    Signer,
    SignMessage,
    decrypt,
    sign,
    sign1,
)
from veritee.errors import DecryptionError, SignatureError, UnsupportedAlgorithmError

TAM = "libteep/key/tam_prime256v1.pem"
AGENT = "libteep/key/teep_agent_prime256v1.pem"
VERIFIER = "libteep/key/verifier_prime256v1.pem"
LEGACY_TAM = "libteep/key/legacy_2022-06_tam_prime256v1_pub.pem"
SUIT_KEY = "teep-protocol/E_suit_signing_key_private.pem"
ED25519_RFC8032 = "libteep/key/tam_ed25519_cose_key_private.cose_key.hex"

# libteep COSE_Sign1 files -> the key that signed them; all were signed deterministically (RFC 6979).
LIBTEEP_SIGN1 = {
    "libteep/attestation_results_cose.hex": VERIFIER,
    "libteep/evidence_cose.hex": AGENT,
    "libteep/query_request_cose.hex": TAM,
    "libteep/query_response_cose.hex": AGENT,
    "libteep/teep_error_cose.hex": AGENT,
    "libteep/teep_success_cose.hex": AGENT,
    "libteep/update_cose.hex": TAM,
}
# Older libteep files: only the 2022 public key is published, so verify only.
LIBTEEP_LEGACY = [
    "libteep/query_request_err1_cose.hex",
    "libteep/query_request_err2_cose.hex",
    "libteep/query_request_err3_cose.hex",
    "libteep/query_request_es256.hex",
]
# SUIT envelopes signed with the SUIT example key; True = deterministic, reproduced byte for byte.
SUIT_ENVELOPES = {
    "teep-protocol/E_ex1_suit_uri.hex": True,
    "teep-protocol/E_ex2_suit_integrated.hex": True,
    "teep-protocol/E_ex3_suit_personalization.hex": True,
    "suit-trust-domains/example0_dependent.hex": True,
    "suit-trust-domains/example1_process.hex": True,
    "suit-trust-domains/example2_integrated.hex": True,
    "suit-manifest/example0_signed.hex": False,
    "suit-manifest/example1_signed.hex": False,
    "suit-manifest/example2_severed_signed.hex": False,
    "suit-manifest/example2_signed_full.hex": False,
    "suit-manifest/example3_signed.hex": False,
    "suit-manifest/example4_signed.hex": False,
    "suit-manifest/example5_signed.hex": False,
}


def all_public_keys() -> list[CoseKey]:
    names = [TAM, AGENT, VERIFIER, LEGACY_TAM, SUIT_KEY]
    keys = [pem_key(n).public() for n in names]
    keys.append(cose_key(ED25519_RFC8032).public())
    return keys


def with_kid(key: CoseKey) -> CoseKey:
    return CoseKey(key.key, kid=key.thumbprint())


# ---- libteep COSE_Sign1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "signer"), sorted(LIBTEEP_SIGN1.items()))
def test_libteep_sign1_verifies_and_reproduces(name: str, signer: str) -> None:
    data = vector(name)
    msg = Sign1Message.decode(data)
    assert msg.alg is Algorithm.ES256
    assert msg.tagged
    private = pem_key(signer)
    assert msg.verify(private.public()) == private.public()
    # kid = RFC 9679 thumbprint of the signer: selection among all keys (all given their thumbprint as kid)
    assert msg.kid == private.thumbprint()
    chosen = msg.verify([with_kid(k) for k in all_public_keys()])
    assert chosen.kid == msg.kid
    assert msg.payload is not None
    again = sign1(msg.payload, private, protected=msg.protected_raw, unprotected=msg.unprotected)
    assert again == data
    assert msg.encode() == data


@pytest.mark.parametrize("name", LIBTEEP_LEGACY)
def test_libteep_legacy_sign1_verifies_with_2022_key(name: str) -> None:
    msg = Sign1Message.decode(vector(name))
    msg.verify(pem_key(LEGACY_TAM))
    with pytest.raises(SignatureError):
        msg.verify(pem_key(TAM))


def test_libteep_es384_decodes_but_no_p256_key_can_verify() -> None:
    msg = Sign1Message.decode(vector("libteep/query_request_es384.hex"))
    assert msg.alg is Algorithm.ES384
    assert len(msg.signature) == 96
    with pytest.raises(UnsupportedAlgorithmError):
        msg.verify(all_public_keys())


@pytest.mark.parametrize(("name", "signer"), sorted(LIBTEEP_SIGN1.items()))
def test_libteep_sign1_tampering_and_wrong_key(name: str, signer: str) -> None:
    data = vector(name)
    msg = Sign1Message.decode(data)
    key = pem_key(signer).public()
    other = pem_key(SUIT_KEY).public()
    with pytest.raises(SignatureError):
        msg.verify(other)
    # a flipped byte in the signature, the payload, and the protected header
    sig_flipped = data[:-1] + bytes([data[-1] ^ 0x01])
    with pytest.raises(SignatureError):
        Sign1Message.decode(sig_flipped).verify(key)
    assert msg.payload is not None
    pos = data.index(msg.payload) + len(msg.payload) // 2
    with pytest.raises(SignatureError):
        Sign1Message.decode(data[:pos] + bytes([data[pos] ^ 0x80]) + data[pos + 1 :]).verify(key)
    with pytest.raises(SignatureError):
        msg.verify(key, external_aad=b"x")
    # kid present but only a key with another kid: no candidate
    with pytest.raises(SignatureError, match="kid"):
        msg.verify(CoseKey(key.key, kid=b"someone else"))


# ---- libteep COSE_Sign (two signers: ES256 TAM key and the RFC 8032 Ed25519 key) ----------------------------------
def test_libteep_cose_sign_both_signers_verify_and_reproduce() -> None:
    data = vector("libteep/query_request_cose_sign.from-md.hex")
    msg = SignMessage.decode(data)
    assert msg.algs == (Algorithm.ES256, Algorithm.EdDSA)
    tam = pem_key(TAM)
    ed = cose_key(ED25519_RFC8032)
    assert msg.verify(tam.public()) == tam.public()
    assert msg.verify(ed.public()) == ed.public()
    assert msg.signatures[0].kid == tam.thumbprint()
    assert msg.signatures[1].kid == ed.thumbprint()
    # The other libteep Ed25519 files hold different keys (a quirk of the origin): they do not verify.
    with pytest.raises(SignatureError):
        msg.verify([cose_key("libteep/key/tam_ed25519_cose_key_public.cose_key.hex")])
    with pytest.raises(SignatureError):
        msg.verify([pem_key("libteep/key/tam_ed25519_pub.pem")])
    assert msg.payload is not None
    signers = [Signer(k, s.protected_raw, s.unprotected) for k, s in zip((tam, ed), msg.signatures, strict=True)]
    again = sign(msg.payload, signers, protected=msg.protected_raw, unprotected=msg.unprotected)
    assert again == data
    assert msg.encode() == data
    flipped = bytearray(data)
    flipped[-1] ^= 1  # the Ed25519 signature
    with pytest.raises(SignatureError):
        SignMessage.decode(bytes(flipped)).verify(ed.public())
    SignMessage.decode(bytes(flipped)).verify(tam.public())  # the ES256 signature is intact


def test_libteep_ed25519_key_is_the_rfc8032_test_key() -> None:
    ed = cose_key(ED25519_RFC8032)
    # RFC 8032 §7.1 TEST 1: secret 9d61b19d..., public d75a9801...
    assert ed.to_cose_key(private=True)[-4].hex().startswith("9d61b19deffd5a60")
    assert ed.to_cose_key()[-2].hex().startswith("d75a980182b10ab7")
    msg = sign1(b"payload", ed)
    assert Sign1Message.decode(msg).alg is Algorithm.Ed25519
    assert sign1(b"payload", ed) == msg  # Ed25519 is deterministic


# ---- SUIT authentication wrappers (detached payload = bstr-wrapped SUIT_Digest) ----------------------------------
@pytest.mark.parametrize(("name", "deterministic"), sorted(SUIT_ENVELOPES.items()))
def test_suit_auth_wrapper_verifies(name: str, deterministic: bool) -> None:
    wrapper = auth_wrapper(vector(name))
    assert wrapper.manifest_digest_ok
    assert len(wrapper.blocks) == 1
    msg = Sign1Message.decode(wrapper.blocks[0])
    assert msg.payload is None
    key = pem_key(SUIT_KEY)
    msg.verify(key.public(), detached_payload=wrapper.digest_bstr)
    msg.verify(
        cose_key("libteep/key/trust_anchor_prime256v1_cose_key_public.cose_key.hex"),
        detached_payload=wrapper.digest_bstr,
    )
    with pytest.raises(SignatureError):
        msg.verify(pem_key(TAM).public(), detached_payload=wrapper.digest_bstr)
    bad_digest = wrapper.digest_bstr[:-1] + bytes([wrapper.digest_bstr[-1] ^ 1])
    with pytest.raises(SignatureError):
        msg.verify(key, detached_payload=bad_digest)
    again = sign1(wrapper.digest_bstr, key, protected=msg.protected_raw, unprotected=msg.unprotected, detached=True)
    Sign1Message.decode(again).verify(key, detached_payload=wrapper.digest_bstr)
    if deterministic:
        assert again == wrapper.blocks[0]
    else:  # App. A signatures were randomized
        assert again != wrapper.blocks[0]


@pytest.mark.parametrize("name", ["teep-protocol/D4_update.hex", "libteep/update.hex"])
def test_suit_envelopes_inside_teep_update_verify(name: str) -> None:
    envelopes = teep_update_envelopes(vector(name))
    assert envelopes
    for env in envelopes:
        wrapper = auth_wrapper(env)
        assert wrapper.manifest_digest_ok
        Sign1Message.decode(wrapper.blocks[0]).verify(pem_key(SUIT_KEY), detached_payload=wrapper.digest_bstr)


@pytest.mark.parametrize("name", ["libteep/ta_update.hex", "libteep/ta_update2.hex"])
def test_old_suit_format_with_attached_digest_verifies(name: str) -> None:
    # pre-standard SUIT: the authentication wrapper is [bstr COSE_Sign1] whose payload is the digest itself
    for env_bytes in teep_update_envelopes(vector(name)):
        env = untag(cbor.decode(env_bytes))
        cose_bstr = untag(cbor.decode(env[2]))[0]
        msg = Sign1Message.decode(cose_bstr)
        assert msg.payload is not None
        msg.verify(pem_key(SUIT_KEY))


# ---- App. E example 3: encrypted personalization data ----------------------------------------------------------
def _e3_parts() -> tuple[bytes, bytes, bytes]:
    wrapper = auth_wrapper(vector("teep-protocol/E_ex3_suit_personalization.hex"))
    install = suit_section(wrapper.envelope, 20)
    params = next(x for x in install if isinstance(x, dict) and 19 in x)
    validate = suit_section(wrapper.envelope, 7)
    vparams = next(x for x in validate if isinstance(x, dict) and 3 in x)
    digest = untag(cbor.decode(vparams[3]))[1]
    return params[19], params[18], digest


def test_e3_decrypts_to_config_json_matching_the_manifest_digest() -> None:
    encryption_info, ciphertext, digest = _e3_parts()
    diag = (vector("teep-protocol/E_ex3_suit_personalization.diag")).decode()
    assert ciphertext.hex().upper() in diag.replace(" ", "")  # the detached ciphertext is parameter-content
    agent = pem_key(AGENT)
    plaintext = decrypt(encryption_info, agent, detached_ciphertext=ciphertext, kdf_other=SUIT_KDF_OTHER)
    assert len(plaintext) == 61
    assert hashlib.sha256(plaintext).digest() == digest
    assert plaintext.startswith(b'{"name":"FOO Bar"')
    # the same key from the COSE_Key form and the E3 parameter text
    assert (
        decrypt(
            encryption_info,
            cose_key("libteep/key/teep_agent_es256_cose_key_private.cose_key.hex"),
            detached_ciphertext=ciphertext,
            kdf_other=SUIT_KDF_OTHER,
        )
        == plaintext
    )
    params = (vector("teep-protocol/E3_kek_and_kdf_params.txt")).decode().replace("\n", "")
    d_hex = params.split("d: h'")[1].split("'")[0]
    assert agent.to_cose_key(private=True)[-4] == bytes.fromhex(d_hex)
    msg = EncryptMessage.decode(encryption_info)
    assert msg.alg is Algorithm.A128CTR
    assert msg.recipients[0].alg is Algorithm.ECDH_ES_A128KW


def test_e3_wrong_key_or_context_fails() -> None:
    encryption_info, ciphertext, _ = _e3_parts()
    with pytest.raises(DecryptionError):
        decrypt(encryption_info, pem_key(TAM), detached_ciphertext=ciphertext, kdf_other=SUIT_KDF_OTHER)
    with pytest.raises(DecryptionError):  # SuppPubInfo.other is part of the KDF context
        decrypt(encryption_info, pem_key(AGENT), detached_ciphertext=ciphertext)
    with pytest.raises(UnsupportedAlgorithmError):  # an Ed25519 key cannot do ECDH-ES
        decrypt(encryption_info, cose_key(ED25519_RFC8032), detached_ciphertext=ciphertext)


# ---- RFC 9679 thumbprints ----------------------------------------------------------------------------------------
def test_thumbprint_rfc9679_example() -> None:
    key = CoseKey.from_cose_key(
        {
            1: 2,
            -1: 1,
            2: b"meriadoc.brandybuck@buckland.example",
            -2: bytes.fromhex("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d"),
            -3: bytes.fromhex("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c"),
        }
    )
    assert key.thumbprint().hex() == "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec"


def test_thumbprint_equals_libteep_kids() -> None:
    query_request = Sign1Message.decode(vector("libteep/query_request_cose.hex"))
    assert pem_key(TAM).thumbprint() == query_request.kid
    assert cose_key("libteep/key/tam_es256_cose_key_public.cose_key.hex").thumbprint() == query_request.kid
    assert pem_key(AGENT).thumbprint() == Sign1Message.decode(vector("libteep/evidence_cose.hex")).kid
    results = Sign1Message.decode(vector("libteep/attestation_results_cose.hex"))
    assert pem_key(VERIFIER).thumbprint() == results.kid

"""COSE protection of TEEP messages: libteep's signed vectors verify with the keys SOURCES.md names, the deterministic
ones are reproduced byte for byte, and every failure is a typed error."""

from __future__ import annotations

import pytest
from teep_support import TOKEN, LibteepKeys, libteep_keys, vector_hex

from veritee import cbor
from veritee.cose import Algorithm, CoseKey, Sign1Message
from veritee.errors import SignatureError, UnsupportedAlgorithmError, UntrustedSignerError, ValidationError
from veritee.teep.codes import CoseType
from veritee.teep.cose_wrap import open_message, peek_message, sign_message, sign_query_request
from veritee.teep.messages import Error, QueryRequest, QueryResponse, Success, Update


@pytest.fixture(scope="module")
def keys() -> LibteepKeys:
    return libteep_keys()


# (file, signer attribute, message class, deterministic: reproduce byte for byte)
SIGNED = [
    ("query_request_cose", "tam", QueryRequest),
    ("update_cose", "tam", Update),
    ("query_response_cose", "agent", QueryResponse),
    ("teep_error_cose", "agent", Error),
    ("teep_success_cose", "agent", Success),
]


@pytest.mark.parametrize(("name", "signer", "cls"), SIGNED)
def test_libteep_signed_messages_verify_and_reproduce(keys: LibteepKeys, name: str, signer: str, cls: type) -> None:
    data = vector_hex("libteep", f"{name}.hex")
    key: CoseKey = getattr(keys, signer)
    verified = open_message(data, [key.public()], compat=True)
    assert isinstance(verified.message, cls)
    assert verified.alg is Algorithm.ES256
    assert verified.cose_type is CoseType.SIGN1
    assert verified.kid == key.thumbprint()  # libteep's kid is the RFC 9679 thumbprint
    assert not verified.learned
    # Re-encode the decoded message and re-sign it: deterministic ECDSA gives back the very same bytes.
    again = sign_message(verified.message, key, alg=Algorithm.ES256)
    assert again == data


def test_libteep_signed_messages_need_the_right_key(keys: LibteepKeys) -> None:
    data = vector_hex("libteep", "update_cose.hex")
    with pytest.raises(UntrustedSignerError, match="not among"):
        open_message(data, [keys.agent.public()])
    # A kid-less message is tried against every anchor; none verifies -> untrusted signer.
    stripped = sign_message(vector_hex("libteep", "update.hex"), keys.tam, alg=-7, kid=False)
    with pytest.raises(UntrustedSignerError, match="without kid"):
        open_message(stripped, [keys.agent.public(), keys.verifier.public()])
    assert open_message(stripped, [keys.agent.public(), keys.tam.public()]).signer == keys.tam.public()


@pytest.mark.parametrize("name", ["query_request_err1_cose", "query_request_err2_cose", "query_request_es256"])
def test_legacy_libteep_files_verify_with_the_legacy_key(keys: LibteepKeys, name: str) -> None:
    data = vector_hex("libteep", f"{name}.hex")
    verified = open_message(data, [keys.legacy_tam], compat=True)
    assert isinstance(verified.message, QueryRequest)
    assert verified.kid is None
    with pytest.raises(UntrustedSignerError):
        open_message(data, [keys.tam.public()], compat=True)
    with pytest.raises(ValidationError):  # the signature is fine; the draft-08 shape is not
        open_message(data, [keys.legacy_tam])


def test_legacy_short_token_verifies_but_does_not_decode(keys: LibteepKeys) -> None:
    data = vector_hex("libteep", "query_request_err3_cose.hex")
    with pytest.raises(ValidationError, match=r"8\.\.64 bytes"):
        open_message(data, [keys.legacy_tam], compat=True)


def test_es384_file_has_no_published_key() -> None:
    data = vector_hex("libteep", "query_request_es384.hex")
    peek = peek_message(data)
    assert peek.cose_type is CoseType.SIGN1 and peek.algs == (Algorithm.ES384,)
    with pytest.raises(UntrustedSignerError):
        open_message(data, [libteep_keys().legacy_tam], compat=True)


def test_cose_sign_query_request_from_libteep(keys: LibteepKeys) -> None:
    data = vector_hex("libteep", "query_request_cose_sign.from-md.hex")
    by_es256 = open_message(data, [keys.tam.public()])
    by_eddsa = open_message(data, [keys.tam_ed25519.public()])
    assert by_es256.cose_type is CoseType.SIGN and by_es256.alg is Algorithm.ES256
    assert by_eddsa.alg is Algorithm.EdDSA
    assert by_eddsa.message == by_es256.message
    peek = peek_message(data)
    assert isinstance(by_es256.message, QueryRequest)
    rebuilt = sign_query_request(
        by_es256.message, [(keys.tam, Algorithm.ES256), (keys.tam_ed25519, Algorithm.EdDSA)], body_protected=b"\xa0"
    )
    assert rebuilt == data
    assert peek.kids == (keys.tam.thumbprint(), keys.tam_ed25519.thumbprint())
    with pytest.raises(UnsupportedAlgorithmError):
        open_message(data, [keys.tam.public(), keys.tam_ed25519.public()], allowed_algs=[Algorithm.ESP256])


def test_tampering_is_a_signature_error(keys: LibteepKeys) -> None:
    message = Success(token=TOKEN, msg="installed")
    data = bytearray(sign_message(message, keys.agent))
    data[data.index(b"installed")] ^= 0x01
    with pytest.raises(SignatureError):
        open_message(bytes(data), [keys.agent.public()])


def test_current_algorithms_round_trip(keys: LibteepKeys) -> None:
    ed = CoseKey.generate(Algorithm.Ed25519)
    message = Success(token=TOKEN)
    for key, alg in ((keys.agent, Algorithm.ESP256), (ed, Algorithm.Ed25519)):
        data = sign_message(message, key)
        verified = open_message(data, [keys.tam.public(), key.public()], allowed_algs=[alg])
        assert verified.alg is alg and verified.message == message
        assert verified.suite.operations == ((18, int(alg)),)
        assert Sign1Message.decode(data).kid == key.thumbprint()


def test_learning_a_presented_key(keys: LibteepKeys) -> None:
    fresh = CoseKey.generate(Algorithm.ESP256)
    data = sign_message(Success(token=TOKEN), fresh, present_key=True)
    with pytest.raises(UntrustedSignerError):
        open_message(data, [keys.agent.public()])
    verified = open_message(data, [keys.agent.public()], learn=True)
    assert verified.learned and verified.signer.thumbprint() == fresh.thumbprint()
    # A presented key that is not the signer's (kid mismatch) is refused.
    other = CoseKey.generate(Algorithm.ESP256)
    forged = sign_message(Success(token=TOKEN), fresh, kid=other.thumbprint(), present_key=True)
    with pytest.raises(UntrustedSignerError, match="does not match"):
        open_message(forged, [], learn=True)
    # A presented key that did not sign it fails the signature check.
    protected, _unprotected, payload, signature = cbor.decode(data).value
    wrong = cbor.CBORTag(18, [protected, {14: {8: {1: other.public().to_cose_key()}}}, payload, signature])
    with pytest.raises(SignatureError):
        open_message(cbor.encode(wrong), [], learn=True)


def test_peek_bare_and_rejects_other_tags() -> None:
    bare = vector_hex("teep-protocol", "D5_teep_success.hex")
    assert peek_message(bare).cose_type is None and peek_message(bare).payload == bare
    with pytest.raises(Exception, match="tag 61"):
        peek_message(vector_hex("eat-rfc9711", "Example-Tokens_valid_cwt.derived.hex"))

"""Envelope decoding and authentication against the shared SUIT, trust-domains and TEEP vectors."""

from __future__ import annotations

import pytest
from suit_support import (
    TA_ID,
    TA_SUIT_ID,
    sign_manifest,
    signing_key,
    simple_manifest,
    tam_key,
    trust_anchor,
    vector,
    vector_path,
)

from veritee import cbor
from veritee.cose import CoseKey
from veritee.errors import (
    DecodeError,
    DigestMismatchError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
)
from veritee.suit import Command, DigestAlgorithm, ManifestKey, SuitDigest, decode_envelope, decode_manifest

SUIT_EXAMPLES = sorted(p.name for p in vector_path("suit-manifest").glob("*.hex"))
SIGNED = [n for n in SUIT_EXAMPLES if "unsigned" not in n]
OTHER_SIGNED = [
    ("suit-trust-domains", "example0_dependent.hex"),
    ("suit-trust-domains", "example1_process.hex"),
    ("suit-trust-domains", "example2_integrated.hex"),
    ("teep-protocol", "E_ex1_suit_uri.hex"),
    ("teep-protocol", "E_ex2_suit_integrated.hex"),
    ("teep-protocol", "E_ex3_suit_personalization.hex"),
]


def test_all_manifest_examples_are_present() -> None:
    assert len(SUIT_EXAMPLES) == 13 and len(SIGNED) == 7


@pytest.mark.parametrize("name", SUIT_EXAMPLES)
def test_every_suit_example_decodes(name: str) -> None:
    envelope = decode_envelope(vector("suit-manifest", name))
    assert envelope.tagged
    assert envelope.manifest.version == 1
    assert envelope.manifest.sequence_number == int(name[7])  # exampleN has sequence number N
    assert envelope.encode() == vector("suit-manifest", name)


@pytest.mark.parametrize("name", SIGNED)
def test_signed_examples_verify(name: str) -> None:
    envelope = decode_envelope(vector("suit-manifest", name))
    verified = envelope.verify(trust_anchor())
    assert verified.digest == envelope.digest
    assert verified.digest == SuitDigest.compute(cbor.encode(envelope.manifest_raw))
    assert verified.signer.thumbprint() == trust_anchor().thumbprint()


@pytest.mark.parametrize("name", [n for n in SUIT_EXAMPLES if "unsigned" in n])
def test_unsigned_examples_have_no_authentication_block(name: str) -> None:
    envelope = decode_envelope(vector("suit-manifest", name))
    assert envelope.authentication.blocks == ()
    with pytest.raises(SignatureError, match="no COSE authentication block"):
        envelope.verify(trust_anchor())


@pytest.mark.parametrize(("folder", "name"), OTHER_SIGNED)
def test_trust_domain_and_teep_examples_verify(folder: str, name: str) -> None:
    verified = decode_envelope(vector(folder, name)).verify([tam_key().public(), trust_anchor()])
    assert verified.signer.thumbprint() == trust_anchor().thumbprint()


def test_example0_structure() -> None:
    manifest = decode_envelope(vector("suit-manifest", "example0_signed.hex")).manifest
    assert manifest.common.components == ((b"\x00",),)
    assert manifest.common.shared_sequence is not None
    codes = [e.code for e in manifest.common.shared_sequence]
    assert codes == [Command.OVERRIDE_PARAMETERS, Command.VENDOR_IDENTIFIER, Command.CLASS_IDENTIFIER]
    params = manifest.common.shared_sequence.commands[0].argument
    assert params[3] == SuitDigest(
        DigestAlgorithm.SHA256, bytes.fromhex("00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210")
    )
    assert params[14] == 34768
    assert [(e.code, e.argument, e.offset) for e in manifest.sequences[ManifestKey.VALIDATE]] == [(3, 15, 1)]
    assert [(e.code, e.argument) for e in manifest.sequences[ManifestKey.INVOKE]] == [(23, 2)]


def test_example3_try_each_offsets_point_into_the_section() -> None:
    manifest = decode_envelope(vector("suit-manifest", "example3_signed.hex")).manifest
    install = manifest.sequences[ManifestKey.INSTALL]
    try_each = install.commands[0]
    assert try_each.code == Command.TRY_EACH and len(try_each.argument) == 2
    for nested in try_each.argument:
        for entry in nested:
            # each nested offset names the command's byte inside the install section
            assert install.raw[entry.offset] == entry.code
    assert [e.code for e in install.commands[1:]] == [Command.FETCH, Command.IMAGE_MATCH]


def test_severed_example2_with_and_without_its_members() -> None:
    full = decode_envelope(vector("suit-manifest", "example2_signed_full.hex"))
    assert set(full.severable) == {ManifestKey.INSTALL, ManifestKey.TEXT}
    verified = full.verify(trust_anchor())
    assert verified.absent == frozenset()
    install = verified.sequences[ManifestKey.INSTALL]
    assert install.commands[0].argument[21] == "http://example.com/very/long/path/to/file/file.bin"
    assert verified.text is not None
    assert verified.text["en-US"].components[(b"\x00",)][3] == "arm.com"
    severed = decode_envelope(vector("suit-manifest", "example2_severed_signed.hex"))
    verified = severed.verify(trust_anchor())
    assert verified.absent == {ManifestKey.INSTALL, ManifestKey.TEXT}
    assert ManifestKey.INSTALL not in verified.sequences
    assert verified.digest == decode_envelope(vector("suit-manifest", "example2_signed_full.hex")).digest
    resevered = full.sever(ManifestKey.INSTALL, ManifestKey.TEXT)
    assert resevered.encode() == vector("suit-manifest", "example2_severed_signed.hex")


def test_tampered_severed_member_is_rejected() -> None:
    value = cbor.decode(vector("suit-manifest", "example2_signed_full.hex"))
    body = dict(value.value)
    body[20] = body[20].replace(b"very", b"VERY")
    envelope = decode_envelope(cbor.encode(cbor.CBORTag(107, body)))
    with pytest.raises(DigestMismatchError, match="severed install"):
        envelope.verify(trust_anchor())


def test_tampered_manifest_byte_is_a_digest_mismatch() -> None:
    data = bytearray(vector("teep-protocol", "E_ex1_suit_uri.hex"))
    position = data.index(b"https://example.org")
    data[position + 8] ^= 0x20  # 'e' -> 'E' inside the signed manifest
    envelope = decode_envelope(bytes(data))
    with pytest.raises(DigestMismatchError):
        envelope.verify(trust_anchor())


def test_tampered_signature_and_digest() -> None:
    envelope = decode_envelope(vector("teep-protocol", "E_ex1_suit_uri.hex"))
    value = cbor.decode(envelope.raw)
    auth = cbor.decode(value[2])
    sign1 = cbor.decode(auth[1])
    items = list(sign1.value)
    items[3] = bytes([items[3][0] ^ 1]) + items[3][1:]
    value[2] = cbor.encode([auth[0], cbor.encode(cbor.CBORTag(18, items))])
    with pytest.raises(UntrustedSignerError, match="no trust anchor verifies"):
        decode_envelope(cbor.encode(value)).verify(trust_anchor())
    # with a kid that names the anchor, a bad signature is a SignatureError
    kid = trust_anchor().thumbprint()
    items[1] = {4: kid}
    value[2] = cbor.encode([auth[0], cbor.encode(cbor.CBORTag(18, items))])
    with pytest.raises(SignatureError):
        decode_envelope(cbor.encode(value)).verify(trust_anchor())


def test_untrusted_signer_is_rejected() -> None:
    envelope = decode_envelope(vector("teep-protocol", "E_ex1_suit_uri.hex"))
    with pytest.raises(UntrustedSignerError):
        envelope.verify(tam_key().public())
    other = CoseKey.generate(trust_anchor().default_alg())
    manifest = simple_manifest(install=[Command.WRITE, 15])
    signed = sign_manifest(manifest, other, kid=other.thumbprint())
    with pytest.raises(UntrustedSignerError, match="not a trust anchor"):
        decode_envelope(signed).verify(trust_anchor())
    assert decode_envelope(signed).verify([trust_anchor(), other.public()]).signer.kid == other.thumbprint()


def test_delegation_chain_extends_the_trust_anchors() -> None:
    delegate = CoseKey.generate(trust_anchor().default_alg())
    claims = cbor.encode({8: {1: delegate.public().to_cose_key()}})
    from veritee.cose import sign1

    cwt = sign1(claims, signing_key())
    manifest = simple_manifest(install=[Command.WRITE, 15])
    signed = sign_manifest(manifest, delegate, extra={1: cbor.encode([[cwt]])})
    envelope = decode_envelope(signed)
    assert envelope.delegation == ((cwt,),)
    assert envelope.verify(trust_anchor()).signer.thumbprint() == delegate.public().thumbprint()
    with pytest.raises(UntrustedSignerError):  # the delegation is signed by the SUIT key, not by the TAM key
        envelope.verify(tam_key().public())
    with pytest.raises(UntrustedSignerError):
        decode_envelope(sign_manifest(manifest, delegate)).verify(trust_anchor())


def test_teep_personalization_structure() -> None:
    manifest = decode_envelope(vector("teep-protocol", "E_ex3_suit_personalization.hex")).manifest
    common = manifest.common
    assert common.components == ((b"TEEP-Device", b"SecureFS", b"config.json"),)
    assert common.slot_count == 2 and common.is_dependency(1) and not common.is_dependency(0)
    assert common.component_id(1) == TA_SUIT_ID
    assert manifest.component_id == (b"TEEP-Device", b"SecureFS", b"config.suit")
    e1 = decode_envelope(vector("teep-protocol", "E_ex1_suit_uri.hex")).manifest
    assert e1.common.components == (TA_ID,) and e1.component_id == TA_SUIT_ID


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda b: cbor.CBORTag(108, b), ValidationError, "not a SUIT_Envelope"),
        (lambda b: {3: b[3]}, ValidationError, "lacks authentication"),
        (lambda b: {3: b[3], 2: b[2]}, ValidationError, "before the manifest"),
        (lambda b: {**b, 7: b"\x80"}, ValidationError, "not severable"),
        (lambda b: {**b, "#x": 5}, ValidationError, "integrated payload"),
        (lambda b: {**b, 2: cbor.encode([cbor.encode([-17, b"x" * 32])])}, UnsupportedAlgorithmError, "-17"),
        (lambda b: {**b, 2: cbor.encode([cbor.encode([-16, b"x"])])}, ValidationError, "32 bytes"),
        (lambda b: {**b, 2: cbor.encode([cbor.decode(b[2])[0], b"\x01"])}, ValidationError, "tagged COSE"),
        (lambda b: [b], ValidationError, "must be a map"),
    ],
)
def test_malformed_envelopes(mutate: object, error: type[Exception], match: str) -> None:
    body = dict(cbor.decode(vector("teep-protocol", "E_ex1_suit_uri.hex")))
    with pytest.raises(error, match=match):
        decode_envelope(cbor.encode(mutate(body)))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        ({1: 2, 2: 0, 3: cbor.encode({2: [[b"\x00"]]})}, "version"),
        ({1: 1, 3: cbor.encode({2: [[b"\x00"]]})}, "sequence_number"),
        ({1: 1, 2: -1, 3: cbor.encode({2: [[b"\x00"]]})}, "unsigned"),
        ({1: 1, 2: 0, 3: cbor.encode({2: []})}, "non-empty"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [["x"]]})}, "byte strings"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]], 1: {2: {}}})}, "index 1 is not declared"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([1])}, "pairs"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([12, "x"])}, "set-component-index"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([20, {3: b"\x01"}])}, "SUIT_Digest|CBOR"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([20, {21: 5}])}, "uri must be a text"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([15, []])}, "try-each"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 7: cbor.encode([3, -1])}, "reporting policy"),
        ({1: 1, 2: 0, 3: cbor.encode({2: [[b"\x00"]]}), 23: cbor.encode({1: "x"})}, "language"),
    ],
)
def test_malformed_manifests(manifest: dict[int, object], match: str) -> None:
    with pytest.raises((ValidationError, DecodeError), match=match):
        decode_manifest(cbor.encode(manifest))


def test_mac0_authentication_block_with_a_symmetric_anchor() -> None:
    from veritee.cose import mac0

    secret = CoseKey.symmetric(b"s" * 32)
    manifest_raw = cbor.encode(simple_manifest(install=[Command.WRITE, 15]))
    digest = SuitDigest.compute(cbor.encode(manifest_raw)).encode()
    block = mac0(digest, secret, detached=True)
    envelope = decode_envelope(cbor.encode({2: cbor.encode([digest, block]), 3: manifest_raw}))
    assert envelope.verify([trust_anchor(), secret]).signer == secret
    with pytest.raises(UntrustedSignerError):
        envelope.verify(CoseKey.symmetric(b"t" * 32))
    with pytest.raises(UntrustedSignerError):  # a MAC block cannot be checked with signature keys
        envelope.verify(trust_anchor())

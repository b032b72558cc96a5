"""The envelope builder: byte-exact TEEP examples, round trips (decode/verify/process), encryption, dependencies."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from suit_support import (
    TA_ID,
    TA_SUIT_ID,
    TA_URI,
    TEEP_CLASS,
    TEEP_VENDOR,
    agent_key,
    config,
    signing_key,
    ta_binary,
    trust_anchor,
    vector,
)

from veritee.cose import Algorithm, CoseKey
from veritee.errors import EncodeError, UntrustedSignerError
from veritee.suit import (
    DependencySpec,
    EncryptionSpec,
    InMemoryComponentStore,
    Invocation,
    ManifestKey,
    MappingFetcher,
    Procedure,
    ResultCode,
    TrustedComponentSpec,
    build_envelope,
    decode_envelope,
    process,
)

TA_SPEC = TrustedComponentSpec(
    component_id=TA_ID,
    sequence_number=3,
    payload=b"Hello, Secure World!",
    uri=TA_URI,
    vendor_id=TEEP_VENDOR,
    class_id=TEEP_CLASS,
    manifest_component_id=TA_SUIT_ID,
)


def test_reproduces_teep_examples_byte_for_byte() -> None:
    # E1 and E2 were signed with deterministic ECDSA (RFC 6979), so the same layout gives the same bytes
    assert build_envelope(TA_SPEC, signing_key()) == vector("teep-protocol", "E_ex1_suit_uri.hex")
    integrated = replace(TA_SPEC, uri="#tc", integrated=True)
    assert build_envelope(integrated, signing_key()) == vector("teep-protocol", "E_ex2_suit_integrated.hex")


def test_round_trip_build_decode_verify_process() -> None:
    spec = replace(
        TA_SPEC,
        sequence_number=4,
        validate=True,
        invoke=True,
        invoke_args=b"-v",
        text={"en": {1: "demo TA", tuple(TA_ID): {5: "the TA"}}},
        severable=frozenset({ManifestKey.TEXT}),
        tagged=True,
        reference_uri="https://tam.example/ta.suit",
    )
    data = build_envelope(spec, signing_key())
    envelope = decode_envelope(data)
    assert envelope.tagged and envelope.manifest.reference_uri == "https://tam.example/ta.suit"
    verified = envelope.verify(trust_anchor())
    assert verified.text is not None and verified.text["en"].manifest[1] == "demo TA"
    assert verified.text["en"].components[TA_ID][5] == "the TA"
    store = InMemoryComponentStore()
    result = process(
        envelope, Procedure.UPDATE, config=config(), store=store, fetcher=MappingFetcher({TA_URI: ta_binary()})
    )
    result.raise_for_failure()
    assert result.report.uri == "https://tam.example/ta.suit"
    assert store.components[TA_ID] == ta_binary()
    process(envelope, Procedure.INVOKE, config=config(), store=store).raise_for_failure()
    assert store.invoked == [Invocation(TA_ID, b"-v")]
    severed = envelope.sever(ManifestKey.TEXT)
    assert ManifestKey.TEXT in severed.verify(trust_anchor()).absent


def test_kid_and_untrusted_signer() -> None:
    other = CoseKey.generate(Algorithm.ESP256)
    data = build_envelope(TA_SPEC, other, kid=other.thumbprint())
    with pytest.raises(UntrustedSignerError, match="not a trust anchor"):
        decode_envelope(data).verify(trust_anchor())
    result = process(data, Procedure.UPDATE, config=config(), store=InMemoryComponentStore())
    assert result.report.failure is not None and result.report.failure.code == ResultCode.UNTRUSTED_SIGNER


@pytest.mark.parametrize(
    ("recipient", "key_alg", "content_alg"),
    [
        ("agent", Algorithm.ECDH_ES_A128KW, Algorithm.A128GCM),
        ("agent", Algorithm.ECDH_ES_A128KW, Algorithm.A128CTR),
        ("kek", Algorithm.A128KW, Algorithm.A128GCM),
    ],
)
def test_encrypted_payload_round_trip(recipient: str, key_alg: Algorithm, content_alg: Algorithm) -> None:
    kek = CoseKey.symmetric(b"k" * 16)
    device_key = agent_key() if recipient == "agent" else kek
    config_json = b'{"name":"veritee","secret":"s3cr3t"}'
    spec = TrustedComponentSpec(
        component_id=(b"TEEP-Device", b"SecureFS", b"config.json"),
        sequence_number=1,
        payload=config_json,
        write_content=True,
        encryption=EncryptionSpec(device_key, key_alg=key_alg, content_alg=content_alg),
        vendor_id=TEEP_VENDOR,
        class_id=TEEP_CLASS,
    )
    data = build_envelope(spec, signing_key())
    assert config_json not in data
    store = InMemoryComponentStore()
    process(data, Procedure.UPDATE, config=config(decryption_keys=(device_key,)), store=store).raise_for_failure()
    assert store.components[(b"TEEP-Device", b"SecureFS", b"config.json")] == config_json
    wrong = process(
        data,
        Procedure.UPDATE,
        config=config(decryption_keys=(CoseKey.symmetric(b"x" * 16),)),
        store=InMemoryComponentStore(),
    )
    assert wrong.report.failure is not None and wrong.report.failure.code == ResultCode.DECRYPTION_FAILED


@pytest.mark.parametrize("integrated", [False, True])
def test_personalization_with_a_dependency(integrated: bool) -> None:
    ta_envelope = build_envelope(TA_SPEC, signing_key(), kid=None)
    dependency = DependencySpec(
        envelope=ta_envelope,
        component_id=TA_SUIT_ID,
        uri=None if integrated else "https://tam.example/ta.suit",
        integrated_key="#ta.suit" if integrated else None,
    )
    spec = TrustedComponentSpec(
        component_id=(b"TEEP-Device", b"SecureFS", b"config.json"),
        sequence_number=1,
        payload=b"personal data",
        write_content=True,
        encryption=EncryptionSpec(agent_key()),
        vendor_id=TEEP_VENDOR,
        class_id=TEEP_CLASS,
        manifest_component_id=(b"TEEP-Device", b"SecureFS", b"config.suit"),
        dependencies=(dependency,),
        severable=frozenset({ManifestKey.INSTALL}),
    )
    data = build_envelope(spec, signing_key())
    envelope = decode_envelope(data)
    assert envelope.manifest.common.dependencies[1].prefix == TA_SUIT_ID
    assert set(envelope.severable) == {ManifestKey.INSTALL}
    fetcher = MappingFetcher({"https://tam.example/ta.suit": ta_envelope, TA_URI: ta_binary()})
    store = InMemoryComponentStore()
    result = process(
        data, Procedure.UPDATE, config=config(decryption_keys=(agent_key(),)), store=store, fetcher=fetcher
    )
    result.raise_for_failure()
    assert store.components[(b"TEEP-Device", b"SecureFS", b"config.json")] == b"personal data"
    assert store.components[TA_ID] == ta_binary()
    assert fetcher.requests == ([TA_URI] if integrated else ["https://tam.example/ta.suit", TA_URI])
    process(data, Procedure.UNINSTALL, config=config(), store=store).raise_for_failure()
    assert TA_ID not in store.components


@pytest.mark.parametrize(
    "changes",
    [
        {"uri": None},
        {"integrated": True, "payload": None},
        {"payload": None},
        {"severable": frozenset({ManifestKey.VALIDATE})},
        {"severable": frozenset({ManifestKey.TEXT})},
        {"sequence_number": -1},
        {"encryption": EncryptionSpec(CoseKey.symmetric(b"k" * 16), key_alg=Algorithm.A128KW)},
    ],
)
def test_invalid_specs(changes: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        build_envelope(replace(TA_SPEC, **changes), signing_key())

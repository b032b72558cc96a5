"""The processor on the published examples: manifest-37 App. A 0-5, trust-domains-12 App. B, teep-protocol App. E."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from suit_support import (
    IDENTITY,
    TA_ID,
    TA_SUIT_ID,
    TA_SUIT_URI,
    TA_URI,
    agent_key,
    config,
    records,
    ta_binary,
    tam_key,
    vector,
)

from veritee import cbor
from veritee.errors import DigestMismatchError, FreshnessError, UntrustedSignerError
from veritee.suit import (
    Identity,
    InMemoryComponentStore,
    InstalledManifest,
    Invocation,
    MappingFetcher,
    Procedure,
    Quirk,
    ReportReason,
    ResultCode,
    SuitAbort,
    SuitDigest,
    decode_envelope,
    decode_report,
    encode_report,
    process,
)

PAYLOADS = {
    "http://example.com/file.bin": b"file.bin payload",
    "http://example.com/file1.bin": b"file1.bin payload",
    "http://example.com/file2.bin": b"file2.bin payload",
    "http://example.com/very/long/path/to/file/file.bin": b"long path payload",
}
DIGEST_0011 = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
DIGEST_0123 = "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff"
VENDOR_REC, CLASS_REC = (1,), (2,)
C0 = (b"\x00",)


def measured(payload: bytes) -> dict[int, object]:
    return {3: SuitDigest.compute(payload).encode(), 14: len(payload)}


# (vector, procedure, store factory, served URI, failure (section, offset, component), expected digest,
#  records [(section, offset, component, property labels)])
EXAMPLES: list[
    tuple[
        str,
        Procedure,
        Callable[[], InMemoryComponentStore],
        str | None,
        tuple[int, int, int],
        str,
        list[tuple[int, int, int, tuple[int, ...]]],
    ]
] = [
    # Example 0, secure boot: the installed image is not the one the manifest names, so validation fails.
    (
        "example0_signed.hex",
        Procedure.INVOKE,
        lambda: InMemoryComponentStore({C0: b"installed image"}),
        None,
        (7, 1, 0),
        DIGEST_0011,
        [(3, 82, 0, VENDOR_REC), (3, 84, 0, CLASS_REC), (7, 1, 0, (3, 14))],
    ),
    # Example 1, download + install: the fetched payload cannot match the sample digest pattern.
    (
        "example1_signed.hex",
        Procedure.UPDATE,
        InMemoryComponentStore,
        "http://example.com/file.bin",
        (20, 35, 0),
        DIGEST_0011,
        [(3, 82, 0, VENDOR_REC), (3, 84, 0, CLASS_REC), (20, 35, 0, (3, 14))],
    ),
    (
        "example2_signed_full.hex",
        Procedure.UPDATE,
        InMemoryComponentStore,
        "http://example.com/very/long/path/to/file/file.bin",
        (20, 58, 0),
        DIGEST_0011,
        [(3, 82, 0, VENDOR_REC), (3, 84, 0, CLASS_REC), (20, 58, 0, (3, 14))],
    ),
    # Example 3, A/B: the device runs from slot 1, so try-each selects slot B's digest and file2.bin.
    (
        "example3_signed.hex",
        Procedure.UPDATE,
        lambda: InMemoryComponentStore(slots={C0: 1}),
        "http://example.com/file2.bin",
        (20, 89, 0),
        DIGEST_0123,
        [(3, 102, 0, (5,)), (3, 151, 0, VENDOR_REC), (3, 153, 0, CLASS_REC), (20, 52, 0, (5,)), (20, 89, 0, (3, 14))],
    ),
    # Example 4: payload-fetch into component [h'02'] (index 1) fails its image match before install/load.
    (
        "example4_signed.hex",
        Procedure.UPDATE,
        InMemoryComponentStore,
        "http://example.com/file.bin",
        (16, 76, 1),
        DIGEST_0011,
        [(3, 84, 0, VENDOR_REC), (3, 86, 0, CLASS_REC), (16, 76, 1, (3, 14))],
    ),
    (
        "example5_signed.hex",
        Procedure.UPDATE,
        InMemoryComponentStore,
        "http://example.com/file1.bin",
        (20, 38, 0),
        DIGEST_0011,
        [(3, 84, 0, VENDOR_REC), (3, 86, 0, CLASS_REC), (20, 38, 0, (3, 14))],
    ),
]


@pytest.mark.parametrize(("name", "procedure", "make_store", "uri", "where", "expected", "expected_records"), EXAMPLES)
def test_manifest_examples_processed(
    name: str,
    procedure: Procedure,
    make_store: Callable[[], InMemoryComponentStore],
    uri: str | None,
    where: tuple[int, int, int],
    expected: str,
    expected_records: list[tuple[int, int, int, tuple[int, ...]]],
) -> None:
    store = make_store()
    before = store.snapshot()
    fetcher = MappingFetcher(PAYLOADS)
    result = process(
        vector("suit-manifest", name), procedure, config=config(nonce=b"n" * 8), store=store, fetcher=fetcher
    )
    assert not result.ok and not result.committed
    assert isinstance(result.error, SuitAbort)
    assert str(result.error).startswith("image-match failed") and expected in str(result.error)
    report = result.report
    assert report.digest == decode_envelope(vector("suit-manifest", name)).digest
    assert report.nonce == b"n" * 8
    failure = report.failure
    assert failure is not None
    assert (failure.code, failure.reason) == (ResultCode.CONDITION_FAILED, ReportReason.CONDITION_FAILED)
    assert (failure.record.manifest_id, failure.record.section, failure.record.offset) == ((), *where[:2])
    assert failure.record.component_index == where[2]
    content = PAYLOADS[uri] if uri else b"installed image"
    assert dict(failure.record.properties) == measured(content)
    assert fetcher.requests == ([uri] if uri else [])
    assert [(r.section, r.offset, r.component_index, tuple(r.properties)) for r in records(report)] == expected_records
    assert store.snapshot() == before and store.commits == 0
    assert decode_report(encode_report(report)) == report


def test_example2_severed_without_install_cannot_update() -> None:
    result = process(
        vector("suit-manifest", "example2_severed_signed.hex"),
        Procedure.UPDATE,
        config=config(),
        store=InMemoryComponentStore(),
        fetcher=MappingFetcher(PAYLOADS),
    )
    assert result.report.failure is not None
    assert result.report.failure.code == ResultCode.SEVERED_MEMBER_ABSENT
    assert (result.report.failure.record.section, result.report.failure.reason) == (20, ReportReason.OPERATION_FAILED)
    assert "severed" in str(result.error)


def test_example0_update_procedure_validates_an_empty_component() -> None:
    result = process(
        vector("suit-manifest", "example0_signed.hex"),
        Procedure.UPDATE,
        config=config(),
        store=InMemoryComponentStore(),
    )
    assert result.report.failure is not None and result.report.failure.record.section == 7
    assert "empty" in str(result.error)


def dependency_store() -> tuple[InMemoryComponentStore, MappingFetcher]:
    fetcher = MappingFetcher(
        {"http://example.com/dependent.suit": vector("suit-trust-domains", "example0_dependent.hex")}
    )
    return InMemoryComponentStore(), fetcher


# example2_integrated's install runs process-dependency without a prior suit-condition-dependency-integrity, which
# trust-domains-12 requires: it only runs with the compatibility flag (docs/suit-decisions.md).
@pytest.mark.parametrize(("name", "compat"), [("example1_process.hex", False), ("example2_integrated.hex", True)])
def test_trust_domain_dependencies(name: str, compat: bool) -> None:
    store, fetcher = dependency_store()
    data = vector("suit-trust-domains", name)
    if compat:
        strict = process(data, Procedure.UPDATE, config=config(), store=store, fetcher=fetcher)
        assert strict.report.failure is not None and strict.report.failure.code == ResultCode.DEPENDENCY_FAILED
        assert "dependency-integrity" in str(strict.error) and store.commits == 0 and strict.quirks == ()
    cfg = config(compat_implicit_dependency_integrity=compat)
    result = process(data, Procedure.UPDATE, config=cfg, store=store, fetcher=fetcher)
    result.raise_for_failure()
    assert result.committed and result.report.success
    assert result.quirks == ((Quirk.IMPLICIT_DEPENDENCY_INTEGRITY,) if compat else ())
    # the dependent references its dependency and (as a root with a manifest-component-id) its own envelope
    assert store.references((b"dependent.suit",)) == {(b"depending.suit",)}
    assert store.references((b"depending.suit",)) == {(b"depending.suit",)}
    # the dependency (fetched, or integrated under "#dependent.suit") wrote 'hello world' to ['00'],
    # the dependent wrote to ['10'], and both manifests are recorded for anti-rollback
    assert store.components[(b"00",)] == b"hello world"
    assert store.components[(b"10",)] == b" in multiple trust domains"
    assert store.components[(b"dependent.suit",)] == vector("suit-trust-domains", "example0_dependent.hex")
    assert set(store.manifests) == {(b"dependent.suit",), (b"depending.suit",)}
    assert fetcher.requests == (["http://example.com/dependent.suit"] if "process" in name else [])
    dependency_records = [r for r in records(result.report) if r.manifest_id == (0,)]
    assert [(r.section, r.offset, dict(r.properties)) for r in dependency_records] == [(20, 16, {14: 11})]
    invoked = process(data, Procedure.INVOKE, config=config(), store=store)
    invoked.raise_for_failure()
    assert invoked.quirks == ()
    assert store.invoked == [Invocation((b"10",), b"cat 00 10")]
    assert (store.components[(b"00",)] + store.components[(b"10",)]).decode() == "hello world in multiple trust domains"


def test_trust_domain_dependent_alone() -> None:
    store = InMemoryComponentStore()
    data = vector("suit-trust-domains", "example0_dependent.hex")
    process(data, Procedure.UPDATE, config=config(), store=store).raise_for_failure()
    process(data, Procedure.INVOKE, config=config(), store=store).raise_for_failure()
    assert store.invoked == [Invocation((b"00",), b"cat 00")]


def test_trust_domain_dependency_with_wrong_digest_is_rejected() -> None:
    store, _ = dependency_store()
    fetcher = MappingFetcher({"http://example.com/dependent.suit": vector("teep-protocol", "E_ex1_suit_uri.hex")})
    result = process(
        vector("suit-trust-domains", "example1_process.hex"),
        Procedure.UPDATE,
        config=config(),
        store=store,
        fetcher=fetcher,
    )
    # the fetched envelope is authentic but is not the manifest the dependent names: its image match fails
    assert result.report.failure is not None and result.report.failure.record.section == 15
    assert result.report.failure.reason == ReportReason.CONDITION_FAILED
    assert store.components == {}


def test_teep_e1_uri_install_and_uninstall() -> None:
    store = InMemoryComponentStore()
    data = vector("teep-protocol", "E_ex1_suit_uri.hex")
    result = process(
        data, Procedure.UPDATE, config=config(), store=store, fetcher=MappingFetcher({TA_URI: ta_binary()})
    )
    result.raise_for_failure()
    assert store.components[TA_ID] == b"Hello, Secure World!"
    assert store.components[TA_SUIT_ID] == data
    assert store.manifests[TA_SUIT_ID] == InstalledManifest(3, decode_envelope(data).digest)
    assert [(r.section, r.offset, dict(r.properties)) for r in records(result.report)] == [
        (3, 80, {1: bytes.fromhex("C0DDD5F15243566087DB4F5B0AA26C2F")}),
        (3, 82, {2: bytes.fromhex("DB42F7093D8C55BAA8C5265FC5820F4E")}),
        (20, 65, {14: 20}),
        (20, 67, measured(b"Hello, Secure World!")),
    ]
    removed = process(data, Procedure.UNINSTALL, config=config(), store=store)
    removed.raise_for_failure()
    assert store.components == {}
    assert TA_SUIT_ID in store.manifests  # the sequence number is remembered after uninstall


def test_teep_e2_integrated_payload_installs() -> None:
    store = InMemoryComponentStore()
    envelope = decode_envelope(vector("teep-protocol", "E_ex2_suit_integrated.hex"))
    assert envelope.integrated == {"#tc": b"Hello, Secure World!"}
    assert SuitDigest.compute(b"Hello, Secure World!").value.hex().startswith("8cf71ac8")
    result = process(envelope, Procedure.UPDATE, config=config(), store=store)  # no fetcher needed
    result.raise_for_failure()
    assert store.components[TA_ID] == b"Hello, Secure World!"


def test_teep_e3_personalization_decrypts_config() -> None:
    store = InMemoryComponentStore()
    e1 = vector("teep-protocol", "E_ex1_suit_uri.hex")
    # the manifest names the tagged (SUIT_Envelope_Tagged) form of E1: 389 = 2 + 387 bytes
    fetcher = MappingFetcher({TA_SUIT_URI: cbor.encode(cbor.CBORTag(107, cbor.decode(e1))), TA_URI: ta_binary()})
    assert len(fetcher.payloads[TA_SUIT_URI]) == 389
    data = vector("teep-protocol", "E_ex3_suit_personalization.hex")
    # E.3 processes its dependency (install, uninstall) without suit-condition-dependency-integrity: compat flag
    strict = process(
        data, Procedure.UPDATE, config=config(decryption_keys=(agent_key(),)), store=store, fetcher=fetcher
    )
    assert strict.report.failure is not None and strict.report.failure.code == ResultCode.DEPENDENCY_FAILED
    assert (strict.report.failure.record.section, strict.report.failure.record.offset) == (20, 3)
    cfg = config(decryption_keys=(agent_key(),), compat_implicit_dependency_integrity=True)
    result = process(data, Procedure.UPDATE, config=cfg, store=store, fetcher=fetcher)
    result.raise_for_failure()
    assert result.quirks == (Quirk.IMPLICIT_DEPENDENCY_INTEGRITY,)
    plaintext = store.components[(b"TEEP-Device", b"SecureFS", b"config.json")]
    assert len(plaintext) == 61
    assert plaintext == b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'
    assert (
        SuitDigest.compute(plaintext).value.hex() == "8273468fb64bd84bb04825f8371744d952b751c73a60f455af681e167726f116"
    )
    assert store.components[TA_ID] == b"Hello, Secure World!"  # installed by the dependency (E1) in lockstep
    assert set(store.manifests) == {TA_SUIT_ID, (b"TEEP-Device", b"SecureFS", b"config.suit")}
    assert {r.manifest_id for r in records(result.report)} == {(), (0,)}
    assert process(data, Procedure.UNINSTALL, config=config(), store=store).report.failure is not None
    removed = process(data, Procedure.UNINSTALL, config=config(compat_implicit_dependency_integrity=True), store=store)
    removed.raise_for_failure()
    assert removed.quirks == (Quirk.IMPLICIT_DEPENDENCY_INTEGRITY,)
    assert TA_ID not in store.components and (b"TEEP-Device", b"SecureFS", b"config.json") not in store.components
    assert TA_SUIT_ID not in store.components and store.references(TA_SUIT_ID) == frozenset()


def test_teep_e3_without_the_agent_key_fails_and_commits_nothing() -> None:
    store = InMemoryComponentStore()
    e1 = vector("teep-protocol", "E_ex1_suit_uri.hex")
    fetcher = MappingFetcher({TA_SUIT_URI: e1, TA_URI: ta_binary()})
    data = vector("teep-protocol", "E_ex3_suit_personalization.hex")
    for keys in ((), (tam_key(),)):
        cfg = config(decryption_keys=keys, compat_implicit_dependency_integrity=True)
        result = process(data, Procedure.UPDATE, config=cfg, store=store, fetcher=fetcher)
        assert result.report.failure is not None
        assert result.report.failure.code == ResultCode.DECRYPTION_FAILED
        assert result.report.failure.record.section == 20
        assert store.components == {} and store.manifests == {}


def test_rollback_is_rejected() -> None:
    store = InMemoryComponentStore()
    data = vector("teep-protocol", "E_ex2_suit_integrated.hex")
    process(data, Procedure.UPDATE, config=config(), store=store).raise_for_failure()
    # manifest-37 only requires rejecting a LOWER number; refusing the installed one is our documented policy
    again = process(data, Procedure.UPDATE, config=config(), store=store)
    assert isinstance(again.error, FreshnessError)
    assert again.report.failure is not None and again.report.failure.code == ResultCode.ROLLBACK
    assert (again.report.failure.record.section, again.report.failure.reason) == (2, ReportReason.UNAUTHORISED)
    store.manifests[TA_SUIT_ID] = InstalledManifest(7, SuitDigest.compute(b"newer"))
    assert isinstance(process(data, Procedure.INVOKE, config=config(), store=store).error, FreshnessError)
    store.manifests[TA_SUIT_ID] = InstalledManifest(2, SuitDigest.compute(b"older"))
    assert process(data, Procedure.UPDATE, config=config(), store=store).ok


def test_failing_condition_leaves_the_store_unchanged() -> None:
    store = InMemoryComponentStore({TA_ID: b"old TA"})
    before = store.snapshot()
    other = config(identity=Identity(vendor_ids=IDENTITY.vendor_ids, class_ids=frozenset({b"\x01" * 16})))
    result = process(
        vector("teep-protocol", "E_ex1_suit_uri.hex"),
        Procedure.UPDATE,
        config=other,
        store=store,
        fetcher=MappingFetcher({TA_URI: ta_binary()}),
    )
    failure = result.report.failure
    assert failure is not None and failure.reason == ReportReason.CONDITION_FAILED
    # the shared sequence's condition-class-identifier (offset 82 of suit-common's shared sequence)
    assert (failure.record.section, failure.record.offset) == (3, 82)
    assert "class-identifier" in str(result.error)
    assert store.snapshot() == before and store.commits == 0


def test_untrusted_or_tampered_manifests_are_reported() -> None:
    store = InMemoryComponentStore()
    data = vector("teep-protocol", "E_ex1_suit_uri.hex")
    result = process(data, Procedure.UPDATE, config=config(trust_anchors=(tam_key().public(),)), store=store)
    assert isinstance(result.error, UntrustedSignerError)
    assert result.report.failure is not None
    assert (result.report.failure.code, result.report.failure.reason) == (
        ResultCode.UNTRUSTED_SIGNER,
        ReportReason.UNAUTHORISED,
    )
    tampered = data.replace(b"example.org", b"example.com")
    result = process(tampered, Procedure.UPDATE, config=config(), store=store)
    assert isinstance(result.error, DigestMismatchError)
    assert result.report.failure is not None and result.report.failure.code == ResultCode.DIGEST_MISMATCH
    assert store.components == {} and store.commits == 0


def test_dependency_rollback_is_rejected() -> None:
    store, fetcher = dependency_store()
    dependent = decode_envelope(vector("suit-trust-domains", "example0_dependent.hex"))
    store.manifests[(b"dependent.suit",)] = InstalledManifest(1, dependent.digest)
    result = process(
        vector("suit-trust-domains", "example1_process.hex"),
        Procedure.UPDATE,
        config=config(),
        store=store,
        fetcher=fetcher,
    )
    assert result.report.failure is not None and result.report.failure.code == ResultCode.ROLLBACK
    assert "rolls back" in str(result.error)

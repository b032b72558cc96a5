"""Command semantics of the interpreter on small hand-made, signed manifests."""

from __future__ import annotations

import pytest
from suit_support import config, records, seq, sign_manifest, simple_manifest

from veritee.errors import NotFoundError, TransportError
from veritee.suit import (
    Command,
    Identity,
    InMemoryComponentStore,
    Invocation,
    MappingFetcher,
    Parameter,
    Procedure,
    ProcessResult,
    ReportReason,
    ResultCode,
    SuitDigest,
    process,
)

C = Command
P = Parameter
A, B = (b"a",), (b"b",)


def run(
    manifest: dict[int, object],
    store: InMemoryComponentStore | None = None,
    procedure: Procedure = Procedure.UPDATE,
    fetcher: MappingFetcher | None = None,
    **cfg: object,
) -> tuple[ProcessResult, InMemoryComponentStore]:
    store = store if store is not None else InMemoryComponentStore()
    return process(sign_manifest(manifest), procedure, config=config(**cfg), store=store, fetcher=fetcher), store


def failure_of(result: ProcessResult) -> tuple[int, int, int]:
    assert result.report.failure is not None, "expected a failure"
    return result.report.failure.code, result.report.failure.record.offset, result.report.failure.reason


def test_write_check_content_and_image_match() -> None:
    digest = SuitDigest.compute(b"hello").encode()
    result, store = run(
        simple_manifest(
            [
                C.OVERRIDE_PARAMETERS,
                {P.CONTENT: b"hello", P.IMAGE_DIGEST: digest},
                C.WRITE,
                15,
                C.CHECK_CONTENT,
                0,
                C.IMAGE_MATCH,
                0,
            ]
        )
    )
    result.raise_for_failure()
    assert store.components == {(b"\x00",): b"hello"}


def test_try_each_soft_failure_and_fallback() -> None:
    install = [
        C.OVERRIDE_PARAMETERS,
        {P.CONTENT: b"new"},
        C.TRY_EACH,
        [
            seq(C.CHECK_CONTENT, 2, C.ABORT, 2),  # matches nothing: soft failure
            seq(C.WRITE, 0),
        ],
    ]
    result, store = run(simple_manifest(install))
    result.raise_for_failure()
    assert store.components == {(b"\x00",): b"new"}
    # check-content's policy 2 (record on failure) leaves a record of the soft failure; no properties (no sysinfo)
    # offset 12: 0x84, 0x14, {18: "new"} (6 bytes), 0x0f, 0x82, bstr head 0x45, 0x84, then check-content
    assert [(r.offset, dict(r.properties)) for r in records(result.report)] == [(12, {})]


def test_try_each_all_failing_is_a_condition_failure_unless_nil_ends_it() -> None:
    failing = [C.TRY_EACH, [seq(C.ABORT, 0), seq(C.ABORT, 0)]]
    result, _ = run(simple_manifest(failing))
    assert failure_of(result) == (ResultCode.CONDITION_FAILED, 1, ReportReason.CONDITION_FAILED)
    result, _ = run(simple_manifest([C.TRY_EACH, [seq(C.ABORT, 0), None]]))
    result.raise_for_failure()
    # a sequence that turns soft failure off makes its failure fatal
    hard = [C.TRY_EACH, [seq(C.OVERRIDE_PARAMETERS, {P.SOFT_FAILURE: False}, C.ABORT, 0), seq(C.ABORT, 0)]]
    result, _ = run(simple_manifest(hard))
    assert result.report.failure is not None and result.report.failure.record.offset > 1


def test_run_sequence_soft_failure() -> None:
    soft = seq(C.OVERRIDE_PARAMETERS, {P.SOFT_FAILURE: True}, C.ABORT, 0)
    result, store = run(simple_manifest([C.RUN_SEQUENCE, soft, C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.WRITE, 0]))
    result.raise_for_failure()
    assert store.components == {(b"\x00",): b"x"}
    result, _ = run(simple_manifest([C.RUN_SEQUENCE, seq(C.ABORT, 0)]))
    assert failure_of(result)[0] == ResultCode.CONDITION_FAILED


def test_soft_failure_outside_try_each_aborts() -> None:
    result, _ = run(simple_manifest([C.OVERRIDE_PARAMETERS, {P.SOFT_FAILURE: True}]))
    assert failure_of(result)[0] == ResultCode.NOT_ALLOWED


def test_copy_swap_unlink_invoke_on_several_components() -> None:
    install = [
        C.SET_COMPONENT_INDEX,
        0,
        C.OVERRIDE_PARAMETERS,
        {P.CONTENT: b"A"},
        C.WRITE,
        0,
        C.SET_COMPONENT_INDEX,
        1,
        C.OVERRIDE_PARAMETERS,
        {P.SOURCE_COMPONENT: 0},
        C.COPY,
        0,
        C.OVERRIDE_PARAMETERS,
        {P.CONTENT: b"B"},
        C.WRITE,
        0,
        C.SWAP,
        0,
    ]
    invoke = [C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.INVOKE_ARGS: b"--go"}, C.INVOKE, 0]
    manifest = simple_manifest(install, components=(A, B), invoke=invoke)
    result, store = run(manifest)
    result.raise_for_failure()
    assert store.components == {A: b"B", B: b"A"}
    process(sign_manifest(manifest), Procedure.INVOKE, config=config(), store=store).raise_for_failure()
    assert store.invoked == [Invocation(B, b"--go")]
    unlink = simple_manifest([C.SET_COMPONENT_INDEX, True, C.UNLINK, 0], components=(A, B), seq_no=2)
    result, store = run(unlink, store)
    result.raise_for_failure()
    assert store.components == {}


def test_set_parameters_does_not_override() -> None:
    install = [
        C.OVERRIDE_PARAMETERS,
        {P.CONTENT: b"first"},
        C.SET_PARAMETERS,
        {P.CONTENT: b"second"},
        C.WRITE,
        0,
    ]
    result, store = run(simple_manifest(install))
    result.raise_for_failure()
    assert store.components == {(b"\x00",): b"first"}


@pytest.mark.parametrize(
    ("install", "code", "reason"),
    [
        ([C.WRITE, 0], ResultCode.COMPONENT_UNSUPPORTED, ReportReason.COMPONENT_UNSUPPORTED),  # no index, 2 comps
        ([C.SET_COMPONENT_INDEX, 2], ResultCode.COMPONENT_UNSUPPORTED, ReportReason.COMPONENT_UNSUPPORTED),
        ([C.SET_COMPONENT_INDEX, 0, 99, 0], ResultCode.COMMAND_UNSUPPORTED, ReportReason.COMMAND_UNSUPPORTED),
        ([C.OVERRIDE_PARAMETERS, {99: 1}], ResultCode.PARAMETER_UNSUPPORTED, ReportReason.PARAMETER_UNSUPPORTED),
        ([C.SET_COMPONENT_INDEX, 0, C.WRITE, 0], ResultCode.PARAMETER_MISSING, ReportReason.OPERATION_FAILED),
        ([C.SET_COMPONENT_INDEX, 0, C.FETCH, 0], ResultCode.PARAMETER_MISSING, ReportReason.OPERATION_FAILED),
        (
            [C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.SOURCE_COMPONENT: 0}, C.COPY, 0],
            ResultCode.COMPONENT_MISSING,
            ReportReason.OPERATION_FAILED,
        ),
        ([C.SET_COMPONENT_INDEX, 0, C.INVOKE, 0], ResultCode.COMPONENT_MISSING, ReportReason.OPERATION_FAILED),
        (
            [C.SET_COMPONENT_INDEX, 0, C.PROCESS_DEPENDENCY, 0],
            ResultCode.DEPENDENCY_FAILED,
            ReportReason.OPERATION_FAILED,
        ),
        ([C.SET_COMPONENT_INDEX, 0, C.IMAGE_MATCH, 0], ResultCode.CONDITION_FAILED, ReportReason.CONDITION_FAILED),
        ([C.SET_COMPONENT_INDEX, 0, C.IS_DEPENDENCY, 0], ResultCode.CONDITION_FAILED, ReportReason.CONDITION_FAILED),
        (
            [C.SET_COMPONENT_INDEX, 0, C.DEVICE_IDENTIFIER, 0],
            ResultCode.CONDITION_FAILED,
            ReportReason.CONDITION_FAILED,
        ),
    ],
)
def test_failures_are_reported(install: list[object], code: ResultCode, reason: ReportReason) -> None:
    store = InMemoryComponentStore({(b"x",): b"untouched"})
    result, store = run(simple_manifest(install, components=(A, B)), store)
    assert result.report.failure is not None
    assert (result.report.failure.code, result.report.failure.reason) == (code, reason)
    assert store.components == {(b"x",): b"untouched"} and store.commits == 0


def test_shared_sequence_cannot_have_side_effects() -> None:
    result, _ = run(simple_manifest([C.WRITE, 0], shared=[C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.WRITE, 0]))
    code, _, reason = failure_of(result)
    assert (code, reason) == (ResultCode.NOT_ALLOWED, ReportReason.COMMAND_UNSUPPORTED)
    assert result.report.failure is not None and result.report.failure.record.section == 3


def test_fetch_failures_and_integrated_lookup() -> None:
    install = [C.OVERRIDE_PARAMETERS, {P.URI: "https://x.example/p"}, C.FETCH, 2]
    result, _ = run(simple_manifest(install), fetcher=MappingFetcher({}))
    assert failure_of(result)[0] == ResultCode.FETCH_FAILED
    assert "no payload at https://x.example/p" in str(result.error)

    class Broken:
        def fetch(self, uri: str) -> bytes:
            raise TransportError("connection refused")

    result, _ = run(simple_manifest(install), fetcher=Broken())  # type: ignore[arg-type]
    assert "connection refused" in str(result.error)
    result, _ = run(simple_manifest(install))  # no fetcher at all
    assert failure_of(result)[0] == ResultCode.FETCH_FAILED
    integrated = sign_manifest(simple_manifest([C.OVERRIDE_PARAMETERS, {P.URI: "#p"}, C.FETCH, 0]), extra={"#p": b"P"})
    store = InMemoryComponentStore()
    process(integrated, Procedure.UPDATE, config=config(), store=store).raise_for_failure()
    assert store.components == {(b"\x00",): b"P"}


def test_component_slot_condition() -> None:
    manifest = simple_manifest([C.OVERRIDE_PARAMETERS, {P.COMPONENT_SLOT: 1}, C.COMPONENT_SLOT, 15])
    result, _ = run(manifest, InMemoryComponentStore(slots={(b"\x00",): 0}))
    assert result.report.failure is not None and dict(result.report.failure.record.properties) == {5: 0}
    result, _ = run(manifest, InMemoryComponentStore(slots={(b"\x00",): 1}))
    assert result.ok and [dict(r.properties) for r in records(result.report)] == [{5: 1}]


def test_identity_conditions() -> None:
    device = b"\x07" * 16
    shared = [C.OVERRIDE_PARAMETERS, {P.DEVICE_IDENTIFIER: device}, C.DEVICE_IDENTIFIER, 15]
    manifest = simple_manifest([C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.WRITE, 0], shared=shared)
    result, _ = run(manifest)
    assert failure_of(result)[0] == ResultCode.CONDITION_FAILED
    result, _ = run(manifest, identity=Identity(device_ids=frozenset({device})))
    result.raise_for_failure()


def test_invoke_failure_after_commit() -> None:
    def refuse(component: tuple[bytes, ...], args: bytes | None) -> None:
        raise NotFoundError("cannot start")

    manifest = simple_manifest(invoke=[C.INVOKE, 0])
    store = InMemoryComponentStore({(b"\x00",): b"code"}, invoke_hook=refuse)
    result = process(sign_manifest(manifest), Procedure.INVOKE, config=config(), store=store)
    assert failure_of(result)[0] == ResultCode.INVOKE_FAILED and result.committed


def test_too_many_components() -> None:
    result, _ = run(simple_manifest([C.WRITE, 0], components=(A, B)), max_components=1)
    assert failure_of(result)[0] == ResultCode.COMPONENT_UNSUPPORTED

"""Conformance fixes from the standards review (docs/suit-decisions.md): process-dependency with index True, strict
dependency-integrity, reference counting of dependencies, Run Sequence with Strict Order False, Soft Failure with Set
Parameters, dependency-integrity without an image digest."""

from __future__ import annotations

from typing import Any

import pytest
from suit_support import config, seq, sign_manifest, simple_manifest

import veritee.suit as suit
from veritee import cbor
from veritee.suit import (
    Command,
    InMemoryComponentStore,
    Parameter,
    Procedure,
    ProcessResult,
    ReportReason,
    ResultCode,
    decode_envelope,
    process,
)

C = Command
P = Parameter
A, B = (b"a",), (b"b",)
LIB = (b"lib",)  # the component the shared dependency installs
DEP = (b"dep.suit",)  # where the dependency envelope is stored (its dependency prefix)
R1, R2, R3 = (b"r1.suit",), (b"r2.suit",), (b"r3.suit",)


def dependency(content: bytes = b"library v1", seq_no: int = 1) -> bytes:
    """A dependency manifest: installs LIB, and its uninstall sequence unlinks it."""
    manifest = simple_manifest(
        [C.OVERRIDE_PARAMETERS, {P.CONTENT: content}, C.WRITE, 0],
        components=(LIB,),
        seq_no=seq_no,
        uninstall=[C.UNLINK, 0],
    )
    return sign_manifest(manifest, tagged=False)


def dependent(
    manifest_id: tuple[bytes, ...],
    dep: bytes,
    *,
    own: tuple[bytes, ...] = (b"app",),
    seq_no: int = 1,
    install: list[Any] | None = None,
    integrity: bool = True,
) -> bytes:
    """A root manifest (component ``own`` at index 0) that depends on ``dep`` (index 1, prefix DEP, integrated)."""
    digest = decode_envelope(dep).digest.encode()
    check = [C.DEPENDENCY_INTEGRITY, 0] if integrity else []
    if install is None:
        install = [C.SET_COMPONENT_INDEX, 1, *check, C.PROCESS_DEPENDENCY, 0]
        install += [
            C.SET_COMPONENT_INDEX,
            0,
            C.OVERRIDE_PARAMETERS,
            {P.CONTENT: b"app of " + bytes(own[0])},
            C.WRITE,
            0,
        ]
    uninstall = [C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.IMAGE_DIGEST: digest}, *check]
    uninstall += [C.PROCESS_DEPENDENCY, 0, C.SET_COMPONENT_INDEX, 0, C.UNLINK, 0]
    common = {1: {1: {1: list(DEP)}}, 2: [list(own)]}
    resolution = [C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.IMAGE_DIGEST: digest, P.URI: "#dep"}, C.FETCH, 0]
    manifest = {
        1: 1,
        2: seq_no,
        3: cbor.encode(common),
        5: list(manifest_id),
        15: seq(*resolution),
        20: seq(*install),
        24: seq(*uninstall),
    }
    return sign_manifest(manifest, extra={"#dep": dep})


def update(store: InMemoryComponentStore, data: bytes) -> ProcessResult:
    return process(data, Procedure.UPDATE, config=config(), store=store)


def uninstall(store: InMemoryComponentStore, data: bytes) -> ProcessResult:
    return process(data, Procedure.UNINSTALL, config=config(), store=store)


def failure(result: ProcessResult) -> tuple[int, int]:
    assert result.report.failure is not None, "expected a failure"
    return result.report.failure.code, result.report.failure.record.offset


# ---- item 11: process-dependency with component index True ------------------------------------------------------
def test_process_dependency_with_index_true_skips_non_dependencies() -> None:
    """trust-domains-12: "If the current Component is True, then this Directive applies to all Dependencies"."""
    install = [
        C.SET_COMPONENT_INDEX,
        1,
        C.DEPENDENCY_INTEGRITY,
        0,
        C.SET_COMPONENT_INDEX,
        True,
        C.PROCESS_DEPENDENCY,
        0,
    ]
    store = InMemoryComponentStore()
    update(store, dependent(R1, dependency(), install=install)).raise_for_failure()
    assert store.components[LIB] == b"library v1"  # the dependency at index 1 ran; index 0 (a component) was skipped


def test_process_dependency_on_an_explicit_non_dependency_still_aborts() -> None:
    install = [C.SET_COMPONENT_INDEX, [0, 1], C.PROCESS_DEPENDENCY, 0]
    result = update(InMemoryComponentStore(), dependent(R1, dependency(), install=install))
    assert failure(result)[0] == ResultCode.DEPENDENCY_FAILED and "not a dependency" in str(result.error)


# ---- item 12: strict dependency-integrity, the compat flag reported ------------------------------------------------
def test_process_dependency_without_integrity_aborts_unless_the_compat_flag_is_set() -> None:
    data = dependent(R1, dependency(), integrity=False)
    store = InMemoryComponentStore()
    strict = update(store, data)
    assert failure(strict)[0] == ResultCode.DEPENDENCY_FAILED
    assert "has not been the target of a suit-condition-dependency-integrity" in str(strict.error)
    assert store.commits == 0 and strict.quirks == ()
    lenient = process(data, Procedure.UPDATE, config=config(compat_implicit_dependency_integrity=True), store=store)
    lenient.raise_for_failure()
    assert lenient.quirks == (suit.Quirk.IMPLICIT_DEPENDENCY_INTEGRITY,)
    assert store.components[LIB] == b"library v1"
    checked = update(InMemoryComponentStore(), dependent(R1, dependency()))
    checked.raise_for_failure()
    assert checked.quirks == ()  # the flag is only reported when it was needed


def test_a_fetch_after_dependency_integrity_voids_the_check() -> None:
    """A cached dependency-integrity result "MUST [be eliminated] if any Fetch, or Copy operation targets the
    Dependency Manifest's Component ID"."""
    install = [C.SET_COMPONENT_INDEX, 1, C.DEPENDENCY_INTEGRITY, 0, C.FETCH, 0, C.PROCESS_DEPENDENCY, 0]
    result = update(InMemoryComponentStore(), dependent(R1, dependency(), install=install))
    assert failure(result)[0] == ResultCode.DEPENDENCY_FAILED and "dependency-integrity" in str(result.error)


# ---- P2: dependency-integrity failures abort (not soft) --------------------------------------------------------------
@pytest.mark.parametrize(
    ("index", "code", "message"),
    [(1, ResultCode.PARAMETER_MISSING, "image-digest"), (0, ResultCode.DEPENDENCY_FAILED, "not a dependency")],
)
def test_dependency_integrity_failures_abort_even_inside_try_each(index: int, code: ResultCode, message: str) -> None:
    """ "If any of these steps fails, the Manifest Process MUST immediately Abort" - no soft failure."""
    manifest = {1: 1, 2: 1, 3: cbor.encode({1: {1: {1: list(DEP)}}, 2: [[b"app"]]})}
    manifest[20] = seq(C.SET_COMPONENT_INDEX, index, C.TRY_EACH, [seq(C.DEPENDENCY_INTEGRITY, 0), None])
    result = update(InMemoryComponentStore({DEP: dependency()}), sign_manifest(manifest))
    assert result.report.failure is not None
    assert (result.report.failure.code, result.report.failure.reason) == (code, ReportReason.OPERATION_FAILED)
    assert message in str(result.error)


# ---- item 13: reference counting of dependencies -------------------------------------------------------------------
def test_a_shared_dependency_survives_until_its_last_dependent_is_uninstalled() -> None:
    lib = dependency()
    first, second = dependent(R1, lib, own=(b"app1",)), dependent(R2, lib, own=(b"app2",))
    store = InMemoryComponentStore()
    update(store, first).raise_for_failure()
    update(store, second).raise_for_failure()  # re-fetching the identical dependency alters nothing: allowed
    uninstall(store, first).raise_for_failure()
    assert store.components[LIB] == b"library v1" and DEP in store.components  # R2 still needs it
    assert (b"app1",) not in store.components and R1 not in store.components
    assert store.references(DEP) == {R2} and store.references(R1) == frozenset()
    assert store.references(R2) == {R2}  # a root with a manifest-component-id references its own envelope
    uninstall(store, second).raise_for_failure()  # the last reference: the dependency's uninstall runs
    assert store.components == {} and store.holders == {}


def test_reference_counts_come_from_the_store_after_a_restart() -> None:
    lib = dependency()
    first, second = dependent(R1, lib, own=(b"app1",)), dependent(R2, lib, own=(b"app2",))
    store = InMemoryComponentStore()
    update(store, first).raise_for_failure()
    update(store, second).raise_for_failure()
    # a new processor and a store rebuilt from what was persisted (components, records, reference counts)
    restarted = InMemoryComponentStore(store.components, manifests=store.manifests, references=store.holders)
    uninstall(restarted, first).raise_for_failure()
    assert restarted.components[LIB] == b"library v1"
    forgetful = InMemoryComponentStore(store.components, manifests=store.manifests)  # counts lost: not conformant
    uninstall(forgetful, first).raise_for_failure()
    assert LIB not in forgetful.components


def test_altering_a_component_another_manifest_references_aborts() -> None:
    store = InMemoryComponentStore()
    update(store, dependent(R1, dependency(), own=(b"app1",))).raise_for_failure()
    before = store.snapshot()
    # R3 brings another version of the dependency: its fetch would overwrite what R1 references
    result = update(store, dependent(R3, dependency(b"library v2", seq_no=2), own=(b"app3",)))
    assert failure(result)[0] == suit.ResultCode.COMPONENT_IN_USE
    assert result.report.failure is not None and result.report.failure.record.section == 15
    assert "referenced by 1 other manifest" in str(result.error) and store.snapshot() == before
    writer = simple_manifest([C.OVERRIDE_PARAMETERS, {P.CONTENT: b"junk"}, C.WRITE, 0], components=(DEP,))
    assert failure(update(store, sign_manifest(writer)))[0] == suit.ResultCode.COMPONENT_IN_USE
    swap = [C.SET_COMPONENT_INDEX, 0, C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x", P.SOURCE_COMPONENT: 1}, C.WRITE, 0]
    swapper = simple_manifest([*swap, C.SWAP, 0], components=(A, DEP))  # swap alters its source too
    assert failure(update(store, sign_manifest(swapper)))[0] == suit.ResultCode.COMPONENT_IN_USE
    assert store.snapshot() == before
    # an unlink by a manifest that holds no reference does not delete it either
    unlinker = simple_manifest([C.UNLINK, 0], components=(DEP,))
    update(store, sign_manifest(unlinker)).raise_for_failure()
    assert store.components[DEP] == before[0][DEP]


def test_a_dependent_may_replace_the_dependency_only_it_references() -> None:
    store = InMemoryComponentStore()
    update(store, dependent(R1, dependency())).raise_for_failure()
    update(store, dependent(R1, dependency(b"library v2", seq_no=2), seq_no=2)).raise_for_failure()
    assert store.components[LIB] == b"library v2" and store.references(DEP) == {R1}


def test_a_root_manifest_that_is_also_a_dependency_is_kept() -> None:
    # the library manifest installed as a root TC of its own (manifest-component-id DEP)...
    fields = {**cbor.decode(decode_envelope(dependency()).manifest_raw), 5: list(DEP)}
    standalone = sign_manifest(dict(sorted(fields.items())), tagged=False)
    store = InMemoryComponentStore()
    update(store, standalone).raise_for_failure()
    installed = store.components[DEP]
    data = dependent(R1, installed)  # ...and as the dependency of R1
    update(store, data).raise_for_failure()  # same envelope: the fetch does not alter DEP
    uninstall(store, data).raise_for_failure()
    assert store.components[LIB] == b"library v1" and store.references(DEP) == {DEP}
    uninstall(store, installed).raise_for_failure()
    assert LIB not in store.components and DEP not in store.components


# ---- item 14: Run Sequence with Strict Order False ----------------------------------------------------------------
def run(install: list[Any], components: tuple[tuple[bytes, ...], ...] = (A, B)) -> tuple[ProcessResult, Any]:
    store = InMemoryComponentStore()
    return update(store, sign_manifest(simple_manifest(install, components=components))), store


def test_run_sequence_with_strict_order_off_must_begin_with_set_component_index() -> None:
    parallel = [C.SET_COMPONENT_INDEX, 0, C.OVERRIDE_PARAMETERS, {P.STRICT_ORDER: False}]
    body = seq(C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.WRITE, 0)
    result, store = run([*parallel, C.RUN_SEQUENCE, body])
    result.raise_for_failure()
    assert store.components == {B: b"x"}
    further = seq(C.SET_COMPONENT_INDEX, 1, C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.SET_COMPONENT_INDEX, 0)
    result, _ = run([*parallel, C.RUN_SEQUENCE, further])
    assert failure(result)[0] == ResultCode.NOT_ALLOWED and "further set-component-index" in str(result.error)
    missing = seq(C.OVERRIDE_PARAMETERS, {P.CONTENT: b"x"}, C.WRITE, 0)
    result, _ = run([*parallel, C.RUN_SEQUENCE, missing])
    assert failure(result)[0] == ResultCode.NOT_ALLOWED and "must begin with" in str(result.error)


def test_run_sequence_with_strict_order_off_and_index_true_presets_the_index() -> None:
    parallel = [C.SET_COMPONENT_INDEX, True, C.OVERRIDE_PARAMETERS, {P.STRICT_ORDER: False}]
    result, store = run([*parallel, C.RUN_SEQUENCE, seq(C.OVERRIDE_PARAMETERS, {P.CONTENT: b"y"}, C.WRITE, 0)])
    result.raise_for_failure()
    assert store.components == {A: b"y", B: b"y"}
    result, _ = run([*parallel, C.RUN_SEQUENCE, seq(C.SET_COMPONENT_INDEX, 0)])
    assert failure(result)[0] == ResultCode.NOT_ALLOWED
    # with Strict Order True nothing is special: set-component-index may appear anywhere
    strict = [C.SET_COMPONENT_INDEX, 0, C.RUN_SEQUENCE, seq(C.SET_COMPONENT_INDEX, 1, C.SET_COMPONENT_INDEX, 0)]
    run(strict)[0].raise_for_failure()


# ---- P2: Soft Failure set by Set Parameters behaves alike in try-each and run-sequence -----------------------------
@pytest.mark.parametrize(
    ("sequence", "soft"),
    [
        # try-each: the default True is not "already set", so Set Parameters can turn it off
        (seq(C.SET_PARAMETERS, {P.SOFT_FAILURE: False}, C.ABORT, 0), False),
        # ...but it does not replace a value the sequence set itself
        (
            seq(C.OVERRIDE_PARAMETERS, {P.SOFT_FAILURE: False}, C.SET_PARAMETERS, {P.SOFT_FAILURE: True}, C.ABORT, 0),
            False,
        ),
        (seq(C.ABORT, 0), True),
    ],
    ids=["set-false", "override-false-then-set-true", "default"],
)
def test_set_parameters_soft_failure_in_try_each(sequence: bytes, soft: bool) -> None:
    result, _ = run([C.TRY_EACH, [sequence, None]], components=(A,))
    assert result.ok is soft


@pytest.mark.parametrize(
    ("sequence", "soft"),
    [
        (seq(C.SET_PARAMETERS, {P.SOFT_FAILURE: True}, C.ABORT, 0), True),
        (
            seq(C.OVERRIDE_PARAMETERS, {P.SOFT_FAILURE: True}, C.SET_PARAMETERS, {P.SOFT_FAILURE: False}, C.ABORT, 0),
            True,
        ),
        (seq(C.ABORT, 0), False),
    ],
    ids=["set-true", "override-true-then-set-false", "default"],
)
def test_set_parameters_soft_failure_in_run_sequence(sequence: bytes, soft: bool) -> None:
    result, _ = run([C.RUN_SEQUENCE, sequence], components=(A,))
    assert result.ok is soft

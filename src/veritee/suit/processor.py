"""The SUIT manifest processor: runs a procedure over a verified envelope and returns a SUIT_Report (sans-I/O).

Procedures (manifest-37 §8.4.6, trust-domains-12 §7):

* ``UPDATE``: dependency-resolution, payload-fetch, candidate-verification, install, validate;
* ``INVOKE``: validate, load, invoke;
* ``UNINSTALL``: uninstall.

Before any command runs the envelope is authenticated against the trust anchors and the sequence number is checked
against the store (anti-rollback, manifest-37 §8.4.2: "MUST reject any manifest that has a sequence number lower than
its current sequence number"; veritee's policy also refuses an update with the installed number, invocation accepts
it). All effects are staged; the store commits them only if the whole procedure succeeded, then queued
invocations run. The outcome is always a :class:`ProcessResult` with a report.

A root manifest with a manifest-component-id holds a reference to its own envelope while it is installed. Uninstall
drops it; only when no other manifest references the envelope (as a dependency) does the uninstall sequence run and
the envelope go (trust-domains-12 §5.6.5: "When the reference counter of a Manifest reaches zero, the suit-uninstall
Command sequence is invoked").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from veritee.cose import CoseKey
from veritee.errors import (
    DecodeError,
    DigestMismatchError,
    FreshnessError,
    SignatureError,
    SuitError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
    VeriteeError,
)
from veritee.suit.dependency import forget_stale_references
from veritee.suit.envelope import Envelope, VerifiedManifest, decode_envelope
from veritee.suit.interpreter import Frame, Identity, Interpreter, ResultCode, SuitAbort
from veritee.suit.labels import ManifestKey, ReportReason
from veritee.suit.model import ComponentId
from veritee.suit.report import Record, Report, ReportFailure
from veritee.suit.results import Quirk
from veritee.suit.store import ComponentStore, Fetcher, InstalledManifest, StagingArea

__all__ = ["PROCEDURE_SECTIONS", "Identity", "Procedure", "ProcessResult", "ProcessorConfig", "process"]


class Procedure(Enum):
    UPDATE = "update"
    INVOKE = "invoke"
    UNINSTALL = "uninstall"


PROCEDURE_SECTIONS: dict[Procedure, tuple[ManifestKey, ...]] = {
    Procedure.UPDATE: (
        ManifestKey.DEPENDENCY_RESOLUTION,
        ManifestKey.PAYLOAD_FETCH,
        ManifestKey.CANDIDATE_VERIFICATION,
        ManifestKey.INSTALL,
        ManifestKey.VALIDATE,
    ),
    Procedure.INVOKE: (ManifestKey.VALIDATE, ManifestKey.LOAD, ManifestKey.INVOKE),
    Procedure.UNINSTALL: (ManifestKey.UNINSTALL,),
}


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    """What the device trusts and is: trust anchors (signers of root manifests and dependencies), identity,
    decryption keys for encrypted payloads, the report nonce, and limits.

    ``default_manifest_id`` keys the anti-rollback record of manifests that have no manifest-component-id.

    ``compat_implicit_dependency_integrity`` lets process-dependency run on a dependency that no
    suit-condition-dependency-integrity checked (trust-domains-12 requires an Abort; some published examples omit the
    check). The dependency is still authenticated; the result reports :attr:`Quirk.IMPLICIT_DEPENDENCY_INTEGRITY`.
    """

    trust_anchors: tuple[CoseKey, ...]
    identity: Identity = field(default_factory=Identity)
    decryption_keys: tuple[CoseKey, ...] = ()
    nonce: bytes | None = None
    default_manifest_id: ComponentId = ()
    max_components: int = 64
    max_dependency_depth: int = 8
    max_payload_size: int = 64 * 1024 * 1024
    compat_implicit_dependency_integrity: bool = False


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """The outcome: the report, the error (None on success), what was staged, whether it was committed, and the
    compatibility quirks the procedure relied on (see :class:`ProcessorConfig`)."""

    report: Report
    error: VeriteeError | None
    staging: StagingArea
    committed: bool
    verified: VerifiedManifest | None
    quirks: tuple[Quirk, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_failure(self) -> None:
        if self.error is not None:
            raise self.error


def _failure(code: ResultCode, reason: ReportReason, section: int, offset: int = 0) -> ReportFailure:
    return ReportFailure(int(code), Record((), section, offset, 0), reason)


def _verification_failure(error: VeriteeError) -> ReportFailure:
    manifest = 0  # section 0: the envelope itself (authentication), before any manifest member
    if isinstance(error, DigestMismatchError):
        return _failure(ResultCode.DIGEST_MISMATCH, ReportReason.UNAUTHORISED, manifest)
    if isinstance(error, UntrustedSignerError):
        return _failure(ResultCode.UNTRUSTED_SIGNER, ReportReason.UNAUTHORISED, manifest)
    if isinstance(error, SignatureError | VerificationError):
        return _failure(ResultCode.SIGNATURE_INVALID, ReportReason.UNAUTHORISED, manifest)
    if isinstance(error, UnsupportedAlgorithmError):
        return _failure(ResultCode.ALGORITHM_UNSUPPORTED, ReportReason.ALG_UNSUPPORTED, manifest)
    return _failure(ResultCode.MALFORMED, ReportReason.CBOR_PARSE, manifest)


def _rollback(procedure: Procedure, seq: int, installed: InstalledManifest | None) -> FreshnessError | None:
    if installed is None or procedure is Procedure.UNINSTALL:
        return None
    if procedure is Procedure.UPDATE and seq <= installed.sequence_number:
        # manifest-37 only requires rejecting a LOWER number; refusing an equal one is veritee's policy (an Update
        # must advance the sequence number; see docs/suit-decisions.md, "Anti-rollback")
        return FreshnessError(f"manifest sequence number {seq} is not above the installed {installed.sequence_number}")
    if procedure is Procedure.INVOKE and seq < installed.sequence_number:
        return FreshnessError(f"manifest sequence number {seq} is below the installed {installed.sequence_number}")
    return None


def process(
    envelope: Envelope | bytes,
    procedure: Procedure,
    *,
    config: ProcessorConfig,
    store: ComponentStore,
    fetcher: Fetcher | None = None,
) -> ProcessResult:
    """Authenticate ``envelope`` and run ``procedure``. Malformed envelope *bytes* raise DecodeError/ValidationError
    (there is no manifest digest to report against); everything after decoding is reported in the result."""
    if not isinstance(envelope, Envelope):
        envelope = decode_envelope(envelope)
    staging = StagingArea(store)
    manifest = envelope.manifest

    def report(failure: ReportFailure | None, records: Sequence[Record] = ()) -> Report:
        return Report(envelope.digest, manifest.reference_uri, config.nonce, tuple(records), failure)

    def failed(
        error: VeriteeError,
        failure: ReportFailure,
        verified: VerifiedManifest | None = None,
        records: Sequence[Record] = (),
        committed: bool = False,
    ) -> ProcessResult:
        return ProcessResult(report(failure, records), error, staging, committed, verified)

    try:
        verified = envelope.verify(config.trust_anchors)
    except (VerificationError, UnsupportedAlgorithmError, DecodeError, ValidationError) as exc:
        return failed(exc, _verification_failure(exc))
    manifest_id = manifest.component_id if manifest.component_id is not None else config.default_manifest_id
    rollback = _rollback(procedure, manifest.sequence_number, store.installed_manifest(manifest_id))
    if rollback is not None:
        return failed(rollback, _failure(ResultCode.ROLLBACK, ReportReason.UNAUTHORISED, ManifestKey.SEQUENCE_NUMBER))
    if manifest.common.slot_count > config.max_components:
        error = SuitError(f"{manifest.common.slot_count} components exceed this device's {config.max_components}")
        return failed(
            error,
            _failure(ResultCode.COMPONENT_UNSUPPORTED, ReportReason.COMPONENT_UNSUPPORTED, ManifestKey.COMMON),
            verified,
        )
    interpreter = Interpreter(
        trust_anchors=config.trust_anchors,
        identity=config.identity,
        staging=staging,
        fetcher=fetcher,
        decryption_keys=config.decryption_keys,
        record_manifests=procedure is Procedure.UPDATE,
        max_depth=config.max_dependency_depth,
        max_payload=config.max_payload_size,
        uninstalling=procedure is Procedure.UNINSTALL,
        compat_implicit_dependency_integrity=config.compat_implicit_dependency_integrity,
    )
    frame = Frame(verified, manifest_id=manifest_id)
    own = manifest.component_id
    # Uninstalling a root that other manifests still reference only drops the root's own reference.
    still_needed = procedure is Procedure.UNINSTALL and own is not None and bool(staging.drop_reference(own, own))
    try:
        for section in () if still_needed else PROCEDURE_SECTIONS[procedure]:
            interpreter.run_section(frame, section)
    except SuitAbort as abort:
        failure = ReportFailure(int(abort.code), abort.record, abort.reason)
        return replace(failed(abort, failure, verified, interpreter.records), quirks=tuple(interpreter.deps.quirks))
    quirks = tuple(interpreter.deps.quirks)
    if procedure is Procedure.UPDATE:
        staging.record_manifest(manifest_id, InstalledManifest(manifest.sequence_number, verified.digest))
        forget_stale_references(staging, manifest_id, store.read(own) if own is not None else None, manifest.common)
        if own is not None:
            staging.write(own, envelope.raw)
            staging.add_reference(own, own)
    elif procedure is Procedure.UNINSTALL and not still_needed:
        interpreter.deps.forget_held(frame)
        if own is not None:
            staging.unlink(own)
    try:
        store.commit(staging)
    except VeriteeError as exc:
        failure = _failure(ResultCode.COMMIT_FAILED, ReportReason.OPERATION_FAILED, 0)
        return replace(failed(exc, failure, verified, interpreter.records), quirks=quirks)
    for invocation in staging.invocations:
        try:
            store.invoke(invocation.component_id, invocation.arguments)
        except VeriteeError as exc:
            failure = _failure(ResultCode.INVOKE_FAILED, ReportReason.OPERATION_FAILED, ManifestKey.INVOKE)
            return replace(failed(exc, failure, verified, interpreter.records, committed=True), quirks=quirks)
    return ProcessResult(report(None, interpreter.records), None, staging, True, verified, quirks)

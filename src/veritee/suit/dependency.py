"""Dependency commands of the interpreter (trust-domains-12 §5.4-5.6): dependency-integrity, process-dependency,
unlink, and the reference counting of dependency manifests.

* suit-condition-dependency-integrity authenticates the dependency envelope, binds it to the dependent's
  image-digest and marks the component as checked *for the current manifest context*; a fetch, copy, write, swap or
  unlink of the component removes the mark ("MUST eliminate this cache if any Fetch, or Copy operation targets the
  Dependency Manifest's Component ID").
* suit-directive-process-dependency aborts when the current component was not the target of a dependency-integrity
  check, unless ``compat_implicit_dependency_integrity`` is set (the dependency is then authenticated implicitly and
  :attr:`Quirk.IMPLICIT_DEPENDENCY_INTEGRITY` is reported). With component index True it applies to the dependencies
  only (the interpreter skips the other components).
* Reference counting: in a successful update each dependent holds a reference to every dependency it processed.
  In the uninstall procedure, process-dependency and unlink drop the dependent's reference; only when no manifest
  references the dependency any more is its uninstall sequence run and its envelope deleted. Fetch, copy, write and
  swap abort on a component that a manifest other than the ones being processed references, unless the content does
  not change.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from veritee.errors import (
    DecodeError,
    DigestMismatchError,
    UnsupportedAlgorithmError,
    ValidationError,
    VerificationError,
    VeriteeError,
)
from veritee.suit.envelope import VerifiedManifest, decode_envelope
from veritee.suit.frame import Ctx, Frame, abort, fail
from veritee.suit.labels import ManifestKey, Parameter, ReportReason
from veritee.suit.manifest import Common
from veritee.suit.model import CommandEntry, ComponentId, SuitDigest, component_id_text
from veritee.suit.results import Quirk, ResultCode
from veritee.suit.store import InstalledManifest, StagingArea

if TYPE_CHECKING:
    from veritee.suit.interpreter import Interpreter

__all__ = ["DependencyCommands", "dependency_ids", "forget_stale_references", "same_manifest"]


def dependency_ids(common: Common) -> tuple[ComponentId, ...]:
    """The component ids of the dependencies a manifest declares (those it can name)."""
    out: list[ComponentId] = []
    for index in sorted(common.dependencies):
        try:
            out.append(common.component_id(index))
        except ValidationError:
            continue
    return tuple(out)


def _declared(envelope: bytes | None) -> tuple[ComponentId, ...]:
    if envelope is None:
        return ()
    try:
        return dependency_ids(decode_envelope(envelope).manifest.common)
    except VeriteeError:
        return ()


def forget_stale_references(staging: StagingArea, holder: ComponentId, old: bytes | None, new: Common) -> None:
    """A new version of manifest ``holder`` replaces ``old``: drop its references on dependencies it no longer has."""
    kept = set(dependency_ids(new))
    for cid in _declared(old):
        if cid not in kept:
            staging.drop_reference(cid, holder)


def same_manifest(current: bytes | None, new: bytes | None) -> bool:
    """True when writing ``new`` over ``current`` changes nothing: the same bytes, or two envelopes of the same
    manifest (trust-domains: "the Manifest is the one invariant element of the Envelope")."""
    if current is None or new is None:
        return current is new
    if hmac.compare_digest(current, new):
        return True
    try:
        return decode_envelope(current).digest == decode_envelope(new).digest
    except VeriteeError:
        return False


class DependencyCommands:
    """The dependency handlers of one :class:`~veritee.suit.interpreter.Interpreter` (one procedure)."""

    def __init__(self, interpreter: Interpreter, *, compat_implicit_integrity: bool = False) -> None:
        self.vm = interpreter
        self.compat_implicit_integrity = compat_implicit_integrity
        self.quirks: list[Quirk] = []
        self._checked: set[tuple[tuple[int, ...], ComponentId]] = set()
        self._released: set[ComponentId] = set()

    @property
    def staging(self) -> StagingArea:
        return self.vm.staging

    # ---- integrity -------------------------------------------------------------------------------------------
    def invalidate(self, component_id: ComponentId) -> None:
        """The component changed: forget every dependency-integrity result about it."""
        self._checked = {key for key in self._checked if key[1] != component_id}

    def integrity(self, ctx: Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        """suit-condition-dependency-integrity: "If any of these steps fails, the Manifest Process MUST immediately
        Abort" (not a soft-failable condition failure)."""
        if not ctx.frame.common.is_dependency(index):
            raise abort(ctx, entry, index, f"component {index} is not a dependency", ResultCode.DEPENDENCY_FAILED)
        if self.vm.param(ctx, index, Parameter.IMAGE_DIGEST) is None:
            raise abort(
                ctx, entry, index, f"{entry.name}: parameter image-digest is not set", ResultCode.PARAMETER_MISSING
            )
        self.load(ctx, entry, index)
        self._checked.add((ctx.frame.path, ctx.frame.common.component_id(index)))
        return {}

    def manifest_raw(self, ctx: Ctx, entry: CommandEntry, index: int, content: bytes) -> bytes:
        try:
            return decode_envelope(content).manifest_raw
        except (DecodeError, ValidationError, UnsupportedAlgorithmError) as exc:
            raise fail(ctx, entry, index, f"the dependency is not a SUIT envelope: {exc}") from None

    def load(self, ctx: Ctx, entry: CommandEntry, index: int) -> VerifiedManifest:
        """Decode and authenticate the dependency envelope in component ``index`` and bind it to image-digest."""
        cid = ctx.frame.common.component_id(index)
        content = self.staging.read(cid)
        if content is None:
            raise abort(ctx, entry, index, "the dependency manifest is missing", ResultCode.COMPONENT_MISSING)
        try:
            verified = decode_envelope(content).verify(self.vm.trust_anchors)
        except (DecodeError, ValidationError) as exc:
            raise abort(
                ctx, entry, index, f"dependency: {exc}", ResultCode.MALFORMED, ReportReason.CBOR_PARSE
            ) from None
        except UnsupportedAlgorithmError as exc:
            raise abort(
                ctx, entry, index, f"dependency: {exc}", ResultCode.ALGORITHM_UNSUPPORTED, ReportReason.ALG_UNSUPPORTED
            ) from None
        except VerificationError as exc:
            raise abort(
                ctx, entry, index, f"dependency: {exc}", ResultCode.SIGNATURE_INVALID, ReportReason.UNAUTHORISED
            ) from None
        expected = self.vm.param(ctx, index, Parameter.IMAGE_DIGEST)
        if expected is not None:
            assert isinstance(expected, SuitDigest)
            if expected.algorithm != verified.digest.algorithm or not hmac.compare_digest(
                expected.value, verified.digest.value
            ):
                error = DigestMismatchError(f"dependency manifest digest {verified.digest} != expected {expected}")
                raise abort(ctx, entry, index, str(error), ResultCode.DIGEST_MISMATCH, ReportReason.UNAUTHORISED)
        return verified

    # ---- process-dependency ----------------------------------------------------------------------------------
    def process(self, ctx: Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        frame = ctx.frame
        if not frame.common.is_dependency(index):
            raise abort(ctx, entry, index, f"component {index} is not a dependency", ResultCode.DEPENDENCY_FAILED)
        if frame.depth + 1 > self.vm.max_depth:
            raise abort(ctx, entry, index, "dependencies nested too deeply", ResultCode.DEPENDENCY_FAILED)
        manifest_id = frame.common.component_id(index)
        if (frame.path, manifest_id) not in self._checked:
            if not self.compat_implicit_integrity:
                raise abort(
                    ctx,
                    entry,
                    index,
                    f"component {index} has not been the target of a suit-condition-dependency-integrity",
                    ResultCode.DEPENDENCY_FAILED,
                )
            if Quirk.IMPLICIT_DEPENDENCY_INTEGRITY not in self.quirks:
                self.quirks.append(Quirk.IMPLICIT_DEPENDENCY_INTEGRITY)
        if self.vm.uninstalling:
            return self.release(ctx, entry, index)
        verified = self.load(ctx, entry, index)  # always (re)authenticated, whatever was checked before
        installed = self.staging.installed_manifest(manifest_id)
        seq = verified.sequence_number
        if installed is not None and (
            seq < installed.sequence_number
            or (seq == installed.sequence_number and installed.digest != verified.digest)
        ):
            raise abort(
                ctx,
                entry,
                index,
                f"dependency sequence number {seq} rolls back {installed.sequence_number}",
                ResultCode.ROLLBACK,
                ReportReason.UNAUTHORISED,
            )
        child = self._child(frame, index, verified)
        if ctx.section in ManifestKey._value2member_map_ and ctx.section != ManifestKey.COMMON:
            self.vm.run_section(child, ManifestKey(ctx.section))
        if self.vm.record_manifests:
            self.staging.record_manifest(manifest_id, InstalledManifest(seq, verified.digest))
            self.staging.add_reference(manifest_id, frame.manifest_id)
            old = self.staging.store.read(manifest_id)
            forget_stale_references(self.staging, manifest_id, old, verified.manifest.common)
        return {}

    @staticmethod
    def _child(frame: Frame, index: int, verified: VerifiedManifest) -> Frame:
        path = (*frame.path, frame.common.dependency_position(index))
        return Frame(verified, path, frame.depth + 1, frame.common.component_id(index), frame)

    # ---- unlink and reference counting -----------------------------------------------------------------------
    def unlink(self, ctx: Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        """suit-directive-unlink: drop this manifest's reference; delete the component only when no other manifest
        references it (a dependency's uninstall sequence runs first)."""
        if ctx.frame.common.is_dependency(index):
            return self.release(ctx, entry, index)
        cid = ctx.frame.common.component_id(index)
        if not self.staging.drop_reference(cid, ctx.frame.manifest_id):
            self.invalidate(cid)
            self.staging.unlink(cid)
        return {}

    def release(self, ctx: Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        """The dependent no longer needs dependency ``index``: drop its reference; when that was the last one, run
        the dependency's uninstall sequence, drop the dependency's own references and delete its envelope."""
        frame = ctx.frame
        cid = frame.common.component_id(index)
        if cid in self._released:
            return {}
        if self.staging.drop_reference(cid, frame.manifest_id):
            return {}  # still referenced by another manifest: it stays installed
        self._released.add(cid)
        if self.staging.read(cid) is None:
            return {}
        if frame.depth + 1 > self.vm.max_depth:
            raise abort(ctx, entry, index, "dependencies nested too deeply", ResultCode.DEPENDENCY_FAILED)
        child = self._child(frame, index, self.load(ctx, entry, index))
        self.vm.run_section(child, ManifestKey.UNINSTALL)
        self.forget_held(child)
        self.invalidate(cid)
        self.staging.unlink(cid)
        return {}

    def forget_held(self, frame: Frame) -> None:
        """Drop the references ``frame``'s manifest still holds on its dependencies (it is being uninstalled)."""
        for cid in dependency_ids(frame.common):
            self.staging.drop_reference(cid, frame.manifest_id)

    def guard(self, ctx: Ctx, entry: CommandEntry, index: int, cid: ComponentId, new: bytes | None) -> None:
        """Abort a command that would alter ``cid`` while a manifest other than those being processed references
        it: "If the reference count of a component is non-zero, any command that alters that component MUST cause
        an immediate ABORT"."""
        others = self.staging.references(cid) - ctx.frame.chain()
        if others and not same_manifest(self.staging.read(cid), new):
            names = ", ".join(sorted(component_id_text(h) for h in others))
            raise abort(
                ctx,
                entry,
                index,
                f"{entry.name}: component {index} is referenced by {len(others)} other manifest(s) ({names})",
                ResultCode.COMPONENT_IN_USE,
                ReportReason.COMPONENT_UNAUTHORISED,
            )

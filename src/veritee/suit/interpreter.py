"""The SUIT command interpreter (manifest-37 §6.4-6.7 and §8.4.9-8.4.10, trust-domains-12 §5.3-5.6).

Each manifest being executed is a :class:`Frame` (the root, or a dependency reached through Process Dependency).
Parameters are kept per component *identifier* for the whole procedure, so settings made by a dependency persist in
the dependent and Set Parameters in a dependent reaches its dependencies (trust-domains-12 §5.4). Soft Failure and
Strict Order are scoped to the command sequence that sets them. Conditions that fail raise :class:`ConditionFailed`;
every other failure raises :class:`SuitAbort`, which ends the procedure. All side effects go to the staging area.
The dependency commands (integrity, process-dependency, unlink, reference counting) are in
:mod:`veritee.suit.dependency`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from veritee import cbor
from veritee.cose import SUIT_KDF_OTHER, CoseKey, decrypt
from veritee.errors import VeriteeError
from veritee.suit.dependency import DependencyCommands
from veritee.suit.frame import Ctx, Frame, IndexKind, abort, fail, record
from veritee.suit.labels import Command, ManifestKey, Parameter, ReportingPolicy, ReportReason
from veritee.suit.model import CommandEntry, CommandSequence, ComponentId, ParameterValue, SuitDigest
from veritee.suit.model import is_custom_label as _is_custom
from veritee.suit.report import Record
from veritee.suit.results import ConditionFailed, Identity, ResultCode, SuitAbort
from veritee.suit.store import Fetcher, Invocation, StagingArea

__all__ = ["ConditionFailed", "Frame", "Identity", "Interpreter", "ResultCode", "SuitAbort"]

_Ctx = Ctx


_SIDE_EFFECTS = frozenset(
    {
        Command.FETCH,
        Command.COPY,
        Command.WRITE,
        Command.SWAP,
        Command.INVOKE,
        Command.UNLINK,
        Command.PROCESS_DEPENDENCY,
    }
)
_DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024


class Interpreter:
    """Executes command sequences against a staging area."""

    def __init__(
        self,
        *,
        trust_anchors: tuple[CoseKey, ...],
        identity: Identity,
        staging: StagingArea,
        fetcher: Fetcher | None,
        decryption_keys: tuple[CoseKey, ...] = (),
        record_manifests: bool = False,
        max_depth: int = 8,
        max_payload: int = _DEFAULT_MAX_PAYLOAD,
        uninstalling: bool = False,
        compat_implicit_dependency_integrity: bool = False,
    ) -> None:
        self.trust_anchors = trust_anchors
        self.identity = identity
        self.staging = staging
        self.fetcher = fetcher
        self.decryption_keys = decryption_keys
        self.record_manifests = record_manifests
        self.uninstalling = uninstalling
        self.max_depth = max_depth
        self.max_payload = max_payload
        self.params: dict[ComponentId, dict[int, ParameterValue]] = {}
        self.records: list[Record] = []
        self.deps = DependencyCommands(self, compat_implicit_integrity=compat_implicit_dependency_integrity)
        self._handlers: dict[int, Callable[[_Ctx, CommandEntry, int], dict[int, Any]]] = {
            Command.VENDOR_IDENTIFIER: self._cond_identifier,
            Command.CLASS_IDENTIFIER: self._cond_identifier,
            Command.DEVICE_IDENTIFIER: self._cond_identifier,
            Command.IMAGE_MATCH: self._cond_image_match,
            Command.COMPONENT_SLOT: self._cond_slot,
            Command.CHECK_CONTENT: self._cond_check_content,
            Command.DEPENDENCY_INTEGRITY: self.deps.integrity,
            Command.IS_DEPENDENCY: self._cond_is_dependency,
            Command.ABORT: self._cond_abort,
            Command.FETCH: self._dir_fetch,
            Command.COPY: self._dir_copy,
            Command.SWAP: self._dir_swap,
            Command.WRITE: self._dir_write,
            Command.INVOKE: self._dir_invoke,
            Command.UNLINK: self.deps.unlink,
            Command.PROCESS_DEPENDENCY: self.deps.process,
        }

    # ---- sections and sequences ------------------------------------------------------------------------------
    def run_section(self, frame: Frame, section: ManifestKey) -> None:
        """Run the shared sequence, then ``section`` of the frame's manifest (nothing if the section is absent)."""
        sequence = frame.verified.sequences.get(section)
        if sequence is None:
            if section in frame.verified.absent:
                raise SuitAbort(
                    f"{section.name.lower()} was severed and is not in the envelope",
                    code=ResultCode.SEVERED_MEMBER_ABSENT,
                    reason=ReportReason.OPERATION_FAILED,
                    record=Record(frame.path, int(section), 0, 0),
                )
            return
        shared = frame.common.shared_sequence
        if shared is not None:
            self.run_sequence(_Ctx(frame, int(ManifestKey.COMMON), self._default(frame), shared=True), shared)
        self.run_sequence(_Ctx(frame, int(section), self._default(frame)), sequence)

    @staticmethod
    def _default(frame: Frame) -> tuple[int, ...] | None:
        return (0,) if frame.common.slot_count == 1 else None

    def run_sequence(self, ctx: _Ctx, sequence: CommandSequence) -> None:
        for entry in sequence.commands:
            if ctx.index_first and entry.code != Command.SET_COMPONENT_INDEX:
                raise self._abort(
                    ctx,
                    entry,
                    0,
                    "with strict order off, a run-sequence argument must begin with set-component-index",
                    ResultCode.NOT_ALLOWED,
                )
            self._execute(ctx, entry)

    @staticmethod
    def _record(ctx: _Ctx, entry: CommandEntry, index: int, props: Mapping[int, Any] | None = None) -> Record:
        return record(ctx, entry, index, props)

    @staticmethod
    def _abort(
        ctx: _Ctx,
        entry: CommandEntry,
        index: int,
        message: str,
        code: ResultCode,
        reason: ReportReason = ReportReason.OPERATION_FAILED,
        props: Mapping[int, Any] | None = None,
    ) -> SuitAbort:
        return abort(ctx, entry, index, message, code, reason, props)

    @staticmethod
    def _fail(
        ctx: _Ctx, entry: CommandEntry, index: int, message: str, props: Mapping[int, Any] | None = None
    ) -> ConditionFailed:
        return fail(ctx, entry, index, message, props)

    def _selected(self, ctx: _Ctx, entry: CommandEntry) -> tuple[int, ...]:
        if ctx.indices is None:
            raise self._abort(
                ctx,
                entry,
                0,
                "no component index is set (the manifest has several components)",
                ResultCode.COMPONENT_UNSUPPORTED,
                ReportReason.COMPONENT_UNSUPPORTED,
            )
        return ctx.indices

    def _execute(self, ctx: _Ctx, entry: CommandEntry) -> None:
        code = entry.code
        if code == Command.SET_COMPONENT_INDEX:
            self._set_index(ctx, entry)
        elif code in (Command.OVERRIDE_PARAMETERS, Command.SET_PARAMETERS):
            self._set_parameters(ctx, entry)
        elif code == Command.TRY_EACH:
            for index in self._selected(ctx, entry):
                self._try_each(ctx, entry, index)
        elif code == Command.RUN_SEQUENCE:
            for index in self._selected(ctx, entry):
                self._run_nested(ctx, entry, index)
        elif code in self._handlers:
            if ctx.shared and code in _SIDE_EFFECTS:
                raise self._abort(
                    ctx,
                    entry,
                    0,
                    f"{entry.name} is not allowed in the shared sequence",
                    ResultCode.NOT_ALLOWED,
                    ReportReason.COMMAND_UNSUPPORTED,
                )
            indices = self._selected(ctx, entry)
            if code == Command.PROCESS_DEPENDENCY and ctx.kind is IndexKind.ALL:
                # trust-domains-12: "If the current Component is True, then this Directive applies to all
                # Dependencies" - the other components are skipped, not aborted on.
                indices = tuple(i for i in indices if ctx.frame.common.is_dependency(i))
            for index in indices:
                self._run_command(ctx, entry, index)
        else:
            raise self._abort(
                ctx,
                entry,
                0,
                f"unsupported command {code}",
                ResultCode.COMMAND_UNSUPPORTED,
                ReportReason.COMMAND_UNSUPPORTED,
            )

    def _run_command(self, ctx: _Ctx, entry: CommandEntry, index: int) -> None:
        policy = entry.policy
        try:
            props = self._handlers[entry.code](ctx, entry, index)
        except SuitAbort as failure:
            mine = failure.record.manifest_id == ctx.frame.path and failure.record.offset == entry.offset
            if policy & ReportingPolicy.RECORD_FAILURE and mine and failure.record.section == ctx.section:
                keep = failure.record.properties if policy & ReportingPolicy.SYSINFO_FAILURE else {}
                self.records.append(replace(failure.record, properties=dict(keep)))
            raise
        if policy & ReportingPolicy.RECORD_SUCCESS:
            self.records.append(
                self._record(ctx, entry, index, props if policy & ReportingPolicy.SYSINFO_SUCCESS else {})
            )

    # ---- flow control ----------------------------------------------------------------------------------------
    def _set_index(self, ctx: _Ctx, entry: CommandEntry) -> None:
        count = ctx.frame.common.slot_count
        arg = entry.argument
        indices = tuple(range(count)) if arg is True else ((arg,) if isinstance(arg, int) else tuple(arg))
        kind = IndexKind.ALL if arg is True else (IndexKind.INTEGER if isinstance(arg, int) else IndexKind.LIST)
        for index in indices:
            if index >= count:
                raise self._abort(
                    ctx,
                    entry,
                    index,
                    f"component index {index} is not declared (only {count})",
                    ResultCode.COMPONENT_UNSUPPORTED,
                    ReportReason.COMPONENT_UNSUPPORTED,
                )
        if ctx.index_first:
            ctx.index_first = False  # the one set-component-index a run-sequence argument must begin with
        elif ctx.index_locked:
            raise self._abort(
                ctx,
                entry,
                indices[0],
                "a further set-component-index inside run-sequence invoked with strict order off",
                ResultCode.NOT_ALLOWED,
            )
        ctx.indices, ctx.kind = indices, kind

    def _set_parameters(self, ctx: _Ctx, entry: CommandEntry) -> None:
        override = entry.code == Command.OVERRIDE_PARAMETERS
        args: dict[int, ParameterValue] = dict(entry.argument)
        for label in args:
            if label not in Parameter._value2member_map_ and not _is_custom(label):
                raise self._abort(
                    ctx,
                    entry,
                    0,
                    f"unsupported parameter {label}",
                    ResultCode.PARAMETER_UNSUPPORTED,
                    ReportReason.PARAMETER_UNSUPPORTED,
                )
        if Parameter.SOFT_FAILURE in args:
            if not ctx.nested:
                raise self._abort(
                    ctx,
                    entry,
                    0,
                    "soft-failure may only be set inside try-each or run-sequence",
                    ResultCode.NOT_ALLOWED,
                )
            soft = bool(args.pop(Parameter.SOFT_FAILURE))
            if override or not ctx.soft_failure_set:  # the sequence's default does not count as "already set"
                ctx.soft_failure, ctx.soft_failure_set = soft, True
        if Parameter.STRICT_ORDER in args:
            ctx.strict_order = bool(args.pop(Parameter.STRICT_ORDER))
        if not args:
            return
        for index in self._selected(ctx, entry):
            table = self.params.setdefault(ctx.frame.common.component_id(index), {})
            for label, value in args.items():
                if override or label not in table:
                    table[label] = value

    @staticmethod
    def _nested_ctx(ctx: _Ctx, index: int, *, soft: bool) -> _Ctx:
        return _Ctx(
            ctx.frame, ctx.section, (index,), soft_failure=soft, nested=True, shared=ctx.shared, strict_order=True
        )

    def _try_each(self, ctx: _Ctx, entry: CommandEntry, index: int) -> None:
        last: ConditionFailed | None = None
        for sequence in entry.argument:
            if sequence is None:
                return
            nested = self._nested_ctx(ctx, index, soft=True)
            nested.strict_order = ctx.strict_order
            try:
                self.run_sequence(nested, sequence)
            except ConditionFailed as failure:
                if not nested.soft_failure:
                    raise
                last = failure
                continue
            return
        raise ConditionFailed(
            f"try-each: no sequence succeeded ({last})",
            code=ResultCode.CONDITION_FAILED,
            reason=ReportReason.CONDITION_FAILED,
            record=self._record(ctx, entry, index, last.record.properties if last else {}),
        )

    def _run_nested(self, ctx: _Ctx, entry: CommandEntry, index: int) -> None:
        # manifest-37 §6.7: the processor presets Strict Order = True for the argument. When the enclosing Strict
        # Order is False, an integer index requires the argument to begin with set-component-index, and any further
        # set-component-index aborts (with True or an array the processor presets the index: any one aborts).
        nested = self._nested_ctx(ctx, index, soft=False)
        if not ctx.strict_order:
            nested.index_first = ctx.kind is IndexKind.INTEGER
            nested.index_locked = True
        try:
            self.run_sequence(nested, entry.argument)
        except ConditionFailed:
            if not nested.soft_failure:
                raise

    # ---- parameters ------------------------------------------------------------------------------------------
    def param(self, ctx: _Ctx, index: int, label: Parameter) -> ParameterValue | None:
        """The value of parameter ``label`` for component ``index`` (None when unset)."""
        return self.params.get(ctx.frame.common.component_id(index), {}).get(label)

    def _require(self, ctx: _Ctx, entry: CommandEntry, index: int, label: Parameter) -> ParameterValue:
        value = self.param(ctx, index, label)
        if value is None:
            message = f"parameter {label.name.lower().replace('_', '-')} is not set"
            if entry.command is not None and entry.command.is_condition:
                raise self._fail(ctx, entry, index, message)
            raise self._abort(ctx, entry, index, f"{entry.name}: {message}", ResultCode.PARAMETER_MISSING)
        return value

    # ---- conditions ------------------------------------------------------------------------------------------
    def _cond_identifier(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        label, known = {
            Command.VENDOR_IDENTIFIER: (Parameter.VENDOR_IDENTIFIER, self.identity.vendor_ids),
            Command.CLASS_IDENTIFIER: (Parameter.CLASS_IDENTIFIER, self.identity.class_ids),
            Command.DEVICE_IDENTIFIER: (Parameter.DEVICE_IDENTIFIER, self.identity.device_ids),
        }[Command(entry.code)]
        value = self._require(ctx, entry, index, label)
        wanted = value if isinstance(value, bytes) else cbor.encode(value)
        if any(hmac.compare_digest(wanted, k) for k in known):
            return {int(label): value}
        sole = {int(label): next(iter(known))} if len(known) == 1 else {}
        raise self._fail(ctx, entry, index, f"{label.name.lower()} {wanted.hex()} is not this device's", sole)

    def _cond_image_match(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        expected = self._require(ctx, entry, index, Parameter.IMAGE_DIGEST)
        assert isinstance(expected, SuitDigest)
        content = self.staging.read(ctx.frame.common.component_id(index))
        if content is None:
            raise self._fail(ctx, entry, index, "the component is empty")
        measured = content
        if ctx.frame.common.is_dependency(index):  # trust-domains §5.2: digest of the bstr-wrapped manifest
            measured = cbor.encode(self.deps.manifest_raw(ctx, entry, index, content))
        actual = expected.of(measured)
        props = {int(Parameter.IMAGE_DIGEST): actual.encode(), int(Parameter.IMAGE_SIZE): len(content)}
        if not hmac.compare_digest(actual.value, expected.value):
            raise self._fail(ctx, entry, index, f"digest {actual} != expected {expected}", props)
        return props

    def _cond_slot(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        wanted = self._require(ctx, entry, index, Parameter.COMPONENT_SLOT)
        actual = self.staging.store.slot(ctx.frame.common.component_id(index))
        props = {int(Parameter.COMPONENT_SLOT): actual} if actual is not None else {}
        if actual != wanted:
            raise self._fail(ctx, entry, index, f"component is in slot {actual}, not {wanted!r}", props)
        return props

    def _cond_check_content(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        wanted = self._require(ctx, entry, index, Parameter.CONTENT)
        assert isinstance(wanted, bytes)
        content = self.staging.read(ctx.frame.common.component_id(index))
        if content is None or not hmac.compare_digest(content, wanted):
            raise self._fail(ctx, entry, index, "component content differs")
        return {}

    def _cond_is_dependency(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        if not ctx.frame.common.is_dependency(index):
            raise self._fail(ctx, entry, index, f"component {index} is not a dependency")
        return {}

    def _cond_abort(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        raise self._fail(ctx, entry, index, "abort")

    # ---- directives ------------------------------------------------------------------------------------------
    def _store(self, ctx: _Ctx, entry: CommandEntry, index: int, data: bytes) -> None:
        cid = ctx.frame.common.component_id(index)
        self.deps.guard(ctx, entry, index, cid, data)
        self.deps.invalidate(cid)
        self.staging.write(cid, data)

    def _decrypt_if_needed(self, ctx: _Ctx, entry: CommandEntry, index: int, data: bytes) -> bytes:
        info = self.param(ctx, index, Parameter.ENCRYPTION_INFO)
        if info is None:
            return data
        assert isinstance(info, bytes)
        if not self.decryption_keys:
            raise self._abort(
                ctx, entry, index, "encrypted payload but no decryption key", ResultCode.DECRYPTION_FAILED
            )
        try:
            return decrypt(info, list(self.decryption_keys), detached_ciphertext=data, kdf_other=SUIT_KDF_OTHER)
        except VeriteeError as exc:
            raise self._abort(ctx, entry, index, f"cannot decrypt: {exc}", ResultCode.DECRYPTION_FAILED) from None

    def _fetch_bytes(self, ctx: _Ctx, entry: CommandEntry, index: int, uri: str) -> bytes:
        integrated = ctx.frame.verified.envelope.integrated
        if uri in integrated:
            return integrated[uri]
        if self.fetcher is None:
            raise self._abort(ctx, entry, index, f"no fetcher for {uri}", ResultCode.FETCH_FAILED)
        try:
            data = self.fetcher.fetch(uri)
        except VeriteeError as exc:
            raise self._abort(ctx, entry, index, f"fetch {uri}: {exc}", ResultCode.FETCH_FAILED) from None
        if not isinstance(data, bytes | bytearray) or len(data) > self.max_payload:
            raise self._abort(
                ctx, entry, index, f"fetch {uri}: no payload or over {self.max_payload} bytes", ResultCode.FETCH_FAILED
            )
        return bytes(data)

    def _dir_fetch(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        uri = self._require(ctx, entry, index, Parameter.URI)
        assert isinstance(uri, str)
        data = self._fetch_bytes(ctx, entry, index, uri)
        self._store(ctx, entry, index, data)
        return {int(Parameter.IMAGE_SIZE): len(data)}

    def _source(self, ctx: _Ctx, entry: CommandEntry, index: int) -> tuple[ComponentId, bytes | None]:
        source = self._require(ctx, entry, index, Parameter.SOURCE_COMPONENT)
        assert isinstance(source, int)
        if source >= ctx.frame.common.slot_count or source == index:
            raise self._abort(
                ctx,
                entry,
                index,
                f"invalid source component {source}",
                ResultCode.COMPONENT_UNSUPPORTED,
                ReportReason.COMPONENT_UNSUPPORTED,
            )
        cid = ctx.frame.common.component_id(source)
        return cid, self.staging.read(cid)

    def _dir_copy(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        _, data = self._source(ctx, entry, index)
        if data is None:
            raise self._abort(ctx, entry, index, "the source component is empty", ResultCode.COMPONENT_MISSING)
        data = self._decrypt_if_needed(ctx, entry, index, data)
        self._store(ctx, entry, index, data)
        return {int(Parameter.IMAGE_SIZE): len(data)}

    def _dir_swap(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        source_id, data = self._source(ctx, entry, index)
        if data is None:
            raise self._abort(ctx, entry, index, "the source component is empty", ResultCode.COMPONENT_MISSING)
        previous = self.staging.read(ctx.frame.common.component_id(index))
        self.deps.guard(ctx, entry, index, source_id, previous)
        self._store(ctx, entry, index, data)
        self.deps.invalidate(source_id)
        if previous is None:
            self.staging.unlink(source_id)
        else:
            self.staging.write(source_id, previous)
        return {int(Parameter.IMAGE_SIZE): len(data)}

    def _dir_write(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        content = self._require(ctx, entry, index, Parameter.CONTENT)
        assert isinstance(content, bytes)
        data = self._decrypt_if_needed(ctx, entry, index, content)
        self._store(ctx, entry, index, data)
        return {int(Parameter.IMAGE_SIZE): len(data)}

    def _dir_invoke(self, ctx: _Ctx, entry: CommandEntry, index: int) -> dict[int, Any]:
        cid = ctx.frame.common.component_id(index)
        if self.staging.read(cid) is None:
            raise self._abort(ctx, entry, index, "cannot invoke an empty component", ResultCode.COMPONENT_MISSING)
        args = self.param(ctx, index, Parameter.INVOKE_ARGS)
        self.staging.invocations.append(Invocation(cid, args if isinstance(args, bytes) else None))
        return {}

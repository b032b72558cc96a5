"""SUIT_Report (draft-ietf-suit-report-18): build, encode, decode.

    SUIT_Report = {99: [? uri, SUIT_Digest], ? 2: nonce, 3: [* SUIT_Record / system-property-claims],
                   4: true / {5: code, 6: SUIT_Record, 7: reason}, ? 8: capability report}
    SUIT_Record = [manifest-id [* uint], section int, offset uint, component-index uint, properties {* parameters}]

:func:`decode_report` also reads the older form that draft-ietf-teep-protocol Appendix F still shows
(``{1: bstr .cbor digest, 2: uri, 4: [* {1 manifest-id, 2 section, 3 offset, 4 component / 5 dependency index,
6 failure-reason}]}``): it has no result member, so success means "no records" and a failure is derived from the last
record (``legacy=True`` marks such reports; see docs/suit-decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from veritee import cbor
from veritee.errors import ValidationError
from veritee.suit.labels import ReportKey, ReportReason
from veritee.suit.model import (
    ComponentId,
    SuitDigest,
    component_id_from_cbor,
    is_array,
    is_map,
    is_uint,
)

__all__ = ["Record", "Report", "ReportFailure", "SystemProperties", "decode_report", "encode_report"]

_LEGACY_DIGEST, _LEGACY_URI, _LEGACY_RECORDS = 1, 2, 4
_LEGACY_REC = {"manifest_id": 1, "section": 2, "offset": 3, "component": 4, "dependency": 5, "reason": 6}


@dataclass(frozen=True, slots=True)
class Record:
    """Where a command ran (manifest path through dependencies, section key, byte offset, component index) and the
    properties measured for it (SUIT parameters, e.g. the actual image digest)."""

    manifest_id: tuple[int, ...]
    section: int
    offset: int
    component_index: int
    properties: Mapping[int, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_cbor(self) -> list[Any]:
        return [list(self.manifest_id), self.section, self.offset, self.component_index, dict(self.properties)]


@dataclass(frozen=True, slots=True)
class SystemProperties:
    """system-property-claims = {0: component id, + parameters}."""

    component_id: ComponentId
    properties: Mapping[int, Any]

    def to_cbor(self) -> dict[int, Any]:
        return {0: list(self.component_id), **self.properties}


@dataclass(frozen=True, slots=True)
class ReportFailure:
    code: int
    record: Record
    reason: ReportReason


ReportEntry: TypeAlias = Record | SystemProperties


@dataclass(frozen=True, slots=True)
class Report:
    """A SUIT_Report. ``failure`` is None when the result is ``true``."""

    digest: SuitDigest
    uri: str | None = None
    nonce: bytes | None = None
    records: tuple[ReportEntry, ...] = ()
    failure: ReportFailure | None = None
    capabilities: Mapping[Any, Any] | None = None
    legacy: bool = False

    @property
    def success(self) -> bool:
        return self.failure is None

    def to_cbor(self) -> dict[int, Any]:
        reference: list[Any] = ([self.uri] if self.uri is not None else []) + [self.digest.to_cbor()]
        out: dict[int, Any] = {ReportKey.REFERENCE.value: reference}
        if self.nonce is not None:
            out[ReportKey.NONCE.value] = self.nonce
        out[ReportKey.RECORDS.value] = [r.to_cbor() for r in self.records]
        if self.failure is None:
            out[ReportKey.RESULT.value] = True
        else:
            out[ReportKey.RESULT.value] = {
                ReportKey.RESULT_CODE.value: self.failure.code,
                ReportKey.RESULT_RECORD.value: self.failure.record.to_cbor(),
                ReportKey.RESULT_REASON.value: int(self.failure.reason),
            }
        if self.capabilities is not None:
            out[ReportKey.CAPABILITY_REPORT.value] = dict(self.capabilities)
        return out


def encode_report(report: Report) -> bytes:
    """Encode in the report-18 form (legacy reports are re-encoded in the current form)."""
    return cbor.encode(report.to_cbor())


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"{what} must be an integer")
    return value


def _uint(value: object, what: str) -> int:
    if not is_uint(value):
        raise ValidationError(f"{what} must be an unsigned integer")
    return value


def _manifest_id(value: object) -> tuple[int, ...]:
    if not is_array(value):
        raise ValidationError("suit-record-manifest-id must be an array of unsigned integers")
    return tuple(_uint(v, "a manifest-id step") for v in value)


def _properties(value: object) -> Mapping[int, Any]:
    if not is_map(value) or not all(isinstance(k, int) and not isinstance(k, bool) for k in value):
        raise ValidationError("record properties must be a map of integer parameter labels")
    return MappingProxyType(dict(value))


def _record(value: object) -> Record:
    if not is_array(value) or len(value) < 5:
        raise ValidationError("a SUIT_Record must be an array of at least 5 items")
    mid, section, offset, index, props = list(value)[:5]
    return Record(
        _manifest_id(mid),
        _int(section, "suit-record-manifest-section"),
        _uint(offset, "suit-record-section-offset"),
        _uint(index, "suit-record-component-index"),
        _properties(props),
    )


def _entry(value: object) -> ReportEntry:
    if is_map(value):
        if 0 not in value:
            raise ValidationError("system-property-claims need a component id (label 0)")
        props = {k: v for k, v in value.items() if k != 0}
        return SystemProperties(component_id_from_cbor(value[0]), _properties(props))
    return _record(value)


def _decode_current(value: Mapping[Any, Any]) -> Report:
    for required in (ReportKey.REFERENCE, ReportKey.RECORDS, ReportKey.RESULT):
        if required not in value:
            raise ValidationError(f"SUIT_Report lacks {required.name.lower()} ({int(required)})")
    reference = value[ReportKey.REFERENCE]
    if not is_array(reference) or len(reference) not in (1, 2):
        raise ValidationError("suit-reference must be [? uri, SUIT_Digest]")
    uri = None
    if len(reference) == 2:
        if not isinstance(reference[0], str):
            raise ValidationError("suit-report-manifest-uri must be text")
        uri = reference[0]
    digest = SuitDigest.from_cbor(reference[-1])
    nonce = value.get(ReportKey.NONCE)
    if nonce is not None and not isinstance(nonce, bytes):
        raise ValidationError("suit-report-nonce must be a byte string")
    records = value[ReportKey.RECORDS]
    if not is_array(records):
        raise ValidationError("suit-report-records must be an array")
    result = value[ReportKey.RESULT]
    failure = None
    if result is not True:
        if not is_map(result):
            raise ValidationError("suit-report-result must be true or a map")
        for key in (ReportKey.RESULT_CODE, ReportKey.RESULT_RECORD, ReportKey.RESULT_REASON):
            if key not in result:
                raise ValidationError(f"suit-report-result lacks {key.name.lower()} ({int(key)})")
        try:
            reason = ReportReason(_int(result[ReportKey.RESULT_REASON], "suit-report-result-reason"))
        except ValueError:
            raise ValidationError(f"unknown suit-report-result-reason {result[ReportKey.RESULT_REASON]}") from None
        failure = ReportFailure(
            _int(result[ReportKey.RESULT_CODE], "suit-report-result-code"),
            _record(result[ReportKey.RESULT_RECORD]),
            reason,
        )
    capabilities = value.get(ReportKey.CAPABILITY_REPORT)
    if capabilities is not None and not is_map(capabilities):
        raise ValidationError("suit-report-capability-report must be a map")
    return Report(
        digest=digest,
        uri=uri,
        nonce=nonce,
        records=tuple(_entry(r) for r in records),
        failure=failure,
        capabilities=MappingProxyType(dict(capabilities)) if capabilities is not None else None,
    )


def _legacy_record(value: object) -> tuple[Record, int | None]:
    if not is_map(value):
        raise ValidationError("a legacy SUIT record must be a map")
    rec: Mapping[Any, Any] = value
    unknown = set(rec) - set(_LEGACY_REC.values())
    if unknown:
        raise ValidationError(f"unknown legacy SUIT record keys {sorted(unknown, key=repr)}")
    index = rec.get(_LEGACY_REC["component"], rec.get(_LEGACY_REC["dependency"], 0))
    reason = rec.get(_LEGACY_REC["reason"])
    properties: Mapping[int, Any] = MappingProxyType({})
    code: int | None = None
    if is_map(reason):
        properties = _properties(reason)
    elif reason is not None:
        code = _int(reason, "suit-record-failure-reason")
    record = Record(
        _manifest_id(rec.get(_LEGACY_REC["manifest_id"], [])),
        _int(rec.get(_LEGACY_REC["section"], 0), "suit-record-manifest-section"),
        _uint(rec.get(_LEGACY_REC["offset"], 0), "suit-record-section-offset"),
        _uint(index, "suit-record-component-index"),
        properties,
    )
    return record, code


def _decode_legacy(value: Mapping[Any, Any]) -> Report:
    unknown = set(value) - {_LEGACY_DIGEST, _LEGACY_URI, _LEGACY_RECORDS}
    if unknown:
        raise ValidationError(f"unknown keys {sorted(unknown, key=repr)} in a legacy SUIT report")
    digest_raw = value.get(_LEGACY_DIGEST)
    if not isinstance(digest_raw, bytes):
        raise ValidationError("a legacy SUIT report needs a bstr-wrapped manifest digest (key 1)")
    uri = value.get(_LEGACY_URI)
    if uri is not None and not isinstance(uri, str):
        raise ValidationError("legacy suit-report-manifest-uri must be text")
    raw_records = value.get(_LEGACY_RECORDS, [])
    if not is_array(raw_records):
        raise ValidationError("legacy suit-report-records must be an array")
    parsed = [_legacy_record(r) for r in raw_records]
    failure = None
    if parsed:
        record, code = parsed[-1]
        reason = ReportReason.OPERATION_FAILED if code is not None else ReportReason.CONDITION_FAILED
        failure = ReportFailure(code if code is not None else 0, record, reason)
    return Report(
        digest=SuitDigest.decode(digest_raw),
        uri=uri,
        records=tuple(r for r, _ in parsed),
        failure=failure,
        legacy=True,
    )


def decode_report(data: bytes) -> Report:
    """Decode a SUIT_Report (report-18, or the legacy teep-protocol Appendix F form)."""
    value = cbor.decode(data)
    if not is_map(value):
        raise ValidationError("a SUIT_Report must be a map")
    if ReportKey.REFERENCE in value:
        return _decode_current(value)
    if _LEGACY_DIGEST in value:
        return _decode_legacy(value)
    raise ValidationError("neither a report-18 SUIT_Report (key 99) nor a legacy one (key 1)")

"""Outcomes of SUIT processing: result codes, the abort/condition-failure exceptions, the device identity."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from veritee.errors import SuitError
from veritee.suit.labels import ReportReason
from veritee.suit.report import Record

__all__ = ["ConditionFailed", "Identity", "Quirk", "ResultCode", "SuitAbort"]


class ResultCode(IntEnum):
    """veritee's suit-report-result-code values (report-18 leaves this code implementation-defined)."""

    OK = 0
    MALFORMED = 1
    SIGNATURE_INVALID = 2
    UNTRUSTED_SIGNER = 3
    DIGEST_MISMATCH = 4
    ROLLBACK = 5
    CONDITION_FAILED = 6
    COMMAND_UNSUPPORTED = 7
    PARAMETER_UNSUPPORTED = 8
    PARAMETER_MISSING = 9
    COMPONENT_UNSUPPORTED = 10
    FETCH_FAILED = 11
    DECRYPTION_FAILED = 12
    COMPONENT_MISSING = 13
    DEPENDENCY_FAILED = 14
    SEVERED_MEMBER_ABSENT = 15
    NOT_ALLOWED = 16
    COMMIT_FAILED = 17
    INVOKE_FAILED = 18
    ALGORITHM_UNSUPPORTED = 19
    COMPONENT_IN_USE = 20


class Quirk(Enum):
    """A deviation from the drafts that a processor-config compatibility flag allowed during a procedure."""

    IMPLICIT_DEPENDENCY_INTEGRITY = "implicit-dependency-integrity"
    """process-dependency ran on a dependency that no suit-condition-dependency-integrity had checked
    (``ProcessorConfig.compat_implicit_dependency_integrity``); the dependency was authenticated implicitly."""


class SuitAbort(SuitError):
    """The procedure ends: ``record`` names the command, ``reason``/``code`` say why."""

    def __init__(self, message: str, *, code: ResultCode, reason: ReportReason, record: Record) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.record = record


class ConditionFailed(SuitAbort):
    """A condition failed; Try Each / Run Sequence may absorb it when Soft Failure is set."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The identifiers this device matches (manifest-37 §8.4.8.2-8.4.8.5). A CBOR PEN vendor id is matched by its
    encoding (``cbor.encode(CBORTag(112, oid))``)."""

    vendor_ids: frozenset[bytes] = frozenset()
    class_ids: frozenset[bytes] = frozenset()
    device_ids: frozenset[bytes] = frozenset()

"""Events the TAM and Agent state machines hand to their callers (h11 style: bytes in, events out)."""

from __future__ import annotations

from dataclasses import dataclass

from veritee.suit.report import Report
from veritee.teep.codes import CipherSuite, DataItem, ErrorCode
from veritee.teep.fields import ComponentId, RequestedTc, SystemPropertyClaims

__all__ = [
    "AgentAuthenticated",
    "AttestationResultReceived",
    "CompatQuirks",
    "DeviceStateReported",
    "ErrorReceived",
    "ErrorSent",
    "Event",
    "EvidenceReceived",
    "QueryAnswered",
    "SuccessReceived",
    "TamAttestationRequired",
    "TamErrorReported",
    "TokenExpired",
    "UpdateApplied",
    "UpdateFailed",
]


# --- TAM side -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentAuthenticated:
    """The Agent's signature verified; ``learned`` when its key came from the message (learn on first use)."""

    thumbprint: bytes
    suite: CipherSuite
    learned: bool


@dataclass(frozen=True)
class EvidenceReceived:
    """An attestation payload to appraise (pass it to a Verifier, then call ``attestation_result``)."""

    evidence: bytes
    format: str
    challenge: bytes | None


@dataclass(frozen=True)
class DeviceStateReported:
    tc_list: tuple[SystemPropertyClaims, ...]
    requested: tuple[RequestedTc, ...]
    unneeded: tuple[ComponentId, ...]
    ext_list: tuple[int, ...]


@dataclass(frozen=True)
class SuccessReceived:
    token: bytes | None
    reports: tuple[Report, ...]
    msg: str | None


@dataclass(frozen=True)
class ErrorReceived:
    """The Agent answered with an Error. ``retry_suites`` are the suites a new QueryRequest would offer (empty when
    a retry cannot succeed); ``during`` is the TAM request the error answers. After ERR_ATTESTATION_REQUIRED, start
    again with ``attestation_payload`` = the TAM's evidence over ``challenge``."""

    code: ErrorCode
    msg: str | None
    reports: tuple[Report, ...]
    during: str
    retry_suites: tuple[CipherSuite, ...] = ()
    agent_versions: tuple[int, ...] = ()
    agent_freshness: tuple[int, ...] = ()
    challenge: bytes | None = None  # with ERR_ATTESTATION_REQUIRED: the nonce for the TAM's own evidence


@dataclass(frozen=True)
class TokenExpired:
    token: bytes
    during: str


@dataclass(frozen=True)
class CompatQuirks:
    """Older encodings that were accepted because compat mode is on (for the caller's logs)."""

    quirks: tuple[str, ...]


# --- Agent side ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueryAnswered:
    token: bytes | None
    data_items: DataItem
    suite: CipherSuite
    evidence_included: bool


@dataclass(frozen=True)
class ErrorSent:
    """The Agent answered with an Error message (the reply bytes carry it)."""

    code: ErrorCode
    reason: str


@dataclass(frozen=True)
class TamAttestationRequired:
    """We asked the TAM to attest itself (ERR_ATTESTATION_REQUIRED) with this challenge."""

    challenge: bytes


@dataclass(frozen=True)
class AttestationResultReceived:
    """A TAM passed an attestation payload (Evidence in a QueryRequest, or an Attestation Result in an Update)."""

    payload: bytes
    format: str | None
    sender_message: str


@dataclass(frozen=True)
class TamErrorReported:
    """An Update carried err-code: the TAM could not process our QueryResponse."""

    code: ErrorCode
    msg: str | None


@dataclass(frozen=True)
class UpdateApplied:
    installed: tuple[ComponentId, ...]
    unlinked: tuple[ComponentId, ...]
    reports: tuple[Report, ...]


@dataclass(frozen=True)
class UpdateFailed:
    reason: str
    reports: tuple[Report, ...]


Event = (
    AgentAuthenticated
    | EvidenceReceived
    | DeviceStateReported
    | SuccessReceived
    | ErrorReceived
    | TokenExpired
    | CompatQuirks
    | QueryAnswered
    | ErrorSent
    | TamAttestationRequired
    | AttestationResultReceived
    | TamErrorReported
    | UpdateApplied
    | UpdateFailed
)

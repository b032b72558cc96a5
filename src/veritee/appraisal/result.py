"""What an appraisal takes (:class:`Evidence`, the previous :class:`NodeState`) and returns (:class:`Appraisal`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from veritee.appraisal.boot_stage import BootRecord
from veritee.appraisal.findings import Check, Finding
from veritee.eventlog.summary import BootSummary
from veritee.ima import ImaState
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import TpmsClockInfo

__all__ = ["Appraisal", "Evidence", "NodeState", "PcrBanks"]

PcrBanks = Mapping[HashAlg, Mapping[int, bytes]]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One round of evidence from a node.

    ``ak_public`` is the attestation key's TPM2B_PUBLIC (or bare TPMT_PUBLIC), ``quote`` the TPMS_ATTEST bytes the
    TPM signed, ``signature`` the TPMT_SIGNATURE, ``pcrs`` the PCR values sent with the quote, ``nonce`` the verifier's
    challenge. ``event_log`` is binary_bios_measurements, ``ima_log`` the IMA ASCII list from line
    ``ima_start.next_line`` on (from line 0 when ``ima_start`` is None).
    """

    ak_public: bytes
    quote: bytes
    signature: bytes
    pcrs: PcrBanks
    nonce: bytes
    event_log: bytes | None = None
    ima_log: str | None = None
    ima_start: ImaState | None = None


@dataclass(frozen=True, slots=True)
class NodeState:
    """What the next round needs from this one: the accepted quote's clock (replay/rollback detection), where the
    IMA list stands, and the decoded event log (the same boot's log is checked against each quote but decoded once).
    """

    clock: TpmsClockInfo | None = None
    ima: ImaState | None = None
    boot: BootRecord | None = None


@dataclass(frozen=True, slots=True)
class Appraisal:
    """The outcome of one appraisal. ``passed`` is True when no finding fails (severity ERROR or CRITICAL).

    ``pcrs`` are the PCR values the quote covers; ``ima_state`` is where the next incremental IMA round starts (also
    in ``node_state``, with the clock to pass as ``previous`` next time); ``boot_summary`` is the event log summary
    when there was a log; ``checks`` the steps that ran; ``timings`` milliseconds per step.
    """

    passed: bool
    findings: tuple[Finding, ...]
    pcrs: PcrBanks
    ima_state: ImaState | None
    boot_summary: BootSummary | None
    checks: frozenset[Check]
    node_state: NodeState
    policy_id: str
    timings: Mapping[str, float] = field(default_factory=dict)

    def ids(self) -> list[str]:
        """The ids of the findings, in order (handy in tests and logs)."""
        return [item.id for item in self.findings]

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "policy_id": self.policy_id,
            "findings": [item.to_json() for item in self.findings],
            "checks": sorted(check.value for check in self.checks),
            "pcrs": {
                alg.label: {str(i): value.hex() for i, value in sorted(bank.items())} for alg, bank in self.pcrs.items()
            },
            "ima_next_line": None if self.ima_state is None else self.ima_state.next_line,
            "timings_ms": {name: round(value, 4) for name, value in self.timings.items()},
        }

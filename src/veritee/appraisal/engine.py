"""``appraise``: one round of evidence against a compiled policy, every problem reported as a finding.

Steps: the quote (AK, signature, TPM-generated quote, nonce, PCR digest, clock against the previous round), the
event log replayed against the quoted PCRs and its summary against the boot policy, the IMA list replayed against
the quoted PCR 10 (incrementally from ``evidence.ima_start``) and each entry against the runtime policy. Nothing
stops at the first failure. A part of the evidence that cannot be decoded becomes an ``evidence.malformed`` finding
naming the part; no exception escapes for bad evidence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from veritee.appraisal.boot_stage import BootRecord, appraise_boot, check_expected_pcrs
from veritee.appraisal.findings import Check, Finding, finding
from veritee.appraisal.policy.compiled import CompiledPolicy
from veritee.appraisal.quote_stage import appraise_quote
from veritee.appraisal.result import Appraisal, Evidence, NodeState
from veritee.appraisal.runtime import appraise_ima
from veritee.errors import VeriteeError
from veritee.ima import ImaState
from veritee.tpm.alg import HashAlg

__all__ = ["appraise"]


def _evidence_types(evidence: Evidence, findings: list[Finding]) -> bool:
    """Check the evidence fields' types (callers may build Evidence from untyped data); a wrong type is malformed
    evidence, named by its field."""
    expected: tuple[tuple[str, tuple[type, ...], str], ...] = (
        ("ak_public", (bytes, bytearray), "bytes"),
        ("quote", (bytes, bytearray), "bytes"),
        ("signature", (bytes, bytearray), "bytes"),
        ("nonce", (bytes, bytearray), "bytes"),
        ("event_log", (bytes, bytearray, type(None)), "bytes or None"),
        ("ima_log", (str, type(None)), "text or None"),
        ("ima_start", (ImaState, type(None)), "an ImaState or None"),
    )
    ok = True
    for name, types, wanted in expected:
        value: object = getattr(evidence, name)
        if not isinstance(value, types):
            findings.append(
                finding("evidence.malformed", f"{name} must be {wanted}, not {type(value).__name__}", part=name)
            )
            ok = False
    if not _pcr_banks_ok(evidence.pcrs):
        findings.append(finding("evidence.malformed", "pcrs must map HashAlg -> {index: bytes}", part="pcrs"))
        ok = False
    return ok


def _pcr_banks_ok(pcrs: object) -> bool:
    if not isinstance(pcrs, Mapping):
        return False
    for alg, bank in pcrs.items():
        if not isinstance(alg, HashAlg) or not isinstance(bank, Mapping):
            return False
        for index, value in bank.items():
            if not isinstance(index, int) or isinstance(index, bool) or not isinstance(value, bytes | bytearray):
                return False
    return True


def appraise(evidence: Evidence, policy: CompiledPolicy, *, previous: NodeState | None = None) -> Appraisal:
    """Appraise one round of evidence. ``previous`` is the ``node_state`` of this node's previous appraisal."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    findings: list[Finding] = []
    checks: set[Check] = set()
    previous_boot = previous.boot if previous is not None else None
    if not _evidence_types(evidence, findings):
        return _result(findings, checks, {}, None, None, previous or NodeState(), policy, timings, started)

    mark = time.perf_counter()
    try:
        quote = appraise_quote(evidence, previous.clock if previous is not None else None, findings)
    except VeriteeError as exc:  # a decoder error the quote stage did not foresee: still malformed evidence
        findings.append(finding("evidence.malformed", f"quote: {exc}", part="quote"))
        return _result(findings, checks, {}, None, None, previous or NodeState(), policy, timings, started)
    checks.add(Check.QUOTE)
    timings["quote"] = (time.perf_counter() - mark) * 1000

    boot: BootRecord | None = None
    mark = time.perf_counter()
    if evidence.event_log is not None:
        try:
            boot = appraise_boot(
                bytes(evidence.event_log),
                quote.pcrs,
                policy.boot,
                findings,
                policy_id=policy.policy_id,
                previous=previous_boot,
            )
        except VeriteeError as exc:
            findings.append(finding("evidence.malformed", f"event log: {exc}", part="event_log"))
        if boot is not None:
            checks.add(Check.BOOT_LOG)
            if policy.boot is not None:
                checks.add(Check.BOOT_POLICY)
    elif policy.boot is not None:
        findings.append(finding("evidence.missing", "the boot policy needs the event log", part="event_log"))
    if policy.boot is not None:
        check_expected_pcrs(policy.boot, quote.pcrs, findings)
    timings["boot"] = (time.perf_counter() - mark) * 1000

    ima_state: ImaState | None = evidence.ima_start
    mark = time.perf_counter()
    if evidence.ima_log is not None:
        count = len(findings)
        try:
            ima_state = appraise_ima(evidence.ima_log, evidence.ima_start, quote.pcrs, policy.runtime, findings)
            if ima_state is None:  # unusable list: the next round starts where this one did
                ima_state = evidence.ima_start
        except VeriteeError as exc:
            findings.append(finding("evidence.malformed", f"IMA log: {exc}", part="ima_log"))
            ima_state = evidence.ima_start
        if not any(item.id == "evidence.malformed" for item in findings[count:]):
            checks.add(Check.IMA_LOG)
            if policy.runtime is not None:
                checks.add(Check.RUNTIME_POLICY)
    elif policy.runtime is not None:
        findings.append(finding("evidence.missing", "the runtime policy needs the IMA log", part="ima_log"))
    timings["runtime"] = (time.perf_counter() - mark) * 1000

    clock = quote.clock if quote.trusted else (previous.clock if previous is not None else None)
    state = NodeState(clock=clock, ima=ima_state, boot=boot if boot is not None else previous_boot)
    return _result(findings, checks, quote.pcrs, ima_state, boot, state, policy, timings, started)


def _result(
    findings: list[Finding],
    checks: set[Check],
    pcrs: Mapping[HashAlg, Mapping[int, bytes]],
    ima_state: ImaState | None,
    boot: BootRecord | None,
    state: NodeState,
    policy: CompiledPolicy,
    timings: dict[str, float],
    started: float,
) -> Appraisal:
    timings["total"] = (time.perf_counter() - started) * 1000
    return Appraisal(
        passed=not any(item.fails for item in findings),
        findings=tuple(findings),
        pcrs=pcrs,
        ima_state=ima_state,
        boot_summary=boot.summary if boot is not None else None,
        checks=frozenset(checks),
        node_state=state,
        policy_id=policy.policy_id,
        timings=timings,
    )

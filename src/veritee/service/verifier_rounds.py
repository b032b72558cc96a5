"""One attestation round without the database: the challenge for a node, and its evidence appraised into an outcome.

The round is incremental. A node's snapshot holds what the previous accepted round left: the quote clock (replay
and rollback detection), the IMA position (:class:`ImaState`: only lines from ``next_line`` on are asked for and
appraised), which event log the boot was checked with (asked for again only when the boot changed), and a digest of
the boot PCRs. When the quote shows the TPM was reset since (a reboot), or the boot PCRs changed while no event log
was sent, the incremental state no longer applies: :class:`NodeRebootedError` asks for a full round (offset 0, with
the event log); the quote's signature and nonce are checked first, so only the node's own TPM can ask for that.

Decoded event logs are kept in :class:`BootLogCache` by digest and shared by every node that booted the same way.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from veritee.appraisal import Appraisal, Evidence, Finding, NodeState, appraise
from veritee.appraisal.boot_stage import BootRecord
from veritee.appraisal.ear import VerifierId, attestation_result, sign_jwt
from veritee.appraisal.findings import Check, Component, finding
from veritee.appraisal.jws import PrivateKey
from veritee.appraisal.node_state import NodeState as NodeStatus
from veritee.appraisal.policy import CompiledPolicy
from veritee.appraisal.quote_stage import load_ak
from veritee.errors import VeriteeError
from veritee.ima import ImaState, split_lines
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_codec import boot_pcrs_digest, clock_from_json, ima_state_from_json
from veritee.service.verifier_config import NodeRebootedError
from veritee.store.verifier_models import NodeMode
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import TpmsAttest, TpmsClockInfo
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob
from veritee.tpm.quote import verify_quote_signature
from veritee.tpm.signature import TpmtSignature

__all__ = [
    "BootLogCache",
    "EarSigner",
    "NodeFields",
    "NodeSnapshot",
    "RoundOutcome",
    "appraise_round",
    "challenge_shape",
    "failed_outcome",
    "make_challenge",
    "new_nonce",
    "snapshot_of",
]

NONCE_BYTES = 32


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """What a round needs from the node's row (read once; the commit checks ``round`` is still current)."""

    node_id: str
    mode: NodeMode
    state: NodeStatus
    ak_public: bytes
    agent_url: str | None
    policy_name: str | None
    group_name: str | None
    attributes: Mapping[str, Any]
    round: int
    clock: TpmsClockInfo | None
    ima: ImaState | None
    event_log_digest: str | None
    boot_pcrs_digest: str | None
    want_full: bool


class NodeFields(Protocol):
    """The columns of a node's row a round reads (a :class:`VerifierNode` or a row of those columns)."""

    @property
    def node_id(self) -> str: ...
    @property
    def mode(self) -> NodeMode: ...
    @property
    def state(self) -> NodeStatus: ...
    @property
    def ak_public(self) -> bytes: ...
    @property
    def agent_url(self) -> str | None: ...
    @property
    def policy_name(self) -> str | None: ...
    @property
    def group_name(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def round(self) -> int: ...
    @property
    def clock(self) -> Any: ...
    @property
    def ima_state(self) -> Any: ...
    @property
    def event_log_digest(self) -> str | None: ...
    @property
    def boot_pcrs_digest(self) -> str | None: ...
    @property
    def want_full(self) -> bool: ...


def snapshot_of(node: NodeFields) -> NodeSnapshot:
    return NodeSnapshot(
        node_id=node.node_id,
        mode=NodeMode(node.mode),
        state=NodeStatus(node.state),
        ak_public=node.ak_public,
        agent_url=node.agent_url,
        policy_name=node.policy_name,
        group_name=node.group_name,
        attributes=dict(node.attributes or {}),
        round=node.round,
        clock=clock_from_json(node.clock),
        ima=ima_state_from_json(node.ima_state),
        event_log_digest=node.event_log_digest,
        boot_pcrs_digest=node.boot_pcrs_digest,
        want_full=node.want_full,
    )


def challenge_shape(snapshot: NodeSnapshot) -> tuple[int, bool]:
    """The IMA offset to ask for (where the node stands; 0 for a full round) and whether to ask for the event log."""
    full = snapshot.want_full or snapshot.ima is None
    offset = 0 if full or snapshot.ima is None else snapshot.ima.next_line
    return offset, snapshot.want_full or snapshot.event_log_digest is None


def make_challenge(snapshot: NodeSnapshot, selection: Mapping[str, tuple[int, ...]], nonce: bytes) -> Challenge:
    """Quote these PCRs with this nonce; send IMA lines from where the node stands; the event log if needed."""
    offset, want_event_log = challenge_shape(snapshot)
    return Challenge(
        nonce=nonce,
        pcr_selection={bank: list(pcrs) for bank, pcrs in selection.items()},
        ima_offset=offset,
        want_event_log=want_event_log,
    )


class BootLogCache:
    """Event logs by SHA-256, with their decoded :class:`BootRecord` once appraised (LRU; thread-safe).

    ``loader`` fetches a log this process has not seen (from the database) by digest."""

    def __init__(self, loader: Callable[[str], bytes | None], *, max_entries: int = 256) -> None:
        self._loader = loader
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, BootRecord | None]] = OrderedDict()

    def get(self, digest: str | None) -> tuple[bytes, BootRecord | None] | None:
        if digest is None:
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
                return entry
        content = self._loader(digest)
        if content is None or hashlib.sha256(content).hexdigest() != digest:
            return None
        self.put(digest, content, None)
        return content, None

    def record(self, digest: str) -> BootRecord | None:
        """The decoded log, only if this process already has it (never loads)."""
        with self._lock:
            entry = self._entries.get(digest)
        return None if entry is None else entry[1]

    def put(self, digest: str, content: bytes, record: BootRecord | None) -> None:
        with self._lock:
            current = self._entries.get(digest)
            if current is not None and record is None:
                record = current[1]
            self._entries[digest] = (content, record)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class EarSigner:
    """Signs each appraisal as an EAR JWT with the verifier's key."""

    key: PrivateKey
    verifier_id: VerifierId

    def sign(
        self,
        findings: tuple[Finding, ...],
        checks: frozenset[Check],
        policy_id: str | None,
        nonce: bytes | None,
        submod: str,
    ) -> str:
        usable_nonce = nonce if nonce is not None and 8 <= len(nonce) <= 64 else None
        result = attestation_result(
            findings, checks, verifier_id=self.verifier_id, policy_id=policy_id, nonce=usable_nonce, submod=submod
        )
        return sign_jwt(result, self.key)


@dataclass(frozen=True)
class RoundOutcome:
    """An appraised round, ready to be committed. ``round`` is the snapshot's round (the commit refuses a stale one)."""

    node_id: str
    round: int
    at: datetime
    passed: bool
    findings: tuple[Finding, ...]
    checks: frozenset[Check]
    policy_id: str
    ear: str
    nonce: bytes
    clock: TpmsClockInfo | None
    ima: ImaState | None
    event_log_digest: str | None
    new_event_log: bytes | None
    boot_pcrs_digest: str | None
    ima_start_line: int
    ima_new_text: str | None
    duration_s: float
    timings: Mapping[str, float] = field(default_factory=dict)

    def findings_json(self) -> list[dict[str, Any]]:
        return [item.to_json() for item in self.findings]


def _delta32(current: int, previous: int) -> int:
    d = (current - previous) & 0xFFFFFFFF
    return d - 0x1_0000_0000 if d >= 0x8000_0000 else d


def _genuine(snapshot: NodeSnapshot, evidence: NodeEvidence, nonce: bytes, attest: TpmsAttest) -> bool:
    """The quote is signed by the node's AK over our nonce (so a reboot it shows is real)."""
    try:
        ak = load_ak(snapshot.ak_public)
        verify_quote_signature(ak, evidence.quote, TpmtSignature.unpack(evidence.signature))
    except VeriteeError:
        return False
    return attest.extra_data == nonce


def _check_incremental(
    snapshot: NodeSnapshot, challenge: Challenge, evidence: NodeEvidence, banks: Mapping[HashAlg, Mapping[int, bytes]]
) -> None:
    """Raise NodeRebootedError when the incremental state of this challenge cannot apply to this evidence."""
    incremental = challenge.ima_offset > 0 or not challenge.want_event_log
    if not incremental or snapshot.clock is None:
        return
    try:
        attest = TpmsAttest.unpack(evidence.quote)
    except VeriteeError:
        return  # the appraisal reports it
    rebooted = _delta32(attest.clock_info.reset_count, snapshot.clock.reset_count) > 0
    boot_changed = (
        not challenge.want_event_log
        and evidence.event_log is None
        and bool(banks)
        and snapshot.boot_pcrs_digest is not None
        and boot_pcrs_digest(_selected(banks, challenge)) != snapshot.boot_pcrs_digest
    )
    if (rebooted or boot_changed) and _genuine(snapshot, evidence, challenge.nonce, attest):
        why = "the TPM was reset (rebooted)" if rebooted else "the boot PCRs changed"
        raise NodeRebootedError(f"node {snapshot.node_id}: {why} since the last round: a full round is needed")


def failed_outcome(
    snapshot: NodeSnapshot,
    challenge: Challenge,
    message: str,
    *,
    part: str,
    policy: CompiledPolicy,
    signer: EarSigner,
    now: datetime,
) -> RoundOutcome:
    """A round whose answer could not be appraised at all (not JSON, not evidence): one malformed finding."""
    findings = (finding("evidence.malformed", message, part=part),)
    return RoundOutcome(
        node_id=snapshot.node_id,
        round=snapshot.round,
        at=now,
        passed=False,
        findings=findings,
        checks=frozenset(),
        policy_id=policy.policy_id,
        ear=signer.sign(findings, frozenset(), policy.policy_id, challenge.nonce, snapshot.node_id),
        nonce=challenge.nonce,
        clock=snapshot.clock,
        ima=snapshot.ima,
        event_log_digest=snapshot.event_log_digest,
        new_event_log=None,
        boot_pcrs_digest=snapshot.boot_pcrs_digest,
        ima_start_line=snapshot.ima.next_line if snapshot.ima is not None else 0,
        ima_new_text=None,
        duration_s=0.0,
    )


def appraise_round(
    snapshot: NodeSnapshot,
    challenge: Challenge,
    evidence: NodeEvidence,
    policy: CompiledPolicy,
    *,
    boot_logs: BootLogCache,
    signer: EarSigner,
    now: datetime,
    keep_evidence: bool = True,
) -> RoundOutcome:
    """Appraise the node's answer to ``challenge`` against ``policy``; NodeRebootedError when a full round is due."""
    started = time.perf_counter()
    extra: list[Finding] = []
    banks: Mapping[HashAlg, Mapping[int, bytes]] = {}
    try:
        _, banks = parse_tpm2tools_pcr_blob(evidence.pcrs)
    except VeriteeError as exc:
        extra.append(finding("evidence.malformed", f"PCR values cannot be decoded: {exc}", part="pcrs"))
    _check_incremental(snapshot, challenge, evidence, banks)

    ima_text: str | None = evidence.ima_entries
    if evidence.ima_offset != challenge.ima_offset:
        extra.append(
            finding(
                "evidence.malformed",
                f"IMA entries start at line {evidence.ima_offset}, the challenge asked for {challenge.ima_offset}",
                part="ima",
            )
        )
        ima_text = None
    ima_start = None if challenge.ima_offset == 0 else snapshot.ima
    stored = None if challenge.want_event_log else boot_logs.get(snapshot.event_log_digest)
    if not challenge.want_event_log and evidence.event_log is None and stored is None:
        raise NodeRebootedError(f"node {snapshot.node_id}: the kept event log is gone: a full round is needed")
    event_log = evidence.event_log if evidence.event_log is not None else (stored[0] if stored else None)
    log_digest = hashlib.sha256(event_log).hexdigest() if event_log is not None else None
    if evidence.event_log is not None:
        boot = boot_logs.record(log_digest) if log_digest is not None else None
    else:
        boot = stored[1] if stored else None
    previous = NodeState(clock=snapshot.clock, ima=ima_start, boot=boot)
    appraisal = appraise(
        Evidence(
            ak_public=snapshot.ak_public,
            quote=evidence.quote,
            signature=evidence.signature,
            pcrs=banks,
            nonce=challenge.nonce,
            event_log=event_log,
            ima_log=ima_text,
            ima_start=ima_start,
        ),
        policy,
        previous=previous,
    )
    if Check.QUOTE in appraisal.checks:
        extra.extend(_missing_pcrs(appraisal.pcrs, challenge))
    findings = tuple(extra) + appraisal.findings
    passed = appraisal.passed and not any(item.fails for item in extra)
    return _outcome(
        snapshot,
        challenge,
        evidence,
        appraisal,
        findings,
        passed,
        policy,
        signer,
        now,
        started,
        event_log,
        log_digest,
        boot_logs,
        keep_evidence,
    )


_ALGS = {alg.label: alg for alg in HashAlg}


def _alg(label: str) -> HashAlg:
    return _ALGS.get(label) or HashAlg.from_label(label)


def _selected(banks: Mapping[HashAlg, Mapping[int, bytes]], challenge: Challenge) -> dict[HashAlg, dict[int, bytes]]:
    out: dict[HashAlg, dict[int, bytes]] = {}
    for label, pcrs in challenge.pcr_selection.items():
        alg = _alg(label)
        bank = banks.get(alg, {})
        out[alg] = {i: bytes(bank[i]) for i in pcrs if i in bank}
    return out


def _missing_pcrs(quoted: Mapping[HashAlg, Mapping[int, bytes]], challenge: Challenge) -> list[Finding]:
    """The quote must cover every PCR the challenge asked for."""
    missing = [
        f"{label}:{index}"
        for label, pcrs in challenge.pcr_selection.items()
        for index in pcrs
        if index not in quoted.get(_alg(label), {})
    ]
    if not missing:
        return []
    return [
        finding(
            "quote.pcr_missing", f"the quote does not cover PCR {', '.join(missing)} of the challenge", pcrs=missing
        )
    ]


_INTEGRITY = {
    "event_log": frozenset({"boot.pcr_mismatch", "boot.event_data_mismatch"}),
    "ima_log": frozenset({"ima.pcr_mismatch", "ima.template_hash_mismatch"}),
}


_QUOTE_PARTS = frozenset({"quote", "signature", "ak_public", "pcrs", "nonce"})


def _quote_trusted(appraisal: Appraisal, findings: tuple[Finding, ...]) -> bool:
    """The quote is genuine and fresh: it was checked and nothing about it (or the parts it needs) failed."""
    if Check.QUOTE not in appraisal.checks:
        return False
    return not any(
        item.fails
        and (
            item.component is Component.QUOTE
            or (item.id == "evidence.malformed" and item.detail.get("part") in _QUOTE_PARTS)
        )
        for item in findings
    )


def _bound(appraisal: Appraisal, findings: tuple[Finding, ...], part: str) -> bool:
    """The log ``part`` is what the TPM measured: the quote is genuine and the log replays to it, event by event
    (a policy violation does not matter here: a log that breaks the policy is still the node's true log)."""
    if not _quote_trusted(appraisal, findings):
        return False
    mismatches = _INTEGRITY[part]
    return not any(
        item.id in mismatches or (item.id == "evidence.malformed" and item.detail.get("part") == part)
        for item in findings
    )


def _outcome(
    snapshot: NodeSnapshot,
    challenge: Challenge,
    evidence: NodeEvidence,
    appraisal: Appraisal,
    findings: tuple[Finding, ...],
    passed: bool,
    policy: CompiledPolicy,
    signer: EarSigner,
    now: datetime,
    started: float,
    event_log: bytes | None,
    log_digest: str | None,
    boot_logs: BootLogCache,
    keep_evidence: bool,
) -> RoundOutcome:
    state = appraisal.node_state
    boot_bound = event_log is not None and log_digest is not None and _bound(appraisal, findings, "event_log")
    if boot_bound and log_digest is not None and event_log is not None:
        boot_logs.put(log_digest, event_log, state.boot)
    quote_ok = _quote_trusted(appraisal, findings)
    # A runtime violation is not forgotten: the lines are appraised again next round (until the policy allows
    # them or the node reboots), so the node cannot become trusted again just by running nothing new.
    runtime_failed = any(item.component is Component.RUNTIME and item.fails for item in findings)
    advance = quote_ok and not runtime_failed
    start_ima = None if challenge.ima_offset == 0 else snapshot.ima
    start_line = challenge.ima_offset
    new_text: str | None = None
    if keep_evidence and advance and state.ima is not None and evidence.ima_offset == start_line:
        consumed = state.ima.next_line - start_line
        if consumed > 0 and _bound(appraisal, findings, "ima_log"):
            lines = split_lines(evidence.ima_entries)[:consumed]
            new_text = "".join(line + "\n" for line in lines)
    ear = signer.sign(findings, appraisal.checks, policy.policy_id, challenge.nonce, snapshot.node_id)
    return RoundOutcome(
        node_id=snapshot.node_id,
        round=snapshot.round,
        at=now,
        passed=passed,
        findings=findings,
        checks=appraisal.checks,
        policy_id=policy.policy_id,
        ear=ear,
        nonce=challenge.nonce,
        clock=state.clock,
        ima=state.ima if advance else start_ima,
        event_log_digest=log_digest if boot_bound and keep_evidence else None,
        new_event_log=evidence.event_log if boot_bound and evidence.event_log is not None else None,
        boot_pcrs_digest=boot_pcrs_digest(_selected(appraisal.pcrs, challenge)) if quote_ok else None,
        ima_start_line=start_line,
        ima_new_text=new_text,
        duration_s=time.perf_counter() - started,
        timings=dict(appraisal.timings),
    )

"""The verifier service: one object that wires registrar, policies, rounds, commits, leases, loop and outbox, and
implements the node API (registration, push challenges and evidence, the one-shot verification) for the web layer.

``VerifierService(db, config)`` is passive until :meth:`start_background` starts the attestation loop and the outbox
dispatcher in a thread of their own (the web app does it in its lifespan); tests may instead drive
``service.loop.run_once()`` and ``service.dispatcher.run_once()`` step by step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from veritee.appraisal import Evidence, appraise
from veritee.appraisal.findings import Finding, finding
from veritee.appraisal.node_state import NodeState
from veritee.errors import FreshnessError, NotFoundError, ValidationError, VeriteeError
from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
    b64decode,
    b64encode,
)
from veritee.service.verifier_admin import VerifierAdmin
from veritee.service.verifier_commit import Committer
from veritee.service.verifier_config import EvidenceRefusedError, NodeRebootedError, VerifierConfig
from veritee.service.verifier_leases import LeaseManager
from veritee.service.verifier_loop import AttestationLoop
from veritee.service.verifier_metrics import AttestationResult, VerifierMetrics
from veritee.service.verifier_policies import PolicyCache, parse_boot_policy, parse_runtime_policy
from veritee.service.verifier_registrar import Registrar
from veritee.service.verifier_rounds import (
    BootLogCache,
    EarSigner,
    RoundOutcome,
    appraise_round,
    make_challenge,
    new_nonce,
    snapshot_of,
)
from veritee.service.verifier_webhooks import OutboxDispatcher
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import VerifierNode
from veritee.store.verifier_repo import load_event_log, lock_nodes
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

__all__ = ["VerifierService", "serialized"]

MAX_PENDING_CHALLENGES = 4


class _SerializedDatabase(Database):
    """The same engine and sessions, one transaction at a time in this process: SQLite allows one writer, and a
    transaction that read before another committed cannot write after it (WAL snapshot), so writers queue here."""

    def __init__(self, inner: Database) -> None:  # shares the inner database's engine and session factory
        self.__dict__.update(inner.__dict__)
        self._serial = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._serial, super().transaction() as session:
            yield session


def serialized(db: Database) -> Database:
    """``db`` itself on PostgreSQL; on SQLite a view of it whose transactions run one at a time."""
    if db.dialect == "sqlite" and not isinstance(db, _SerializedDatabase):
        return _SerializedDatabase(db)
    return db


class VerifierService:
    def __init__(
        self,
        db: Database,
        config: VerifierConfig,
        *,
        now: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = serialized(db)
        self.config = config
        self._now = now
        self.ear_key = config.ear_key if config.ear_key is not None else ec.generate_private_key(ec.SECP256R1())
        self.signer = EarSigner(self.ear_key, config.verifier_id)
        self.metrics = VerifierMetrics(self.db)
        self.policies = PolicyCache(self.db, default_policy=config.default_policy)
        self.boot_logs = BootLogCache(self._load_event_log)
        self.registrar = Registrar(self.db, config, now=now)
        self.committer = Committer(self.db, config, self.policies, now=now)
        self.admin = VerifierAdmin(self.db, config, self.committer, now=now)
        self.leases = LeaseManager(self.db, config, now=now)
        self.loop = AttestationLoop(
            config=config,
            leases=self.leases,
            policies=self.policies,
            committer=self.committer,
            boot_logs=self.boot_logs,
            signer=self.signer,
            metrics=self.metrics,
            now=now,
            transport=transport,
        )
        self.dispatcher = OutboxDispatcher(self.db, config, self.metrics, now=now, transport=transport)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None

    def _load_event_log(self, digest: str) -> bytes | None:
        with self.db.transaction() as session:
            return load_event_log(session, digest)

    def ear_public_key_pem(self) -> str:
        return self.ear_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    # --- registration --------------------------------------------------------------------------------------------
    def register(self, request: RegistrationRequest) -> CredentialChallenge:
        return self.registrar.register(request)

    def activate(self, node_id: str, request: ActivationRequest) -> NodeState:
        state = self.registrar.activate(node_id, request)
        self.wake()
        return state

    # --- push mode -----------------------------------------------------------------------------------------------
    def _attestable(self, node: VerifierNode | None, node_id: str) -> VerifierNode:
        if node is None:
            raise NotFoundError(f"no node {node_id!r}")
        if not node.activated:
            raise EvidenceRefusedError(f"node {node_id!r} has not activated its attestation key")
        if node.ak_revoked_at is not None:
            raise EvidenceRefusedError(f"the attestation key of {node_id!r} is revoked: register again")
        return node

    def challenge(self, node_id: str) -> Challenge:
        """A fresh challenge for a node that pushes its evidence (up to four may be outstanding)."""
        now = self._now()
        with self.db.transaction() as session:
            node = self._attestable(lock_nodes(session, [node_id]).get(node_id), node_id)
            challenge = make_challenge(snapshot_of(node), self.config.pcr_selection, new_nonce())
            live = [item for item in node.pending_challenges or [] if str(item.get("expires_at", "")) > now.isoformat()]
            entry = {
                "nonce": b64encode(challenge.nonce),
                "ima_offset": challenge.ima_offset,
                "want_event_log": challenge.want_event_log,
                "expires_at": (now + timedelta(seconds=self.config.challenge_ttl_s)).isoformat(),
            }
            node.pending_challenges = [*live[-(MAX_PENDING_CHALLENGES - 1) :], entry]
        return challenge

    def push_evidence(self, node_id: str, evidence: NodeEvidence) -> dict[str, Any]:
        """Appraise pushed evidence against the pending challenge it answers and commit it, in one transaction that
        holds the node's row (so a challenge answers once, and rounds of one node never interleave)."""
        now = self._now()
        result: tuple[RoundOutcome, NodeState] | VeriteeError
        with self.db.transaction() as session:
            node = self._attestable(lock_nodes(session, [node_id]).get(node_id), node_id)
            result = self._push_round(session, node, evidence, now)
        if isinstance(result, VeriteeError):
            raise result  # after the commit: a spent nonce stays spent, a reboot is remembered
        outcome, state = result
        self.metrics.count(AttestationResult.PASSED if outcome.passed else AttestationResult.FAILED, outcome.duration_s)
        self.wake()
        return {"state": state.value, "passed": outcome.passed, "findings": outcome.findings_json(), "ear": outcome.ear}

    def _push_round(
        self, session: Session, node: VerifierNode, evidence: NodeEvidence, now: datetime
    ) -> tuple[RoundOutcome, NodeState] | VeriteeError:
        wanted = b64encode(evidence.nonce)
        pending_all = list(node.pending_challenges or [])
        pending = next((p for p in pending_all if p.get("nonce") == wanted), None)
        if pending is None:
            return FreshnessError(
                f"the nonce is not a pending challenge of {node.node_id!r} (expired, used or unknown)"
            )
        node.pending_challenges = [p for p in pending_all if p is not pending]  # single use, whatever follows
        if str(pending.get("expires_at", "")) <= now.isoformat():
            return FreshnessError("the challenge expired: ask for a new one")
        snap = snapshot_of(node)
        offset, want_log = int(pending["ima_offset"]), bool(pending["want_event_log"])
        ima_line = snap.ima.next_line if snap.ima is not None else None
        if (offset and (snap.want_full or ima_line != offset)) or (not want_log and snap.event_log_digest is None):
            return FreshnessError("the node's state moved on since this challenge: ask for a new one")
        selection = {bank: list(pcrs) for bank, pcrs in self.config.pcr_selection.items()}
        challenge = Challenge(evidence.nonce, selection, offset, want_log)
        policy = self.policies.for_node(snap.policy_name, snap.group_name)
        try:
            outcome = appraise_round(
                snap,
                challenge,
                evidence,
                policy,
                boot_logs=self.boot_logs,
                signer=self.signer,
                now=now,
                keep_evidence=self.config.keep_evidence,
            )
        except NodeRebootedError as exc:
            node.want_full = True
            node.pending_challenges = []
            node.round += 1
            return exc
        self.committer.apply(session, node, outcome)
        if outcome.new_event_log is not None and outcome.event_log_digest is not None:
            self.committer.store_event_logs(session, {outcome.event_log_digest: outcome.new_event_log}, now)
        return outcome, NodeState(node.state)

    # --- one-shot ------------------------------------------------------------------------------------------------
    def verify_once(self, body: Any) -> dict[str, Any]:
        """``POST /v1/verify``: appraise self-contained evidence against the policies given (or none)."""
        if not isinstance(body, Mapping) or not isinstance(body.get("evidence"), Mapping):
            raise ValidationError("the request must be an object with an 'evidence' object")
        evidence = NodeEvidence.from_json(body["evidence"])
        ak_public = b64decode(body["evidence"].get("ak_public"), "evidence ak_public")
        if evidence.ima_offset != 0:
            raise ValidationError("one-shot evidence carries the IMA list from line 0 (ima.offset 0)")
        boot = parse_boot_policy(body.get("boot_policy"))
        runtime = parse_runtime_policy(body.get("runtime_policy"))
        policy = self.policies.oneshot(boot, runtime)
        extra: list[Finding] = []
        banks: Mapping[Any, Any] = {}
        try:
            _, banks = parse_tpm2tools_pcr_blob(evidence.pcrs)
        except VeriteeError as exc:
            extra.append(finding("evidence.malformed", f"PCR values cannot be decoded: {exc}", part="pcrs"))
        appraisal = appraise(
            Evidence(
                ak_public=ak_public,
                quote=evidence.quote,
                signature=evidence.signature,
                pcrs=banks,
                nonce=evidence.nonce,
                event_log=evidence.event_log,
                ima_log=evidence.ima_entries or None,
            ),
            policy,
        )
        findings = (*extra, *appraisal.findings)
        passed = appraisal.passed and not extra
        ear = self.signer.sign(tuple(findings), appraisal.checks, policy.policy_id, evidence.nonce, "platform")
        self.metrics.count(
            AttestationResult.PASSED if passed else AttestationResult.FAILED, appraisal.timings.get("total", 0.0) / 1000
        )
        return {
            "passed": passed,
            "findings": [item.to_json() for item in findings],
            "ear": ear,
            "policy_id": policy.policy_id,
        }

    # --- background ----------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """Tell the outbox dispatcher there may be something to deliver (from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def start_background(self) -> None:
        """Run the attestation loop and the outbox dispatcher in a thread (idempotent)."""
        if self._thread is not None:
            return
        started = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._wake = asyncio.Event()
            started.set()
            await asyncio.gather(self.loop.run(self._stop), self.dispatcher.run(self._stop, self._wake))

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="verifier-loop", daemon=True)
        self._thread.start()
        started.wait(10)

    def stop_background(self, *, release_leases: bool = True, timeout: float = 30.0) -> None:
        """Stop the loop (rounds in flight finish) and give the leases back for the other replicas."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = self._loop = self._stop = self._wake = None
        if release_leases:
            self.leases.release_all()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

"""The verifier service: one object that wires registrar, policies, rounds, commits, leases, loop and outbox, and
implements the node API (registration, push challenges and evidence, the one-shot verification) for the web layer.

``VerifierService(db, config)`` is passive until :meth:`start_background` starts the attestation loop and the outbox
dispatcher in a thread of their own (the web app does it in its lifespan); tests may instead drive
``service.loop.run_once()`` and ``service.dispatcher.run_once()`` step by step. Push rounds are
:class:`~veritee.service.verifier_push.PushRounds`: stateless challenges, group commits.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from veritee.appraisal import Evidence, appraise
from veritee.appraisal.findings import Finding, finding
from veritee.appraisal.node_state import NodeState
from veritee.errors import ValidationError, VeriteeError
from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
    b64decode,
)
from veritee.service.verifier_admin import VerifierAdmin
from veritee.service.verifier_commit import Committed, Committer
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_db import serialized
from veritee.service.verifier_leases import LeaseManager
from veritee.service.verifier_loop import AttestationLoop
from veritee.service.verifier_metrics import AttestationResult, VerifierMetrics
from veritee.service.verifier_policies import PolicyCache, parse_boot_policy, parse_runtime_policy
from veritee.service.verifier_push import PushRounds
from veritee.service.verifier_registrar import Registrar
from veritee.service.verifier_rounds import BootLogCache, EarSigner, RoundOutcome
from veritee.service.verifier_tokens import ChallengeTokens
from veritee.service.verifier_views import NodeViews
from veritee.service.verifier_webhooks import OutboxDispatcher
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_repo import load_event_log, shared_secret
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

__all__ = ["CHALLENGE_KEY", "VerifierService", "serialized"]

CHALLENGE_KEY = "push-challenge-hmac"
"""The name of the shared secret (``verifier_secrets``) that authenticates push challenges."""


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
        self.views = NodeViews(enabled=self.db.dialect == "sqlite")  # one process holds every node there
        self.committer = Committer(self.db, config, self.policies, now=now, views=self.views)
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
        with self.db.transaction() as session:
            key = shared_secret(session, CHALLENGE_KEY, os.urandom(32), now())
        self.push = PushRounds(
            self.db,
            config,
            tokens=ChallengeTokens(key, config.pcr_selection, config.challenge_ttl_s),
            views=self.views,
            policies=self.policies,
            boot_logs=self.boot_logs,
            signer=self.signer,
            committer=self.committer,
            now=now,
        )
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
        try:
            state = self.registrar.activate(node_id, request)
        finally:
            self.views.drop(node_id)
        self.wake()
        return state

    # --- push mode -----------------------------------------------------------------------------------------------
    def challenge(self, node_id: str) -> Challenge:
        """A fresh challenge for a node that pushes its evidence (valid for ``challenge_ttl_s``, answers once)."""
        return self.push.challenge(node_id)

    async def challenge_async(self, node_id: str) -> Challenge:
        """:meth:`challenge` on the event loop."""
        return await self.push.challenge_async(node_id)

    def push_evidence(self, node_id: str, evidence: NodeEvidence) -> dict[str, Any]:
        """Appraise pushed evidence against the challenge it answers and commit it (the reply is given only once
        the round is committed; a challenge answers once, and rounds of one node never both commit)."""
        return self._verdict(*self.push.push(node_id, evidence))

    async def push_evidence_async(self, node_id: str, evidence: NodeEvidence) -> dict[str, Any]:
        """:meth:`push_evidence` on the event loop (rounds arriving together are committed together)."""
        return self._verdict(*await self.push.push_async(node_id, evidence))

    def _verdict(self, outcome: RoundOutcome, committed: Committed) -> dict[str, Any]:
        self.metrics.count(AttestationResult.PASSED if outcome.passed else AttestationResult.FAILED, outcome.duration_s)
        if committed.values is None:  # events, remediation: the outbox may have work
            self.wake()
        return {
            "state": committed.state.value,
            "passed": outcome.passed,
            "findings": outcome.findings_json(),
            "ear": outcome.ear,
        }

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

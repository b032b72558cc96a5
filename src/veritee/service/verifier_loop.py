"""The continuous attestation loop of one verifier replica (asyncio).

Three tasks share the work: leases are refreshed every tick (never delayed by slow nodes); due nodes this replica
holds are picked every tick — a pull node gets ``POST {agent_url}/v1/quote`` with its challenge (at most
``pull_concurrency`` at once) and its answer is appraised in a worker thread; a push node whose deadline passed is
marked unreachable — and outcomes are committed in batches (up to ``batch_size`` per transaction).

:meth:`AttestationLoop.run_once` does one complete pass and waits for it (tests, tools); :meth:`run` runs the
pipeline until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from veritee.errors import DecodeError, StorageError, TransportError, VeriteeError
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_commit import CommitReport, Committer, Unreachable
from veritee.service.verifier_config import NodeRebootedError, VerifierConfig
from veritee.service.verifier_leases import LeaseManager, LeaseReport
from veritee.service.verifier_metrics import AttestationResult, VerifierMetrics
from veritee.service.verifier_policies import PolicyCache
from veritee.service.verifier_rounds import (
    BootLogCache,
    EarSigner,
    NodeSnapshot,
    RoundOutcome,
    appraise_round,
    failed_outcome,
    make_challenge,
    new_nonce,
    snapshot_of,
)
from veritee.store.base import utcnow
from veritee.store.verifier_models import NodeMode

__all__ = ["AttestationLoop", "TickReport"]


@dataclass
class TickReport:
    """What one pass did (node ids)."""

    attested: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leases: LeaseReport | None = None


class AttestationLoop:
    def __init__(
        self,
        *,
        config: VerifierConfig,
        leases: LeaseManager,
        policies: PolicyCache,
        committer: Committer,
        boot_logs: BootLogCache,
        signer: EarSigner,
        metrics: VerifierMetrics,
        now: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.leases = leases
        self.policies = policies
        self.committer = committer
        self.boot_logs = boot_logs
        self.signer = signer
        self.metrics = metrics
        self._now = now
        self._transport = transport
        self._in_flight: set[str] = set()
        self._pending: list[tuple[RoundOutcome, asyncio.Future[CommitReport]]] = []
        self._commit_wake: asyncio.Event | None = None

    def client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.config.pull_concurrency)
        return httpx.AsyncClient(timeout=self.config.pull_timeout_s, limits=limits, transport=self._transport)

    # --- one round ---------------------------------------------------------------------------------------------
    async def _request(self, client: httpx.AsyncClient, snap: NodeSnapshot, challenge: Challenge) -> object:
        url = f"{(snap.agent_url or '').rstrip('/')}/v1/quote"
        response = await client.post(url, json=challenge.to_json())
        if response.status_code != 200:
            raise _AgentError(f"agent answered HTTP {response.status_code}")
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _BadAnswer(f"agent answer is not JSON: {exc}") from None

    async def _round(self, client: httpx.AsyncClient, snap: NodeSnapshot) -> RoundOutcome | Unreachable:
        policy = await asyncio.to_thread(self.policies.for_node, snap.policy_name, snap.group_name)
        for attempt in range(2):
            challenge = make_challenge(snap, self.config.pcr_selection, new_nonce())
            try:
                answer = await self._request(client, snap, challenge)
                evidence = NodeEvidence.from_json(answer)
            except (httpx.HTTPError, _AgentError) as exc:
                return Unreachable(snap.node_id, snap.round, f"{type(exc).__name__}: {exc}"[:500])
            except VeriteeError as exc:
                return failed_outcome(
                    snap,
                    challenge,
                    f"agent answer: {exc}",
                    part="answer",
                    policy=policy,
                    signer=self.signer,
                    now=self._now(),
                )
            try:
                return await asyncio.to_thread(
                    appraise_round,
                    snap,
                    challenge,
                    evidence,
                    policy,
                    boot_logs=self.boot_logs,
                    signer=self.signer,
                    now=self._now(),
                    keep_evidence=self.config.keep_evidence,
                )
            except NodeRebootedError:
                if attempt:
                    raise
                snap = dataclasses.replace(snap, want_full=True)  # the same node, asked for everything this time
        raise NodeRebootedError(f"node {snap.node_id} asked for a full round twice")  # not reached: a full round

    # --- committing --------------------------------------------------------------------------------------------
    def _count(self, outcomes: list[RoundOutcome], report: CommitReport) -> None:
        committed = set(report.committed)
        for outcome in outcomes:
            if outcome.node_id in committed:
                result = AttestationResult.PASSED if outcome.passed else AttestationResult.FAILED
                self.metrics.count(result, outcome.duration_s)

    def _commit(self, outcomes: list[RoundOutcome]) -> CommitReport:
        report = CommitReport()
        for start in range(0, len(outcomes), self.config.batch_size):
            batch = outcomes[start : start + self.config.batch_size]
            part = self.committer.commit_rounds(batch)
            self._count(batch, part)
            report.committed.extend(part.committed)
            report.stale.extend(part.stale)
            report.states.update(part.states)
        return report

    def _commit_unreachable(self, items: list[Unreachable]) -> CommitReport:
        report = self.committer.commit_unreachable(items, self._now())
        for _ in report.committed:
            self.metrics.count(AttestationResult.UNREACHABLE)
        return report

    # --- one pass ----------------------------------------------------------------------------------------------
    async def refresh_leases(self) -> LeaseReport:
        report = await asyncio.to_thread(self.leases.refresh)
        self.metrics.leases.set(report.held)
        return report

    async def _due(self, limit: int) -> tuple[list[NodeSnapshot], list[Unreachable], list[str]]:
        rows = await asyncio.to_thread(self.leases.due, limit, tuple(self._in_flight))
        pull: list[NodeSnapshot] = []
        late: list[Unreachable] = []
        errors: list[str] = []
        for row in rows:
            if NodeMode(row.mode) is NodeMode.PUSH:
                late.append(Unreachable(row.node_id, row.round, "no evidence before the deadline"))
                continue
            try:
                pull.append(snapshot_of(row))
            except VeriteeError:
                errors.append(row.node_id)
                self.metrics.count(AttestationResult.ERROR)
        return pull, late, errors

    async def run_once(self) -> TickReport:
        """Refresh leases, attest every due node, commit; return what happened."""
        report = TickReport(leases=await self.refresh_leases())
        pull, late, errors = await self._due(10**6)
        report.errors.extend(errors)
        semaphore = asyncio.Semaphore(self.config.pull_concurrency)
        async with self.client() as client:

            async def guarded(snap: NodeSnapshot) -> RoundOutcome | Unreachable | None:
                async with semaphore:
                    try:
                        return await self._round(client, snap)
                    except VeriteeError:  # no usable policy, ...: counted, and tried again one interval later
                        report.errors.append(snap.node_id)
                        self.metrics.count(AttestationResult.ERROR)
                        await asyncio.to_thread(self.committer.postpone, snap.node_id, snap.round)
                        return None

            results = await asyncio.gather(*(guarded(snap) for snap in pull))
        outcomes = [r for r in results if isinstance(r, RoundOutcome)]
        unreachable = [r for r in results if isinstance(r, Unreachable)] + late
        committed = await asyncio.to_thread(self._commit, outcomes)
        missed = await asyncio.to_thread(self._commit_unreachable, unreachable)
        report.attested.extend(committed.committed)
        report.unreachable.extend(missed.committed)
        report.stale.extend(committed.stale + missed.stale)
        return report

    # --- the pipeline ------------------------------------------------------------------------------------------
    async def _lease_task(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(StorageError):
                await self.refresh_leases()
            await _sleep(stop, self.config.tick)

    async def _commit_task(self, stop: asyncio.Event) -> None:
        wake = self._commit_wake
        while not (stop.is_set() and not self._pending):
            if wake is not None:
                wake.clear()
            if self._pending:
                batch, self._pending = self._pending[: self.config.batch_size], self._pending[self.config.batch_size :]
                try:
                    report = await asyncio.to_thread(self._commit, [outcome for outcome, _ in batch])
                except StorageError as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                for _, future in batch:
                    future.set_result(report)
                continue
            if wake is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.config.tick)

    async def _submit(self, outcome: RoundOutcome) -> CommitReport:
        future: asyncio.Future[CommitReport] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._commit_wake is not None:
            self._commit_wake.set()
        return await future

    async def _pipeline_round(
        self, client: httpx.AsyncClient, snap: NodeSnapshot, semaphore: asyncio.Semaphore
    ) -> None:
        try:
            async with semaphore:
                result = await self._round(client, snap)
            if isinstance(result, Unreachable):
                await asyncio.to_thread(self._commit_unreachable, [result])
            else:
                await self._submit(result)
        except VeriteeError:
            self.metrics.count(AttestationResult.ERROR)
            await asyncio.to_thread(self.committer.postpone, snap.node_id, snap.round)
        finally:
            self._in_flight.discard(snap.node_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Attest until ``stop`` is set; in-flight rounds finish first."""
        self._commit_wake = asyncio.Event()
        semaphore = asyncio.Semaphore(self.config.pull_concurrency)
        rounds: set[asyncio.Task[None]] = set()
        helpers = [asyncio.create_task(self._lease_task(stop)), asyncio.create_task(self._commit_task(stop))]
        async with self.client() as client:
            while not stop.is_set():
                try:
                    room = max(0, 2 * self.config.pull_concurrency - len(self._in_flight))
                    pull, late, _ = await self._due(room) if room else ([], [], [])
                    if late:
                        await asyncio.to_thread(self._commit_unreachable, late)
                except StorageError:
                    pull = []
                for snap in pull:
                    self._in_flight.add(snap.node_id)
                    task = asyncio.create_task(self._pipeline_round(client, snap, semaphore))
                    rounds.add(task)
                    task.add_done_callback(rounds.discard)
                await _sleep(stop, self.config.tick)
            if rounds:
                await asyncio.gather(*rounds)
        await asyncio.gather(*helpers)


class _AgentError(TransportError):
    """The agent answered, but not with evidence (HTTP status): the node counts as unreachable."""


class _BadAnswer(DecodeError):
    """The agent answered with something that is not JSON."""


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

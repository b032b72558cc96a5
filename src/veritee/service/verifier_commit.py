"""Committing rounds: node state transition, remediation, history record, events and kept evidence in one transaction.

Outcomes are committed in batches (one transaction for many nodes). Each node's row is locked and its ``round``
compared with the one the outcome was computed from: an outcome that lost a race (the node re-registered, another
replica committed first) is dropped, never applied over newer state. Pushed rounds (:meth:`Committer.commit_pushes`)
get one result each: the node's new state, or the error to answer the node with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeInput, NodeState, next_state
from veritee.errors import FreshnessError, NotFoundError, StorageError, VeriteeError
from veritee.service.node_wire import b64encode
from veritee.service.verifier_codec import clock_to_json, ima_state_to_json
from veritee.service.verifier_config import EvidenceRefusedError, VerifierConfig
from veritee.service.verifier_events import emit_event
from veritee.service.verifier_history import GENESIS, append_record, record_values
from veritee.service.verifier_policies import PolicyCache
from veritee.service.verifier_remediation import remediate
from veritee.service.verifier_rounds import RoundOutcome
from veritee.service.verifier_views import NodeViews, basis_of
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import HistoryKind, NodeMode, VerifierNode
from veritee.store.verifier_repo import (
    ImaAppend,
    append_ima_logs,
    insert_event_logs,
    insert_history,
    lock_nodes,
    lock_round_rows,
    update_rounds,
)

__all__ = ["CommitReport", "Committed", "Committer", "Pushed", "RebootMark", "Unreachable"]


@dataclass
class CommitReport:
    committed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    states: dict[str, NodeState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A node that did not answer (pull) or missed its deadline (push)."""

    node_id: str
    round: int
    reason: str


@dataclass(frozen=True, slots=True)
class RebootMark:
    """A pushed round whose quote shows the node rebooted since its challenge: a full round is due (nothing else
    is recorded)."""

    node_id: str
    round: int


class _Attestable(Protocol):
    @property
    def activated(self) -> bool: ...
    @property
    def ak_revoked_at(self) -> datetime | None: ...


class _Schedulable(Protocol):
    @property
    def interval_s(self) -> float | None: ...
    @property
    def group_name(self) -> str | None: ...
    @property
    def mode(self) -> NodeMode: ...


@dataclass(frozen=True, slots=True)
class Pushed:
    """A pushed round and what its appraisal depended on (:func:`~veritee.service.verifier_views.basis_of` of the
    node view it read): it commits only if the node's row still says the same."""

    outcome: RoundOutcome
    basis: tuple[Any, ...]

    @property
    def node_id(self) -> str:
        return self.outcome.node_id

    @property
    def round(self) -> int:
        return self.outcome.round


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed item: the node's state after it; ``values``, the columns it set when it was a plain round
    (None: it went through the ORM — events, remediation, a reboot mark — and the node's view must be read again)."""

    state: NodeState
    values: Mapping[str, Any] | None = None


def refusal(node: _Attestable | None, node_id: str) -> VeriteeError | None:
    """Why evidence or a challenge for this node is refused (None: it is attestable)."""
    if node is None:
        return NotFoundError(f"no node {node_id!r}")
    if not node.activated:
        return EvidenceRefusedError(f"node {node_id!r} has not activated its attestation key")
    if node.ak_revoked_at is not None:
        return EvidenceRefusedError(f"the attestation key of {node_id!r} is revoked: register again")
    return None


def _appraisal_detail(outcome: RoundOutcome, actions: list[str]) -> dict[str, Any]:
    return {
        "nonce": b64encode(outcome.nonce),
        "checks": sorted(check.value for check in outcome.checks),
        "ima_next_line": None if outcome.ima is None else outcome.ima.next_line,
        "remediation": actions,
    }


class Committer:
    """Writes round outcomes and missed deadlines to the database.

    A round that changes nothing but the node's appraisal state (it passed, no state change, no event) — nearly
    every round of a healthy fleet — is written with a few statements for the whole batch (one UPDATE of the node
    rows, one INSERT of the history records); any other goes through the ORM (events, remediation)."""

    def __init__(
        self,
        db: Database,
        config: VerifierConfig,
        policies: PolicyCache,
        *,
        now: Callable[[], datetime] = utcnow,
        views: NodeViews | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.policies = policies
        self._now = now
        self.views = views if views is not None else NodeViews(enabled=False)

    def forget(self, node_id: str) -> None:
        """The node's row changed outside a plain round: its kept view must be read again."""
        self.views.drop(node_id)

    def interval(self, node: _Schedulable) -> float:
        if node.interval_s is not None:
            return node.interval_s
        group = self.policies.group(node.group_name)
        if group is not None and group.interval_s is not None:
            return group.interval_s
        return self.config.interval_s

    def next_due(self, node: _Schedulable, at: datetime) -> datetime:
        """The next round (pull) or deadline (push) of a node, from ``at``."""
        extra = self.config.grace if NodeMode(node.mode) is NodeMode.PUSH else 0.0
        return at + timedelta(seconds=self.interval(node) + extra)

    def schedule(self, node: VerifierNode, at: datetime) -> None:
        node.next_due_at = self.next_due(node, at)

    def commit_rounds(self, outcomes: Sequence[RoundOutcome]) -> CommitReport:
        """Apply appraised rounds (one transaction); outcomes whose node moved on are dropped as stale."""
        report = CommitReport()
        for outcome, result in zip(outcomes, self.commit_pushes(outcomes), strict=True):
            if isinstance(result, Committed):
                report.committed.append(outcome.node_id)
                report.states[outcome.node_id] = result.state
            else:
                report.stale.append(outcome.node_id)
        return report

    def commit_pushes(self, items: Sequence[RoundOutcome | Pushed | RebootMark]) -> list[Committed | VeriteeError]:
        """Commit rounds (and reboot marks) in one transaction; one result per item, in order: what was committed,
        or why not (unknown node, refused, or it moved on since the round began: another answer to the same
        challenge won, the node re-registered, was marked unreachable, its policy assignment changed, ...)."""
        if not items:
            return []
        with self.db.transaction() as session:
            return self._commit(session, items)

    def _commit(
        self, session: Session, items: Sequence[RoundOutcome | Pushed | RebootMark]
    ) -> list[Committed | VeriteeError]:
        results: list[Committed | VeriteeError] = []
        logs: dict[str, bytes] = {}
        ima: list[ImaAppend] = []
        updates: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        rows = lock_round_rows(session, {item.node_id for item in items})
        done: set[str] = set()
        log_at: datetime | None = None
        moved_on = "the node's state moved on since this challenge: ask for a new one"
        for item in items:
            row = rows.get(item.node_id)
            refused = refusal(row, item.node_id)
            if refused is not None or row is None:
                results.append(refused or NotFoundError(f"no node {item.node_id!r}"))
                continue
            if row.round != item.round or item.node_id in done:  # one round per node and batch: it moves the round
                results.append(FreshnessError(moved_on))
                continue
            if isinstance(item, Pushed) and basis_of(row) != item.basis:
                results.append(FreshnessError(moved_on))
                continue
            done.add(item.node_id)
            if isinstance(item, RebootMark):
                node = self._orm_node(session, item.node_id)
                node.want_full = True
                node.round += 1
                results.append(Committed(NodeState(node.state)))
                continue
            outcome = item.outcome if isinstance(item, Pushed) else item
            if outcome.new_event_log is not None and outcome.event_log_digest is not None:
                logs[outcome.event_log_digest] = outcome.new_event_log
                log_at = log_at or outcome.at
            transition = next_state(NodeState(row.state), NodeInput.PASSED if outcome.passed else NodeInput.FAILED)
            if outcome.passed and transition.event is None:
                values, record = self._plain_round(row, outcome, transition.state, ima)
                updates.append(values)
                records.append(record)
                results.append(Committed(transition.state, values))
            else:
                node = self._orm_node(session, item.node_id)
                self.apply(session, node, outcome, ima)
                results.append(Committed(NodeState(node.state)))
        update_rounds(session, updates)
        insert_history(session, records)
        self.store_event_logs(session, logs, log_at or self._now())
        self.store_ima(session, ima)
        return results

    @staticmethod
    def _orm_node(session: Session, node_id: str) -> VerifierNode:
        node = session.get(VerifierNode, node_id)
        if node is None:  # locked by this transaction a moment ago
            raise StorageError(f"node {node_id!r} vanished while locked")
        return node

    def _round_values(self, node: _Schedulable, outcome: RoundOutcome, state: NodeState, round_: int) -> dict[str, Any]:
        at = outcome.at
        return {
            "state": state,
            "clock": clock_to_json(outcome.clock) if outcome.clock is not None else None,
            "ima_state": ima_state_to_json(outcome.ima) if outcome.ima is not None else None,
            "event_log_digest": outcome.event_log_digest,
            "boot_pcrs_digest": outcome.boot_pcrs_digest,
            "want_full": False,
            "round": round_ + 1,
            "last_seen_at": at,
            "last_attested_at": at,
            "last_passed": outcome.passed,
            "last_policy_id": outcome.policy_id,
            "next_due_at": self.next_due(node, at),
        }

    def _plain_round(
        self, row: Row[Any], outcome: RoundOutcome, state: NodeState, ima: list[ImaAppend]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The node's new column values and its history record, for a round without event or remediation."""
        values = self._round_values(row, outcome, state, row.round)
        record = record_values(
            node_id=row.node_id,
            seq=row.history_seq + 1,
            prev=row.history_head or GENESIS,
            at=outcome.at,
            kind=HistoryKind.APPRAISAL,
            state=state,
            passed=outcome.passed,
            policy_id=outcome.policy_id,
            findings=outcome.findings_json(),
            ear=outcome.ear,
            detail=_appraisal_detail(outcome, []),
        )
        values.update(key=row.node_id, history_seq=record["seq"], history_head=record["record_hash"])
        self._keep_ima(row.node_id, outcome, ima)
        return values, record

    def _keep_ima(self, node_id: str, outcome: RoundOutcome, ima: list[ImaAppend]) -> None:
        if self.config.keep_evidence and outcome.ima_new_text is not None and outcome.ima is not None:
            ima.append(
                ImaAppend(
                    node_id,
                    reset_count=outcome.clock.reset_count if outcome.clock is not None else 0,
                    start_line=outcome.ima_start_line,
                    text=outcome.ima_new_text,
                    lines=outcome.ima.next_line - outcome.ima_start_line,
                    at=outcome.at,
                )
            )

    def store_event_logs(self, session: Session, logs: Mapping[str, bytes], at: datetime) -> None:
        if self.config.keep_evidence:
            insert_event_logs(session, logs, at)

    def store_ima(self, session: Session, appends: Sequence[ImaAppend]) -> None:
        if self.config.keep_evidence:
            append_ima_logs(session, appends)

    def apply(self, session: Session, node: VerifierNode, outcome: RoundOutcome, ima: list[ImaAppend]) -> None:
        """Apply one outcome to the node's row (an ORM object, locked by the caller, its round checked): events,
        remediation, history; the IMA lines to keep are added to ``ima`` (stored with :meth:`store_ima`)."""
        at = outcome.at
        previous = NodeState(node.state)
        transition = next_state(previous, NodeInput.PASSED if outcome.passed else NodeInput.FAILED)
        for name, value in self._round_values(node, outcome, transition.state, node.round).items():
            setattr(node, name, value)
        if transition.event is not None:
            emit_event(
                session,
                node_id=node.node_id,
                kind=transition.event,
                previous_state=previous,
                state=transition.state,
                at=at,
                webhooks=self.config.webhooks,
                detail={"findings": [f.id for f in outcome.findings if f.fails]},
            )
        actions = (
            [] if outcome.passed else remediate(session, node, config=self.config, at=at, findings=outcome.findings)
        )
        append_record(
            session,
            node,
            at=at,
            kind=HistoryKind.APPRAISAL,
            passed=outcome.passed,
            policy_id=outcome.policy_id,
            findings=outcome.findings_json(),
            ear=outcome.ear,
            detail=_appraisal_detail(outcome, actions),
        )
        self._keep_ima(node.node_id, outcome, ima)

    def commit_unreachable(self, items: Sequence[Unreachable], at: datetime) -> CommitReport:
        """Nodes that missed their round: unreachable (pull nodes are tried again next interval)."""
        report = CommitReport()
        if not items:
            return report
        with self.db.transaction() as session:
            nodes = lock_nodes(session, {item.node_id for item in items})
            for item in items:
                node = nodes.get(item.node_id)
                if node is None or node.round != item.round or not node.activated or node.ak_revoked_at is not None:
                    report.stale.append(item.node_id)
                    continue
                previous = NodeState(node.state)
                transition = next_state(previous, NodeInput.UNREACHABLE)
                self.forget(node.node_id)
                node.round += 1
                node.state = transition.state
                if NodeMode(node.mode) is NodeMode.PULL:
                    node.next_due_at = at + timedelta(seconds=self.interval(node))
                else:
                    node.next_due_at = None  # due again when evidence arrives
                if transition.state is not previous or transition.event is not None:
                    append_record(session, node, at=at, kind=HistoryKind.UNREACHABLE, detail={"reason": item.reason})
                if transition.event is not None:
                    emit_event(
                        session,
                        node_id=node.node_id,
                        kind=transition.event,
                        previous_state=previous,
                        state=transition.state,
                        at=at,
                        webhooks=self.config.webhooks,
                        detail={"reason": item.reason},
                    )
                report.committed.append(node.node_id)
                report.states[node.node_id] = NodeState(node.state)
        return report

    def postpone(self, node_id: str, round_: int) -> None:
        """A round that could not be done (no usable policy, ...): try again one interval later."""
        at = self._now()
        with self.db.transaction() as session:
            node = lock_nodes(session, [node_id]).get(node_id)
            if node is not None and node.round == round_:
                self.forget(node_id)
                node.next_due_at = at + timedelta(seconds=self.interval(node))

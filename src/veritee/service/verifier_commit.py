"""Committing rounds: node state transition, remediation, history record, events and kept evidence in one transaction.

Outcomes are committed in batches (one transaction for many nodes). Each node's row is locked and its ``round``
compared with the one the outcome was computed from: an outcome that lost a race (the node re-registered, another
replica committed first) is dropped, never applied over newer state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeInput, NodeState, next_state
from veritee.service.node_wire import b64encode
from veritee.service.verifier_codec import clock_to_json, ima_state_to_json
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_events import emit_event
from veritee.service.verifier_history import append_record
from veritee.service.verifier_policies import PolicyCache
from veritee.service.verifier_remediation import remediate
from veritee.service.verifier_rounds import RoundOutcome
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import HistoryKind, NodeMode, VerifierNode
from veritee.store.verifier_repo import append_ima_log, insert_event_logs, lock_nodes

__all__ = ["CommitReport", "Committer", "Unreachable"]


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


class Committer:
    """Writes round outcomes and missed deadlines to the database."""

    def __init__(
        self, db: Database, config: VerifierConfig, policies: PolicyCache, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.config = config
        self.policies = policies
        self._now = now

    def interval(self, node: VerifierNode) -> float:
        if node.interval_s is not None:
            return node.interval_s
        group = self.policies.group(node.group_name)
        if group is not None and group.interval_s is not None:
            return group.interval_s
        return self.config.interval_s

    def schedule(self, node: VerifierNode, at: datetime) -> None:
        """The next round (pull) or deadline (push) of a node, from ``at``."""
        interval = self.interval(node)
        extra = self.config.grace if NodeMode(node.mode) is NodeMode.PUSH else 0.0
        node.next_due_at = at + timedelta(seconds=interval + extra)

    def commit_rounds(self, outcomes: Sequence[RoundOutcome]) -> CommitReport:
        """Apply appraised rounds (one transaction); outcomes whose node moved on are dropped as stale."""
        report = CommitReport()
        if not outcomes:
            return report
        logs: dict[str, bytes] = {}
        with self.db.transaction() as session:
            nodes = lock_nodes(session, {o.node_id for o in outcomes})
            for outcome in outcomes:
                node = nodes.get(outcome.node_id)
                if node is None or node.round != outcome.round or not node.activated or node.ak_revoked_at:
                    report.stale.append(outcome.node_id)
                    continue
                self.apply(session, node, outcome)
                if outcome.new_event_log is not None and outcome.event_log_digest is not None:
                    logs[outcome.event_log_digest] = outcome.new_event_log
                report.committed.append(node.node_id)
                report.states[node.node_id] = NodeState(node.state)
            self.store_event_logs(session, logs, outcomes[0].at)
        return report

    def store_event_logs(self, session: Session, logs: Mapping[str, bytes], at: datetime) -> None:
        if self.config.keep_evidence:
            insert_event_logs(session, logs, at)

    def apply(self, session: Session, node: VerifierNode, outcome: RoundOutcome) -> None:
        """Apply one outcome to the node's row (locked by the caller, its round checked)."""
        at = outcome.at
        previous = NodeState(node.state)
        transition = next_state(previous, NodeInput.PASSED if outcome.passed else NodeInput.FAILED)
        node.state = transition.state
        node.clock = clock_to_json(outcome.clock) if outcome.clock is not None else None
        node.ima_state = ima_state_to_json(outcome.ima) if outcome.ima is not None else None
        node.event_log_digest = outcome.event_log_digest
        node.boot_pcrs_digest = outcome.boot_pcrs_digest
        node.want_full = False
        node.round += 1
        node.last_seen_at = at
        node.last_attested_at = at
        node.last_passed = outcome.passed
        node.last_policy_id = outcome.policy_id
        self.schedule(node, at)
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
            detail={
                "nonce": b64encode(outcome.nonce),
                "checks": sorted(check.value for check in outcome.checks),
                "ima_next_line": None if outcome.ima is None else outcome.ima.next_line,
                "remediation": actions,
            },
        )
        if self.config.keep_evidence and outcome.ima_new_text is not None and outcome.ima is not None:
            append_ima_log(
                session,
                node.node_id,
                reset_count=outcome.clock.reset_count if outcome.clock is not None else 0,
                start_line=outcome.ima_start_line,
                text=outcome.ima_new_text,
                lines=outcome.ima.next_line - outcome.ima_start_line,
                at=at,
            )

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
                node.next_due_at = at + timedelta(seconds=self.interval(node))

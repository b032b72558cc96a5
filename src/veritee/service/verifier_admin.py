"""Operator actions and queries: node details and history, quarantine/release/revoke, assignments, admission,
and learning a policy from a known-good node's evidence.

Every state change goes through the node state machine and is recorded in the node's hash-chained history, with its
event, in one transaction.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from veritee.appraisal.node_state import ADMISSIBLE, NodeEvent, NodeInput, NodeState, next_state
from veritee.appraisal.policy import PolicySet, create_policy_from_evidence
from veritee.errors import NotFoundError, PolicyError, ValidationError
from veritee.service.verifier_commit import Committer
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_events import emit_event
from veritee.service.verifier_history import append_record
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import (
    HistoryKind,
    NodeMode,
    VerifierHistory,
    VerifierImaChunk,
    VerifierImaLog,
    VerifierNode,
)
from veritee.store.verifier_repo import load_event_log, load_ima_text, lock_nodes

__all__ = [
    "ADMISSION_WORKLOADS",
    "Admission",
    "VerifierAdmin",
    "history_json",
    "learn_policy",
    "list_nodes",
    "node_history",
    "node_json",
]

ADMISSION_WORKLOADS = "admission.workloads"
"""Node attribute: comma-separated glob patterns of the workloads the node may run (absent: any)."""


@dataclass(frozen=True, slots=True)
class Admission:
    allow: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"allow": self.allow, "reason": self.reason}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def node_json(node: VerifierNode) -> dict[str, Any]:
    """A node as the API shows it (no secrets: the registration challenge is never shown)."""
    ima = node.ima_state or {}
    return {
        "node_id": node.node_id,
        "state": NodeState(node.state).value,
        "mode": NodeMode(node.mode).value,
        "activated": node.activated,
        "ak_revoked": node.ak_revoked_at is not None,
        "ak_revoked_at": _iso(node.ak_revoked_at),
        "agent_url": node.agent_url,
        "attributes": dict(node.attributes or {}),
        "group": node.group_name,
        "policy": node.policy_name,
        "interval_s": node.interval_s,
        "ak_name": node.ak_name.hex(),
        "ek_certified": node.ek_cert is not None,
        "last_seen_at": _iso(node.last_seen_at),
        "last_attested_at": _iso(node.last_attested_at),
        "last_passed": node.last_passed,
        "last_policy_id": node.last_policy_id,
        "next_due_at": _iso(node.next_due_at),
        "ima_next_line": ima.get("next_line"),
        "event_log_digest": node.event_log_digest,
        "lease_owner": node.lease_owner,
        "history_records": node.history_seq,
        "history_head": node.history_head,
        "tam_blocked_at": _iso(node.tam_blocked_at),
    }


def history_json(row: VerifierHistory) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at.isoformat(),
        "kind": row.kind.value,
        "state": row.state.value,
        "passed": row.passed,
        "policy_id": row.policy_id,
        "findings": row.findings,
        "ear": row.ear,
        "detail": row.detail,
        "prev_hash": row.prev_hash,
        "record_hash": row.record_hash,
    }


def list_nodes(
    db: Database, *, state: NodeState | None = None, limit: int = 1000, after: str | None = None
) -> list[dict[str, Any]]:
    """Nodes by id (``after``: page on from that id)."""
    query = select(VerifierNode).order_by(VerifierNode.node_id).limit(max(1, min(limit, 10_000)))
    if state is not None:
        query = query.where(VerifierNode.state == state)
    if after is not None:
        query = query.where(VerifierNode.node_id > after)
    with db.transaction() as session:
        return [node_json(node) for node in session.scalars(query)]


def node_history(db: Database, node_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
    """A node's history records, newest first (``before``: only records with a lower seq)."""
    query = (
        select(VerifierHistory)
        .where(VerifierHistory.node_id == node_id)
        .order_by(VerifierHistory.seq.desc())
        .limit(max(1, min(limit, 10_000)))
    )
    if before is not None:
        query = query.where(VerifierHistory.seq < before)
    with db.transaction() as session:
        if session.get(VerifierNode, node_id) is None:
            raise NotFoundError(f"no node {node_id!r}")
        return [history_json(row) for row in session.scalars(query)]


def learn_policy(db: Database, node_id: str, *, name: str, excludes: Iterable[str] = ()) -> PolicySet:
    """The boot and runtime policy a known-good node's kept evidence satisfies: the event log and the IMA lines
    its quotes bound (nothing a quote did not cover is learned)."""
    with db.transaction() as session:
        node = session.get(VerifierNode, node_id)
        if node is None:
            raise NotFoundError(f"no node {node_id!r}")
        event_log = load_event_log(session, node.event_log_digest) if node.event_log_digest else None
        ima_text = load_ima_text(session, node_id)
    if event_log is None and ima_text is None:
        raise PolicyError(
            f"no evidence kept for {node_id!r}: it needs a round whose quote bound its event log or IMA list"
        )
    boot, runtime = create_policy_from_evidence(event_log, ima_text, excludes=tuple(excludes))
    return PolicySet(name=name, boot=boot, runtime=runtime)


class VerifierAdmin:
    def __init__(
        self, db: Database, config: VerifierConfig, committer: Committer, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.config = config
        self.committer = committer
        self._now = now

    # --- queries -------------------------------------------------------------------------------------------------
    def node(self, node_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            node = session.get(VerifierNode, node_id)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            return node_json(node)

    def nodes(
        self, *, state: NodeState | None = None, limit: int = 1000, after: str | None = None
    ) -> list[dict[str, Any]]:
        return list_nodes(self.db, state=state, limit=limit, after=after)

    def history(self, node_id: str, *, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        return node_history(self.db, node_id, limit=limit, before=before)

    def admission(self, node_id: str, workload: str) -> Admission:
        """May ``workload`` run on ``node_id`` now? Only a trusted node with a fresh attestation may."""
        now = self._now()
        with self.db.transaction() as session:
            node = session.get(VerifierNode, node_id)
            if node is None:
                return Admission(False, f"node {node_id!r} is not registered")
            if not node.activated:
                return Admission(False, "the node has not proved its attestation key")
            if node.ak_revoked_at is not None:
                return Admission(False, f"the node's attestation key was revoked at {node.ak_revoked_at.isoformat()}")
            state = NodeState(node.state)
            if state not in ADMISSIBLE:
                return Admission(False, f"the node is {state.value}")
            interval = self.committer.interval(node)
            last = node.last_attested_at
            if last is None or now - last > timedelta(seconds=interval + self.config.grace):
                return Admission(False, f"the node's last attestation ({_iso(last)}) is older than its interval allows")
            patterns = [
                p.strip() for p in str((node.attributes or {}).get(ADMISSION_WORKLOADS, "")).split(",") if p.strip()
            ]
            if patterns and not any(fnmatch.fnmatchcase(workload, p) for p in patterns):
                return Admission(False, f"workload {workload!r} is not among the node's allowed workloads")
            return Admission(True, f"trusted; attested at {last.isoformat()} against {node.last_policy_id}")

    # --- state changes -------------------------------------------------------------------------------------------
    def _change(self, node_id: str, node_input: NodeInput, reason: str) -> NodeState:
        try:
            return self._change_state(node_id, node_input, reason)
        finally:
            self.committer.forget(node_id)  # after the commit: a view read before it cannot outlive it

    def _change_state(self, node_id: str, node_input: NodeInput, reason: str) -> NodeState:
        now = self._now()
        with self.db.transaction() as session:
            node = lock_nodes(session, [node_id]).get(node_id)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            previous = NodeState(node.state)
            transition = next_state(previous, node_input)
            node.state = transition.state
            node.round += 1
            if node_input is NodeInput.RELEASE:
                node.tam_blocked_at = None
                if NodeMode(node.mode) is NodeMode.PULL:
                    node.next_due_at = now  # attest it again at once
                else:
                    self.committer.schedule(node, now)  # a push node gets a full interval to send evidence
            append_record(
                session, node, at=now, kind=HistoryKind.ADMIN, detail={"action": node_input.value, "reason": reason}
            )
            if transition.event is not None:
                emit_event(
                    session,
                    node_id=node_id,
                    kind=transition.event,
                    previous_state=previous,
                    state=transition.state,
                    at=now,
                    webhooks=self.config.webhooks,
                    detail={"reason": reason},
                )
            return transition.state

    def quarantine(self, node_id: str, reason: str = "operator") -> NodeState:
        return self._change(node_id, NodeInput.QUARANTINE, reason)

    def release(self, node_id: str, reason: str = "operator") -> NodeState:
        return self._change(node_id, NodeInput.RELEASE, reason)

    def revoke(self, node_id: str, reason: str = "operator") -> None:
        """Revoke the node's AK: evidence is refused until it registers (and activates) again."""
        now = self._now()
        with self.db.transaction() as session:
            node = lock_nodes(session, [node_id]).get(node_id)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            if node.ak_revoked_at is not None:
                return
            node.ak_revoked_at = now
            node.round += 1
            node.lease_owner = None
            node.lease_until = None
            state = NodeState(node.state)
            append_record(session, node, at=now, kind=HistoryKind.ADMIN, detail={"action": "revoke", "reason": reason})
            emit_event(
                session,
                node_id=node_id,
                kind=NodeEvent.REVOKED,
                previous_state=state,
                state=state,
                at=now,
                webhooks=self.config.webhooks,
                detail={"reason": reason},
            )
        self.committer.forget(node_id)

    def delete(self, node_id: str) -> None:
        """Forget a node (its history stays, for audit)."""
        with self.db.transaction() as session:
            node = session.get(VerifierNode, node_id)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            session.execute(delete(VerifierImaChunk).where(VerifierImaChunk.node_id == node_id))
            session.execute(delete(VerifierImaLog).where(VerifierImaLog.node_id == node_id))
            session.delete(node)
        self.committer.forget(node_id)

    def assign(
        self,
        node_id: str,
        *,
        group: str | None,
        policy: str | None,
        interval_s: float | None,
        fields: Iterable[str],
    ) -> dict[str, Any]:
        """Set the node's group, policy and/or interval (only the names in ``fields``; None clears)."""
        if interval_s is not None and not interval_s > 0:
            raise ValidationError("interval_s must be positive")
        wanted = set(fields)
        with self.db.transaction() as session:
            node = lock_nodes(session, [node_id]).get(node_id)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            if "group" in wanted:
                node.group_name = group
            if "policy" in wanted:
                node.policy_name = policy
            if "interval_s" in wanted:
                node.interval_s = interval_s
            shown = node_json(node)
        self.committer.forget(node_id)
        return shown

    # --- learning ------------------------------------------------------------------------------------------------
    def policy_from_node(self, node_id: str, *, name: str, excludes: Iterable[str] = ()) -> PolicySet:
        return learn_policy(self.db, node_id, name=name, excludes=excludes)

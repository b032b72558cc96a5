"""Queries of the verifier tables. Every function takes the caller's session (from ``Database.transaction()``).

Row locking: ``FOR UPDATE`` (and ``SKIP LOCKED`` when claiming) on PostgreSQL, where several verifier replicas share
the tables; SQLite ignores it and serialises writers itself (one process claims every node there).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeState
from veritee.store.verifier_models import (
    VerifierEventLog,
    VerifierImaLog,
    VerifierNode,
    VerifierOutbox,
    VerifierReplica,
)

__all__ = [
    "append_ima_log",
    "attestable",
    "claim_deliveries",
    "claim_nodes",
    "count_attestable",
    "due_nodes",
    "heartbeat",
    "held_count",
    "insert_event_logs",
    "live_replicas",
    "load_event_log",
    "lock_nodes",
    "node_counts",
    "release_leases",
    "release_some",
    "renew_leases",
]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def attestable() -> ColumnElement[bool]:
    """Nodes the verifier attests: activated, AK not revoked."""
    return and_(VerifierNode.activated.is_(True), VerifierNode.ak_revoked_at.is_(None))


def lock_nodes(session: Session, node_ids: Collection[str]) -> dict[str, VerifierNode]:
    """The rows of these nodes, locked for this transaction (PostgreSQL), in a consistent order (no deadlocks)."""
    if not node_ids:
        return {}
    query = (
        select(VerifierNode)
        .where(VerifierNode.node_id.in_(sorted(node_ids)))
        .order_by(VerifierNode.node_id)
        .with_for_update()
    )
    return {node.node_id: node for node in session.scalars(query)}


# --- evidence ------------------------------------------------------------------------------------------------------
def insert_event_logs(session: Session, logs: Mapping[str, bytes], at: datetime) -> None:
    """Store event logs by digest; a digest already stored (by anyone) is left alone."""
    if not logs:
        return
    rows = [{"digest": digest, "content": content, "created_at": at} for digest, content in sorted(logs.items())]
    if _dialect(session) == "postgresql":
        session.execute(
            postgresql.insert(VerifierEventLog).values(rows).on_conflict_do_nothing(index_elements=["digest"])
        )
    else:
        session.execute(sqlite.insert(VerifierEventLog).values(rows).on_conflict_do_nothing(index_elements=["digest"]))


def load_event_log(session: Session, digest: str) -> bytes | None:
    return session.scalar(select(VerifierEventLog.content).where(VerifierEventLog.digest == digest))


def append_ima_log(
    session: Session, node_id: str, *, reset_count: int, start_line: int, text: str, lines: int, at: datetime
) -> None:
    """Record IMA lines ``start_line .. start_line + lines - 1`` of the node's current boot (bound to a quote).

    Lines from 0 replace what was kept; later lines are appended only right after the kept ones of the same boot
    (anything else would leave a gap, so the kept log is dropped rather than made inconsistent)."""
    row = session.get(VerifierImaLog, node_id)
    if start_line == 0:
        if row is None:
            session.add(
                VerifierImaLog(node_id=node_id, reset_count=reset_count, lines=lines, content=text, updated_at=at)
            )
            return
        row.reset_count, row.lines, row.content, row.updated_at = reset_count, lines, text, at
        return
    if row is None:
        return
    if row.reset_count != reset_count or row.lines != start_line:
        session.delete(row)
        return
    row.content = row.content + text
    row.lines = start_line + lines
    row.updated_at = at


# --- leases --------------------------------------------------------------------------------------------------------
def heartbeat(session: Session, replica_id: str, now: datetime, info: Mapping[str, object]) -> None:
    row = session.get(VerifierReplica, replica_id)
    if row is None:
        session.add(VerifierReplica(replica_id=replica_id, started_at=now, heartbeat_at=now, info=dict(info)))
    else:
        row.heartbeat_at = now


def live_replicas(session: Session, since: datetime) -> int:
    query = select(func.count()).select_from(VerifierReplica).where(VerifierReplica.heartbeat_at >= since)
    return int(session.scalar(query) or 0)


def count_attestable(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(VerifierNode).where(attestable())) or 0)


def renew_leases(session: Session, owner: str, until: datetime) -> int:
    """Extend every lease ``owner`` holds; returns how many. Rows another transaction holds right now (a commit in
    progress) are skipped, not waited for: the next tick renews them (a lease lasts many ticks)."""
    query = (
        select(VerifierNode.node_id)
        .where(VerifierNode.lease_owner == owner)
        .order_by(VerifierNode.node_id)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(update(VerifierNode).where(VerifierNode.node_id.in_(ids)).values(lease_until=until))
    return len(ids)


def held_count(session: Session, owner: str) -> int:
    query = select(func.count()).select_from(VerifierNode).where(VerifierNode.lease_owner == owner, attestable())
    return int(session.scalar(query) or 0)


def claim_nodes(session: Session, owner: str, now: datetime, until: datetime, limit: int) -> list[str]:
    """Claim up to ``limit`` attestable nodes whose lease is free or expired (other replicas' rows being claimed at
    the same moment are skipped, not waited for). Most overdue first."""
    if limit <= 0:
        return []
    query = (
        select(VerifierNode.node_id)
        .where(attestable(), or_(VerifierNode.lease_owner.is_(None), VerifierNode.lease_until < now))
        .order_by(VerifierNode.next_due_at.asc().nulls_first(), VerifierNode.node_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(VerifierNode).where(VerifierNode.node_id.in_(ids)).values(lease_owner=owner, lease_until=until)
        )
    return ids


def release_some(session: Session, owner: str, count: int) -> int:
    """Give up ``count`` of ``owner``'s leases (those due last), so another replica can take its fair share."""
    if count <= 0:
        return 0
    query = (
        select(VerifierNode.node_id)
        .where(VerifierNode.lease_owner == owner)
        .order_by(VerifierNode.next_due_at.desc().nulls_last(), VerifierNode.node_id)
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(VerifierNode).where(VerifierNode.node_id.in_(ids)).values(lease_owner=None, lease_until=None)
        )
    return len(ids)


def release_leases(session: Session, owner: str) -> int:
    result = session.execute(
        update(VerifierNode).where(VerifierNode.lease_owner == owner).values(lease_owner=None, lease_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def due_nodes(
    session: Session, owner: str, now: datetime, limit: int, exclude: Iterable[str] = ()
) -> list[VerifierNode]:
    """Nodes ``owner`` holds whose next round (pull) or deadline (push) has come, most overdue first."""
    query = (
        select(VerifierNode)
        .where(
            VerifierNode.lease_owner == owner,
            VerifierNode.lease_until >= now,
            attestable(),
            VerifierNode.next_due_at.is_not(None),
            VerifierNode.next_due_at <= now,
        )
        .order_by(VerifierNode.next_due_at)
        .limit(limit)
    )
    excluded = list(exclude)
    if excluded:
        query = query.where(VerifierNode.node_id.not_in(excluded))
    return list(session.scalars(query))


# --- outbox --------------------------------------------------------------------------------------------------------
def claim_deliveries(
    session: Session, owner: str, now: datetime, until: datetime, limit: int, *, scan: int = 1000
) -> list[VerifierOutbox]:
    """Claim due deliveries in order, per target URL: for each URL its oldest pending deliveries, up to the first one
    that is not due yet or is claimed by a live delivery run, so a receiver never gets a later event before an
    earlier one. The pending rows are locked (``FOR UPDATE``, waiting: claims are short) so replicas claim in turn."""
    query = (
        select(VerifierOutbox)
        .where(VerifierOutbox.delivered_at.is_(None), VerifierOutbox.failed_at.is_(None))
        .order_by(VerifierOutbox.id)
        .limit(scan)
        .with_for_update()
    )
    blocked: set[str] = set()
    claimed: list[VerifierOutbox] = []
    for row in session.scalars(query):
        if row.url in blocked:
            continue
        live_claim = row.claimed_until is not None and row.claimed_until >= now
        if row.next_attempt_at > now or live_claim or len(claimed) >= limit:
            blocked.add(row.url)
            continue
        row.claimed_by = owner
        row.claimed_until = until
        claimed.append(row)
    return claimed


# --- metrics -------------------------------------------------------------------------------------------------------
def node_counts(session: Session) -> dict[NodeState, int]:
    """Attestable nodes per state (every state present, zero when none)."""
    counts = dict.fromkeys(NodeState, 0)
    query = select(VerifierNode.state, func.count()).where(attestable()).group_by(VerifierNode.state)
    for state, count in session.execute(query):
        counts[NodeState(state)] = int(count)
    return counts

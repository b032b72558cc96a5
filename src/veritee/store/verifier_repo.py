"""Queries of the verifier tables. Every function takes the caller's session (from ``Database.transaction()``).

Row locking: ``FOR UPDATE`` (and ``SKIP LOCKED`` when claiming) on PostgreSQL, where several verifier replicas share
the tables; SQLite ignores it and serialises writers itself (one process claims every node there).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Row, Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeState
from veritee.store.verifier_models import (
    VerifierEventLog,
    VerifierHistory,
    VerifierImaChunk,
    VerifierImaLog,
    VerifierNode,
    VerifierOutbox,
    VerifierReplica,
    VerifierSecret,
)

__all__ = [
    "ROUND_COLUMNS",
    "ROUND_UPDATE_COLUMNS",
    "ImaAppend",
    "append_ima_logs",
    "attestable",
    "claim_deliveries",
    "claim_nodes",
    "count_attestable",
    "due_nodes",
    "heartbeat",
    "held_count",
    "insert_event_logs",
    "insert_history",
    "live_replicas",
    "load_event_log",
    "load_ima_text",
    "lock_nodes",
    "lock_round_rows",
    "node_counts",
    "release_leases",
    "release_some",
    "renew_leases",
    "round_row",
    "shared_secret",
    "update_rounds",
]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def attestable() -> ColumnElement[bool]:
    """Nodes the verifier attests: activated, AK not revoked."""
    return and_(VerifierNode.activated.is_(True), VerifierNode.ak_revoked_at.is_(None))


_LOCK_NODES = (
    select(VerifierNode)
    .where(VerifierNode.node_id.in_(bindparam("ids", expanding=True)))
    .order_by(VerifierNode.node_id)
    .with_for_update()
)


def lock_nodes(session: Session, node_ids: Collection[str]) -> dict[str, VerifierNode]:
    """The rows of these nodes, locked for this transaction (PostgreSQL), in a consistent order (no deadlocks)."""
    if not node_ids:
        return {}
    return {node.node_id: node for node in session.scalars(_LOCK_NODES, {"ids": sorted(node_ids)})}


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


_NODES = cast(Table, VerifierNode.__table__)
_HISTORY = cast(Table, VerifierHistory.__table__)
_IMA_LOGS = cast(Table, VerifierImaLog.__table__)
_IMA_CHUNKS = cast(Table, VerifierImaChunk.__table__)
_SECRETS = cast(Table, VerifierSecret.__table__)


@dataclass(frozen=True, slots=True)
class ImaAppend:
    """IMA lines ``start_line .. start_line + lines - 1`` of a node's current boot (``reset_count``), bound to a
    quote: ``text`` is those complete lines."""

    node_id: str
    reset_count: int
    start_line: int
    text: str
    lines: int
    at: datetime


@dataclass
class _KeptIma:
    reset_count: int
    lines: int
    at: datetime | None
    chunks: list[ImaAppend]
    cleared: bool


_IMA_HEADS = select(_IMA_LOGS.c.node_id, _IMA_LOGS.c.reset_count, _IMA_LOGS.c.lines).where(
    _IMA_LOGS.c.node_id.in_(bindparam("ids", expanding=True))
)
_IMA_CLEAR = delete(_IMA_CHUNKS).where(_IMA_CHUNKS.c.node_id.in_(bindparam("ids", expanding=True)))
_IMA_DROP = delete(_IMA_LOGS).where(_IMA_LOGS.c.node_id.in_(bindparam("ids", expanding=True)))
_IMA_NEW_HEAD = insert(_IMA_LOGS)
_IMA_MOVE_HEAD = (
    update(_IMA_LOGS)
    .where(_IMA_LOGS.c.node_id == bindparam("key"))
    .values(reset_count=bindparam("reset_count"), lines=bindparam("lines"), updated_at=bindparam("updated_at"))
)
_IMA_CHUNK = insert(_IMA_CHUNKS)


def append_ima_logs(session: Session, appends: Sequence[ImaAppend]) -> None:
    """Record bound IMA lines for many nodes at once (a few statements whatever their number).

    Lines from 0 replace what a node had kept; later lines are appended only right after the kept ones of the same
    boot (anything else would leave a gap, so the kept log is dropped rather than made inconsistent). Each append is
    one small chunk row: nothing kept before is read or rewritten."""
    if not appends:
        return
    ids = sorted({item.node_id for item in appends})
    stored = {
        row.node_id: _KeptIma(row.reset_count, row.lines, None, [], False)
        for row in session.execute(_IMA_HEADS, {"ids": ids})
    }
    kept: dict[str, _KeptIma | None] = dict(stored)
    for item in appends:
        current = kept.get(item.node_id)
        if item.start_line == 0:
            kept[item.node_id] = _KeptIma(item.reset_count, item.lines, item.at, [item], True)
        elif current is None:
            continue
        elif current.reset_count != item.reset_count or current.lines != item.start_line:
            kept[item.node_id] = None
        else:
            current.chunks.append(item)
            current.lines, current.at = item.start_line + item.lines, item.at
    cleared = [node for node, now in kept.items() if node in stored and (now is None or now.cleared)]
    dropped = [node for node, now in kept.items() if node in stored and now is None]
    if cleared:
        session.execute(_IMA_CLEAR, {"ids": cleared})
    if dropped:
        session.execute(_IMA_DROP, {"ids": dropped})
    new_heads: list[dict[str, Any]] = []
    changed_heads: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for node, now in kept.items():
        if now is None or now.at is None:
            continue
        values = {"reset_count": now.reset_count, "lines": now.lines, "updated_at": now.at}
        if node in stored:
            changed_heads.append({"key": node, **values})
        else:
            new_heads.append({"node_id": node, **values})
        rows.extend(
            {"node_id": node, "start_line": c.start_line, "lines": c.lines, "content": c.text} for c in now.chunks
        )
    if new_heads:
        session.execute(_IMA_NEW_HEAD, new_heads)
    if changed_heads:
        session.execute(_IMA_MOVE_HEAD, changed_heads)
    if rows:
        session.execute(_IMA_CHUNK, rows)


def load_ima_text(session: Session, node_id: str) -> str | None:
    """The node's kept IMA list (None when nothing is kept)."""
    if session.get(VerifierImaLog, node_id) is None:
        return None
    chunk = _IMA_CHUNKS.c
    query = select(chunk.content).where(chunk.node_id == node_id).order_by(chunk.start_line)
    return "".join(session.scalars(query))


# --- push rounds ---------------------------------------------------------------------------------------------------
ROUND_COLUMNS = (  # what a push round reads of a node's row
    "node_id",
    "mode",
    "state",
    "ak_public",
    "agent_url",
    "policy_name",
    "group_name",
    "attributes",
    "round",
    "clock",
    "ima_state",
    "event_log_digest",
    "boot_pcrs_digest",
    "want_full",
    "activated",
    "activated_at",
    "ak_revoked_at",
)


_ROUND_ROW = select(*(getattr(VerifierNode, name) for name in ROUND_COLUMNS)).where(
    VerifierNode.node_id == bindparam("node_id")
)


def round_row(connection: Connection, node_id: str) -> Row[Any] | None:
    """What a round needs of a node's row (no lock: the commit checks the round is still current)."""
    return connection.execute(_ROUND_ROW, {"node_id": node_id}).first()


_COMMIT_COLUMNS = (*ROUND_COLUMNS, "interval_s", "history_seq", "history_head")
_LOCK_ROUND_ROWS = (
    select(*(_NODES.c[name] for name in _COMMIT_COLUMNS))
    .where(_NODES.c.node_id.in_(bindparam("ids", expanding=True)))
    .order_by(_NODES.c.node_id)
    .with_for_update()
)
ROUND_UPDATE_COLUMNS = (
    "state",
    "clock",
    "ima_state",
    "event_log_digest",
    "boot_pcrs_digest",
    "want_full",
    "round",
    "last_seen_at",
    "last_attested_at",
    "last_passed",
    "last_policy_id",
    "next_due_at",
    "history_seq",
    "history_head",
)
"""The columns a committed round sets (:func:`update_rounds`)."""
_UPDATE_ROUNDS = (
    update(_NODES)
    .where(_NODES.c.node_id == bindparam("key"))
    .values({name: bindparam(name) for name in ROUND_UPDATE_COLUMNS})
)
_INSERT_HISTORY = insert(_HISTORY)


def lock_round_rows(session: Session, node_ids: Collection[str]) -> dict[str, Row[Any]]:
    """What committing a round reads of each node's row (locked for this transaction on PostgreSQL, in order)."""
    if not node_ids:
        return {}
    return {row.node_id: row for row in session.execute(_LOCK_ROUND_ROWS, {"ids": sorted(node_ids)})}


def update_rounds(session: Session, values: Sequence[Mapping[str, Any]]) -> None:
    """Set :data:`ROUND_UPDATE_COLUMNS` of many nodes (each mapping: ``key`` = the node id, and every column)."""
    if values:
        session.execute(_UPDATE_ROUNDS, list(values))


def insert_history(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert history records (the columns of :class:`VerifierHistory` but ``id``)."""
    if rows:
        session.execute(_INSERT_HISTORY, list(rows))


def shared_secret(session: Session, name: str, candidate: bytes, at: datetime) -> bytes:
    """The secret ``name`` every replica shares: ``candidate`` if none was stored yet (the first writer wins)."""
    table = _SECRETS
    values = {"name": name, "value": candidate, "created_at": at}
    if _dialect(session) == "postgresql":
        session.execute(postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=["name"]))
    else:
        session.execute(sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=["name"]))
    value = session.scalar(select(table.c.value).where(table.c.name == name))
    return bytes(value) if value is not None else candidate


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

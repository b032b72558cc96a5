"""Events: written with the change that causes them, read by the event stream, delivered through the outbox.

:func:`emit_event` adds the event row and one outbox row per configured webhook in the caller's transaction, so an
event exists exactly when its change was committed, and a crash before delivery only delays it. The stream reads
events by increasing id (``Last-Event-ID`` resumes it), so every replica serves every event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeEvent, NodeState
from veritee.store.db import Database
from veritee.store.verifier_models import DeliveryKind, VerifierEvent, VerifierOutbox

__all__ = ["EventRecord", "emit_event", "enqueue_tam_block", "event_json", "events_since", "last_event_id"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as the stream and webhooks carry it."""

    id: int
    node_id: str
    kind: NodeEvent
    at: datetime
    previous_state: NodeState | None
    state: NodeState
    detail: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "node_id": self.node_id,
            "at": self.at.isoformat(),
            "previous_state": None if self.previous_state is None else self.previous_state.value,
            "state": self.state.value,
            "detail": dict(self.detail),
        }


def event_json(row: VerifierEvent) -> dict[str, Any]:
    return _record(row).to_json()


def _record(row: VerifierEvent) -> EventRecord:
    return EventRecord(
        id=row.id,
        node_id=row.node_id,
        kind=NodeEvent(row.kind),
        at=row.at,
        previous_state=None if row.previous_state is None else NodeState(row.previous_state),
        state=NodeState(row.state),
        detail=row.detail or {},
    )


def emit_event(
    session: Session,
    *,
    node_id: str,
    kind: NodeEvent,
    previous_state: NodeState | None,
    state: NodeState,
    at: datetime,
    webhooks: Sequence[str],
    detail: Mapping[str, Any] | None = None,
) -> VerifierEvent:
    """Record an event and queue its webhook deliveries (in the caller's transaction)."""
    event = VerifierEvent(
        node_id=node_id, kind=kind, at=at, previous_state=previous_state, state=state, detail=dict(detail or {})
    )
    session.add(event)
    for url in webhooks:
        session.add(
            VerifierOutbox(
                event=event,
                kind=DeliveryKind.WEBHOOK,
                url=url,
                payload={},
                attempts=0,
                next_attempt_at=at,
                created_at=at,
            )
        )
    return event


def enqueue_tam_block(
    session: Session, *, event: VerifierEvent | None, tam_url: str, device_id: str, reason: str, at: datetime
) -> VerifierOutbox:
    """Queue ``POST {tam_url}/admin/devices/{device_id}/block`` (the token is added at delivery, never stored)."""
    row = VerifierOutbox(
        event=event,
        kind=DeliveryKind.TAM_BLOCK,
        url=tam_url,
        payload={"device_id": device_id, "reason": reason},
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )
    session.add(row)
    return row


def events_since(db: Database, after_id: int, *, node_id: str | None = None, limit: int = 100) -> list[EventRecord]:
    """Events with an id above ``after_id`` (oldest first), optionally of one node."""
    query = select(VerifierEvent).where(VerifierEvent.id > after_id).order_by(VerifierEvent.id).limit(limit)
    if node_id is not None:
        query = query.where(VerifierEvent.node_id == node_id)
    with db.transaction() as session:
        return [_record(row) for row in session.scalars(query)]


def last_event_id(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.coalesce(func.max(VerifierEvent.id), 0))) or 0)

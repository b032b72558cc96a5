"""Tables of the platform verifier: nodes, policies, node groups, attestation history, events, outbox, replicas.

* ``verifier_nodes`` — one row per node: keys (EK, AK), registration challenge, state, the incremental appraisal
  state (previous quote clock, IMA position, which event log), scheduling (next due time) and the lease a verifier
  replica holds on it, and the head of its hash-chained history.
* ``verifier_history`` — every appraisal (findings, EAR) and every other state change, hash-chained per node.
* ``verifier_events`` + ``verifier_outbox`` — events for the stream, and the deliveries (webhooks, TAM block calls)
  written in the same transaction as the change that caused them, so a crash loses none.
* ``verifier_event_logs`` (content-addressed) and ``verifier_ima_logs`` + ``verifier_ima_chunks`` — the evidence
  bound to a quote, kept to learn a policy from a known-good node (the IMA text in chunks, one per round, so a round
  appends a small row instead of rewriting the node's whole list).
* ``verifier_secrets`` — secrets every replica shares (the key that authenticates push challenges).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from veritee.appraisal.node_state import NodeEvent, NodeState
from veritee.store.base import Base, Timestamped, UtcDateTime

__all__ = [
    "DeliveryKind",
    "HistoryKind",
    "NodeMode",
    "VerifierEvent",
    "VerifierEventLog",
    "VerifierGroup",
    "VerifierHistory",
    "VerifierImaChunk",
    "VerifierImaLog",
    "VerifierNode",
    "VerifierOutbox",
    "VerifierPolicy",
    "VerifierReplica",
    "VerifierSecret",
]


class NodeMode(enum.StrEnum):
    """Who starts an attestation round: the verifier (pull, it POSTs to the node's agent) or the node (push)."""

    PULL = "pull"
    PUSH = "push"


class HistoryKind(enum.StrEnum):
    """What a history record is about."""

    REGISTRATION = "registration"
    APPRAISAL = "appraisal"
    UNREACHABLE = "unreachable"
    ADMIN = "admin"


class DeliveryKind(enum.StrEnum):
    """What an outbox row delivers."""

    WEBHOOK = "webhook"
    TAM_BLOCK = "tam-block"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda c: [m.value for m in c])


class VerifierNode(Timestamped, Base):
    __tablename__ = "verifier_nodes"

    node_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ek_public: Mapped[bytes] = mapped_column(LargeBinary)
    ek_cert: Mapped[bytes | None] = mapped_column(LargeBinary)
    ak_public: Mapped[bytes] = mapped_column(LargeBinary)
    ak_name: Mapped[bytes] = mapped_column(LargeBinary)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agent_url: Mapped[str | None] = mapped_column(String(2000))
    mode: Mapped[NodeMode] = mapped_column(_enum(NodeMode))
    group_name: Mapped[str | None] = mapped_column(String(200), index=True)
    policy_name: Mapped[str | None] = mapped_column(String(200))
    interval_s: Mapped[float | None] = mapped_column(Float)
    state: Mapped[NodeState] = mapped_column(_enum(NodeState), default=NodeState.REGISTERED, index=True)
    # registration: a node is attested only once it proved its AK (activated) and while the AK is not revoked
    activated: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ak_revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    challenge_id: Mapped[str | None] = mapped_column(String(64))
    challenge_secret_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    challenge_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    pending_registration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # incremental appraisal state (what the next round needs)
    round: Mapped[int] = mapped_column(Integer, default=0)
    clock: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ima_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    event_log_digest: Mapped[str | None] = mapped_column(String(64))
    boot_pcrs_digest: Mapped[str | None] = mapped_column(String(64))
    want_full: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_challenges: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # outcome and schedule
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_attested_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_passed: Mapped[bool | None] = mapped_column(Boolean)
    last_policy_id: Mapped[str | None] = mapped_column(String(200))
    next_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    tam_blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # lease held by one verifier replica
    lease_owner: Mapped[str | None] = mapped_column(String(100), index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # head of the hash-chained history
    history_seq: Mapped[int] = mapped_column(Integer, default=0)
    history_head: Mapped[str] = mapped_column(String(64), default="0" * 64)


class VerifierPolicy(Base):
    """A named policy document (veritee.policy format); ``version`` grows with each change."""

    __tablename__ = "verifier_policies"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_id: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class VerifierGroup(Base):
    """A node group: the policy (and interval) of its nodes that have none of their own."""

    __tablename__ = "verifier_groups"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    policy_name: Mapped[str | None] = mapped_column(String(200))
    interval_s: Mapped[float | None] = mapped_column(Float)


class VerifierHistory(Base):
    """One record of a node's history; ``record_hash`` = SHA-256(prev_hash || canonical record)."""

    __tablename__ = "verifier_history"
    __table_args__ = (UniqueConstraint("node_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(200), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[HistoryKind] = mapped_column(_enum(HistoryKind))
    state: Mapped[NodeState] = mapped_column(_enum(NodeState))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    policy_id: Mapped[str | None] = mapped_column(String(200))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ear: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))


class VerifierEvent(Base):
    """An event (node.untrusted, node.recovered, ...) for the event stream; ids only grow."""

    __tablename__ = "verifier_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[NodeEvent] = mapped_column(_enum(NodeEvent))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    previous_state: Mapped[NodeState | None] = mapped_column(_enum(NodeState))
    state: Mapped[NodeState] = mapped_column(_enum(NodeState))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VerifierOutbox(Base):
    """A delivery to make (webhook POST, TAM block), retried with back-off until it succeeds or gives up."""

    __tablename__ = "verifier_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("verifier_events.id", ondelete="SET NULL"))
    kind: Mapped[DeliveryKind] = mapped_column(_enum(DeliveryKind))
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    event: Mapped[VerifierEvent | None] = relationship()


class VerifierEventLog(Base):
    """A firmware event log, stored once by its SHA-256 however many nodes booted with it."""

    __tablename__ = "verifier_event_logs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class VerifierImaLog(Base):
    """The IMA lines of a node's current boot that a quote has bound so far (lines 0 .. lines-1); the text is in
    :class:`VerifierImaChunk` rows."""

    __tablename__ = "verifier_ima_logs"

    node_id: Mapped[str] = mapped_column(ForeignKey("verifier_nodes.node_id", ondelete="CASCADE"), primary_key=True)
    reset_count: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class VerifierImaChunk(Base):
    """Lines ``start_line .. start_line + lines - 1`` of a node's kept IMA list (complete lines, each ending in a
    newline); the chunks of a node, in ``start_line`` order, are its kept list without gap or overlap."""

    __tablename__ = "verifier_ima_chunks"

    node_id: Mapped[str] = mapped_column(ForeignKey("verifier_ima_logs.node_id", ondelete="CASCADE"), primary_key=True)
    start_line: Mapped[int] = mapped_column(Integer, primary_key=True)
    lines: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)


class VerifierReplica(Base):
    """A running verifier replica and its heartbeat (how replicas share the nodes fairly)."""

    __tablename__ = "verifier_replicas"

    replica_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VerifierSecret(Base):
    """A secret shared by every replica (created once by whichever replica needs it first)."""

    __tablename__ = "verifier_secrets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

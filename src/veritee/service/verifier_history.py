"""The hash-chained attestation history of each node: append a record, verify the chain.

Record ``seq`` of a node stores ``prev_hash`` (the previous record's hash; 64 zeros for the first) and
``record_hash = SHA-256(bytes(prev_hash) || canonical JSON of the record)``. The node row keeps the head (last seq and
hash), so removing the newest records is detected as well as editing or removing any other. Verification recomputes
everything from the stored columns and names the first record that does not fit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeState
from veritee.errors import NotFoundError, VerificationError
from veritee.service.verifier_codec import canonical_json
from veritee.store.db import Database
from veritee.store.verifier_models import HistoryKind, VerifierHistory, VerifierNode

__all__ = [
    "GENESIS",
    "ChainReport",
    "HistoryChainError",
    "StoredRecord",
    "append_record",
    "canonical_record",
    "record_hash",
    "record_values",
    "verify_chain",
    "verify_node_history",
]

GENESIS = "0" * 64


class HistoryChainError(VerificationError):
    """The history of a node does not verify; ``seq`` is the first record that does not fit (None: the node's
    head does not match the last record)."""

    def __init__(self, node_id: str, seq: int | None, reason: str) -> None:
        self.node_id = node_id
        self.seq = seq
        self.reason = reason
        where = f"record {seq}" if seq is not None else "head"
        super().__init__(f"history of {node_id}: {where}: {reason}")


@dataclass(frozen=True, slots=True)
class ChainReport:
    """A verified chain: how many records, and the head hash."""

    node_id: str
    records: int
    head: str


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def canonical_record(
    *,
    node_id: str,
    seq: int,
    at: datetime,
    kind: HistoryKind,
    state: NodeState,
    passed: bool | None,
    policy_id: str | None,
    findings: Sequence[Mapping[str, Any]],
    ear: str | None,
    detail: Mapping[str, Any],
) -> bytes:
    """The bytes a record's hash covers (every stored column but the hashes and the row id)."""
    return canonical_json(
        {
            "node_id": node_id,
            "seq": seq,
            "at": _iso(at),
            "kind": kind.value,
            "state": state.value,
            "passed": passed,
            "policy_id": policy_id,
            "findings": list(findings),
            "ear": ear,
            "detail": dict(detail),
        }
    )


def record_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A history row as stored, with the enum columns kept as text (an edited value must not stop the check)."""

    node_id: str
    seq: int
    at: datetime
    kind: str
    state: str
    passed: bool | None
    policy_id: str | None
    findings: Any
    ear: str | None
    detail: Any
    prev_hash: str
    record_hash: str


def _canonical_of(row: StoredRecord) -> bytes:
    return canonical_record(
        node_id=row.node_id,
        seq=row.seq,
        at=row.at,
        kind=HistoryKind(row.kind),
        state=NodeState(row.state),
        passed=row.passed,
        policy_id=row.policy_id,
        findings=row.findings or [],
        ear=row.ear,
        detail=row.detail or {},
    )


def record_values(
    *,
    node_id: str,
    seq: int,
    prev: str,
    at: datetime,
    kind: HistoryKind,
    state: NodeState,
    passed: bool | None = None,
    policy_id: str | None = None,
    findings: Sequence[Mapping[str, Any]] = (),
    ear: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns of record ``seq`` of a node whose previous record hash is ``prev`` (hashes included)."""
    findings_list, detail_dict = list(findings), dict(detail or {})
    body = canonical_record(
        node_id=node_id,
        seq=seq,
        at=at,
        kind=kind,
        state=state,
        passed=passed,
        policy_id=policy_id,
        findings=findings_list,
        ear=ear,
        detail=detail_dict,
    )
    return {
        "node_id": node_id,
        "seq": seq,
        "at": at,
        "kind": kind,
        "state": state,
        "passed": passed,
        "policy_id": policy_id,
        "findings": findings_list,
        "ear": ear,
        "detail": detail_dict,
        "prev_hash": prev,
        "record_hash": record_hash(prev, body),
    }


def append_record(
    session: Session,
    node: VerifierNode,
    *,
    at: datetime,
    kind: HistoryKind,
    passed: bool | None = None,
    policy_id: str | None = None,
    findings: Sequence[Mapping[str, Any]] = (),
    ear: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> VerifierHistory:
    """Add the node's next record (state = the node's current state) and move the node's head to it.

    The caller holds the node row (locked on PostgreSQL) in the same transaction."""
    values = record_values(
        node_id=node.node_id,
        seq=node.history_seq + 1,
        prev=node.history_head or GENESIS,
        at=at,
        kind=kind,
        state=NodeState(node.state),
        passed=passed,
        policy_id=policy_id,
        findings=findings,
        ear=ear,
        detail=detail,
    )
    row = VerifierHistory(**values)
    session.add(row)
    node.history_seq = values["seq"]
    node.history_head = values["record_hash"]
    return row


def _valid_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_chain(node_id: str, rows: Iterable[StoredRecord], head_seq: int, head_hash: str) -> ChainReport:
    """Check ``rows`` (in seq order) as the complete history of ``node_id`` ending at the given head."""
    expected_prev = GENESIS
    count = 0
    iterator = iter(rows)
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            break
        except (ValueError, TypeError, LookupError) as exc:  # a column that no longer loads
            raise HistoryChainError(node_id, count + 1, f"cannot be read: {exc}") from None
        count += 1
        if row.node_id != node_id:
            raise HistoryChainError(node_id, row.seq, f"belongs to node {row.node_id!r}")
        if row.seq != count:
            raise HistoryChainError(node_id, count, f"missing (the next stored record is {row.seq})")
        if not _valid_hex(row.prev_hash) or not hmac.compare_digest(row.prev_hash, expected_prev):
            raise HistoryChainError(node_id, row.seq, "prev_hash is not the previous record's hash")
        try:
            computed = record_hash(expected_prev, _canonical_of(row))
        except (ValueError, TypeError) as exc:  # a column edited into something that has no canonical form
            raise HistoryChainError(node_id, row.seq, f"cannot be re-encoded: {exc}") from None
        if not _valid_hex(row.record_hash) or not hmac.compare_digest(computed, row.record_hash):
            raise HistoryChainError(node_id, row.seq, "content does not match its hash (the record was altered)")
        expected_prev = row.record_hash
    if count != head_seq:
        raise HistoryChainError(node_id, None, f"the node's head is record {head_seq} but {count} records exist")
    if not hmac.compare_digest(expected_prev, head_hash or GENESIS):
        raise HistoryChainError(node_id, None, "the node's head hash is not the last record's hash")
    return ChainReport(node_id, count, expected_prev)


def verify_node_history(db: Database, node_id: str) -> ChainReport:
    """Load and verify the whole history of a node; NotFoundError if the node is unknown."""
    with db.transaction() as session:
        node = session.get(VerifierNode, node_id)
        if node is None:
            raise NotFoundError(f"no node {node_id!r}")
        h = VerifierHistory.__table__.c
        query = (
            select(
                h.node_id,
                h.seq,
                h.at,
                type_coerce(h.kind, String),
                type_coerce(h.state, String),
                h.passed,
                h.policy_id,
                h.findings,
                h.ear,
                h.detail,
                h.prev_hash,
                h.record_hash,
            )
            .where(h.node_id == node_id)
            .order_by(h.seq)
        )
        rows = (StoredRecord(*row) for row in session.execute(query))
        return verify_chain(node_id, rows, node.history_seq, node.history_head)

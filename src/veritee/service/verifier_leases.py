"""Leases: how verifier replicas sharing one PostgreSQL database split the nodes, and take over a dead one's.

Every tick a replica (1) records its heartbeat, (2) renews the leases it holds, (3) computes its fair share —
attestable nodes divided by live replicas (those with a heartbeat within one lease period), rounded up — and claims
free or expired leases up to it (``FOR UPDATE SKIP LOCKED``: replicas never wait for each other), or gives back what
it holds beyond it. A replica that dies stops renewing; its leases expire after ``lease_s`` and the others claim
them on their next tick. On SQLite a single process holds every node.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from veritee.service.verifier_config import VerifierConfig
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import VerifierNode
from veritee.store.verifier_repo import (
    claim_nodes,
    count_attestable,
    due_nodes,
    heartbeat,
    held_count,
    live_replicas,
    release_leases,
    release_some,
    renew_leases,
)

__all__ = ["LeaseManager", "LeaseReport"]


@dataclass(frozen=True, slots=True)
class LeaseReport:
    held: int
    claimed: int
    released: int
    replicas: int
    share: int


class LeaseManager:
    """The leases of one replica (``config.replica_id``)."""

    def __init__(self, db: Database, config: VerifierConfig, *, now: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.config = config
        self.owner = config.replica_id
        self._now = now
        self._single = db.dialect != "postgresql"

    def refresh(self) -> LeaseReport:
        """Heartbeat, renew, then claim up to (or release down to) the fair share."""
        now = self._now()
        lease = timedelta(seconds=self.config.lease_s)
        until = now + lease
        with self.db.transaction() as session:
            heartbeat(session, self.owner, now, {"host": socket.gethostname(), "pid": os.getpid()})
        with self.db.transaction() as session:
            renew_leases(session, self.owner, until)
            replicas = 1 if self._single else max(1, live_replicas(session, now - lease))
            total = count_attestable(session)
            held = held_count(session, self.owner)
        share = total if self._single else math.ceil(total / replicas)
        claimed = released = 0
        if held < share:
            with self.db.transaction() as session:
                claimed = len(claim_nodes(session, self.owner, now, until, share - held))
        elif held > share + max(1, share // 10):
            with self.db.transaction() as session:
                released = release_some(session, self.owner, held - share)
        return LeaseReport(held + claimed - released, claimed, released, replicas, share)

    def due(self, limit: int, exclude: Iterable[str] = ()) -> list[VerifierNode]:
        """Held nodes whose round or deadline has come (detached rows: read their fields only)."""
        with self.db.transaction() as session:
            return due_nodes(session, self.owner, self._now(), limit, exclude)

    def release_all(self) -> int:
        """Give every lease back (a clean shutdown: the other replicas take over at once)."""
        with self.db.transaction() as session:
            return release_leases(session, self.owner)

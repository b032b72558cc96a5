"""The verifier's view of the database: writers in turn on SQLite, reads that never wait for them.

SQLite allows one writer, and a transaction that read before another committed cannot write after it (WAL
snapshot), so on SQLite the verifier's write transactions run one at a time in this process. Reads that write
nothing (:func:`reading`: a plain connection, no ORM session) need no turn: in WAL mode they see the last commit
and never block or get blocked.
PostgreSQL needs neither (row locks and MVCC).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from veritee.errors import StorageError
from veritee.store.db import Database

__all__ = ["SerializedDatabase", "reading", "serialized"]


class SerializedDatabase(Database):
    """The same engine and sessions, one transaction at a time in this process."""

    def __init__(self, inner: Database) -> None:  # shares the inner database's engine and session factory
        self.__dict__.update(inner.__dict__)
        self._serial = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._serial, super().transaction() as session:
            yield session


def serialized(db: Database) -> Database:
    """``db`` itself on PostgreSQL; on SQLite a view of it whose transactions run one at a time."""
    if db.dialect == "sqlite" and not isinstance(db, SerializedDatabase):
        return SerializedDatabase(db)
    return db


@contextmanager
def reading(db: Database) -> Iterator[Connection]:
    """A connection for reads only (it must write nothing; never in the writers' turn), returned to the pool
    after the block; a database error is a StorageError."""
    try:
        with db.engine.connect() as connection:
            yield connection
    except OperationalError as exc:
        raise StorageError(f"database error: {exc.orig}") from exc

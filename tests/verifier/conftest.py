from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from verifier_support import ServiceFactory, TestCa, make_config

from helpers import drop_postgres_database, fresh_postgres_database, postgres_url
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig

VERIFIER_TABLES = (
    "verifier_outbox",
    "verifier_events",
    "verifier_ima_logs",
    "verifier_history",
    "verifier_nodes",
    "verifier_policies",
    "verifier_groups",
    "verifier_event_logs",
    "verifier_replicas",
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like the ``db_url`` fixture, but one database of each kind per test module (creating a PostgreSQL database
    per test costs seconds); :func:`database` empties the verifier tables after each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('verifier') / 'veritee.db'}"
        return
    base = postgres_url()
    name = f"veritee_vtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = fresh_postgres_database(base, name)
    try:
        yield url
    finally:
        drop_postgres_database(base, name)


@pytest.fixture
def database(module_db_url: str) -> Iterator[Database]:
    """A migrated verifier database (SQLite and PostgreSQL), emptied after the test."""
    db = Database(DatabaseConfig(url=module_db_url))
    db.upgrade()
    try:
        yield db
    finally:
        with db.transaction() as session:
            for table in VERIFIER_TABLES:
                session.execute(text(f"DELETE FROM {table}"))
        db.dispose()


@pytest.fixture(scope="session")
def ca() -> TestCa:
    return TestCa()


@pytest.fixture
def make_service(database: Database, ca: TestCa) -> Iterator[ServiceFactory]:
    made: list[VerifierService] = []

    def factory(now: Callable[[], datetime] | None = None, **overrides: Any) -> VerifierService:
        extra: dict[str, Any] = {} if now is None else {"now": now}
        service = VerifierService(database, make_config(ca, **overrides), **extra)
        made.append(service)
        return service

    yield factory
    for service in made:
        service.stop_background(release_leases=False)

"""Storage foundation on SQLite and PostgreSQL: migrations, schema drift, transactions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from veritee.errors import ConfigError, ConflictError
from veritee.store.base import Base
from veritee.store.db import Database, DatabaseConfig
from veritee.store.models import Device, TcSigner


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(DatabaseConfig(url=db_url))
    database.upgrade()
    yield database
    database.dispose()


def test_migrations_create_every_table_and_match_the_models(db: Database) -> None:
    assert set(Base.metadata.tables) <= set(db.table_names())
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_downgrade_to_base_and_up_again(db: Database) -> None:
    db.downgrade("base")
    assert set(db.table_names()) <= {"alembic_version"}
    db.upgrade()
    assert "devices" in db.table_names()


def test_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as s:
        s.add(TcSigner(name="a", public_key_pem="pem", thumbprint="t1"))
        s.flush()
        raise RuntimeError("boom")
    with db.transaction() as s:
        assert s.scalars(select(TcSigner)).all() == []


def test_unique_violation_is_a_typed_conflict_and_rolls_back(db: Database) -> None:
    with db.transaction() as s:
        s.add(TcSigner(name="a", public_key_pem="pem", thumbprint="t1"))
    with pytest.raises(ConflictError), db.transaction() as s:
        s.add(TcSigner(name="b", public_key_pem="pem", thumbprint="t2"))
        s.add(TcSigner(name="a", public_key_pem="pem", thumbprint="t3"))
    with db.transaction() as s:
        assert [x.name for x in s.scalars(select(TcSigner))] == ["a"]


def test_datetimes_come_back_aware_utc(db: Database) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with db.transaction() as s:
        s.add(Device(key_thumbprint="k", cose_key=b"\xa0", attributes={"site": "x"}, last_seen_at=moment))
    with db.transaction() as s:
        device = s.scalars(select(Device)).one()
        assert device.last_seen_at == moment
        assert device.last_seen_at is not None and device.last_seen_at.tzinfo is not None
        assert device.last_seen_at.utcoffset() == timedelta(0) or device.last_seen_at.tzinfo == UTC
        assert device.attributes == {"site": "x"}


def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Database(DatabaseConfig(url="mysql://x/y"))

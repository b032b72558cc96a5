"""Database engine, sessions and migrations. SQLite by default, PostgreSQL by URL.

``Database(DatabaseConfig(url=...))`` owns the engine and the session factory; ``db.upgrade()`` brings the schema to the
newest Alembic revision. Callers hold sessions only through :meth:`Database.transaction`, which commits on success and
rolls back on any error, so a failed operation leaves no partial state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from veritee.errors import ConfigError, ConflictError, StorageError

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///veritee.db"
    echo: bool = False
    pool_size: int = 10
    sqlite_busy_timeout_ms: int = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(config: DatabaseConfig) -> Engine:
    url = config.url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=config.echo, connect_args={"timeout": config.sqlite_busy_timeout_ms / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql+psycopg://"):
        return create_engine(url, echo=config.echo, pool_size=config.pool_size, pool_pre_ping=True)
    raise ConfigError(f"unsupported database URL {config.url!r}: use sqlite:///PATH or postgresql://...")


class Database:
    """An engine plus a session factory; the single entry point to storage."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.engine = make_engine(config)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.engine.url.render_as_string(hide_password=False))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision``."""
        with self.engine.begin() as connection:
            cfg = self.alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def downgrade(self, revision: str) -> None:
        with self.engine.begin() as connection:
            cfg = self.alembic_config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, revision)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends normally, rolled back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise ConflictError(f"conflicts with stored data: {exc.orig}") from exc
        except OperationalError as exc:
            session.rollback()
            raise StorageError(f"database error: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

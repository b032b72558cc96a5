from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import drop_postgres_database, fresh_postgres_database, postgres_url, shared_path


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    return shared_path("vectors")


@pytest.fixture(scope="session")
def shared_tpm() -> Path:
    return shared_path("tpm")


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: a SQLite file, and a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'veritee.db'}"
        return
    base = postgres_url()
    name = f"veritee_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = fresh_postgres_database(base, name)
    try:
        yield url
    finally:
        drop_postgres_database(base, name)

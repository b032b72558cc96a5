"""Test helpers shared by every test module: where ../shared is, PostgreSQL availability."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """The read-only ../shared folder beside the repository (override with VERITEE_SHARED)."""
    return Path(os.environ.get("VERITEE_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; skips the calling test with a clear reason when it is absent."""
    root = shared_root()
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (expected ../shared beside the repo root {REPO_ROOT})")
    return path


def read_hex(path: Path) -> bytes:
    """Bytes of a .hex vector file (whitespace ignored)."""
    return bytes.fromhex("".join(path.read_text().split()))


PG_DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The PostgreSQL URL for storage tests; skips (or fails under CI's VERITEE_REQUIRE_POSTGRES=1) if unreachable."""
    url = os.environ.get("VERITEE_TEST_PG_URL", PG_DEFAULT_URL)
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=3).close()
    except OSError as exc:
        message = f"PostgreSQL not reachable at {parsed.hostname}:{parsed.port or 5432}: {exc}"
        if os.environ.get("VERITEE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " (VERITEE_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    return url


def fresh_postgres_database(base_url: str, name: str) -> str:
    """Create an empty PostgreSQL database ``name`` (dropping an older one) and return its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(base_url: str, name: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()

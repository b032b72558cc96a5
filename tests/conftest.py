from __future__ import annotations

from pathlib import Path

import pytest

from helpers import postgres_url, shared_path


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    return shared_path("vectors")


@pytest.fixture(scope="session")
def shared_tpm() -> Path:
    return shared_path("tpm")


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url()

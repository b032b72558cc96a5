"""Fixtures of the TEEP Agent / Broker / software TEE tests: keys, a TEE, a loopback TAM on one shared server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_tam import Dispatch, LoopbackTam, ServerThread
from agent_world import APP, Keys

from veritee.service.tee import SoftTee
from veritee.service.tee_crypto import StaticMasterKey


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def tee(tmp_path: Path) -> SoftTee:
    return SoftTee(tmp_path / "tee", StaticMasterKey(bytes(range(32))))


@pytest.fixture
def tam(keys: Keys) -> LoopbackTam:
    return LoopbackTam(keys.tam_config(), (keys.attester.public(),), catalog={APP: keys.envelope(1)})


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[ServerThread, Dispatch]]:
    dispatch = Dispatch()
    server = ServerThread(dispatch).start()
    try:
        yield server, dispatch
    finally:
        server.stop()


@pytest.fixture
def url(loopback: tuple[ServerThread, Dispatch], tam: LoopbackTam) -> Iterator[str]:
    """The URL of ``tam`` served over HTTP on loopback."""
    server, dispatch = loopback
    dispatch.target = tam.app
    try:
        yield server.url
    finally:
        dispatch.target = None

"""Leases on PostgreSQL: two verifier replicas (separate processes running ``veritee verifier serve``) share the
nodes; one is killed with SIGKILL mid-run; the other takes its nodes over and no node goes unattested for longer
than interval + lease (plus the loop's tick and a round's own time)."""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select as sql_select
from verifier_support import AgentServer, SoftNode, TestCa, make_config

from helpers import drop_postgres_database, fresh_postgres_database, postgres_url
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig
from veritee.store.verifier_models import HistoryKind, VerifierHistory, VerifierNode

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

INTERVAL = 1.0
LEASE = 1.5
TICK = 0.1
NODES = 12
SLACK = TICK + 0.9  # the tick at which the take-over happens, and the round itself (on a busy machine)


@pytest.fixture
def pg_database() -> Iterator[str]:
    base = postgres_url()
    name = f"veritee_lease_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = fresh_postgres_database(base, name)
    try:
        yield url
    finally:
        drop_postgres_database(base, name)


def _replica(url: str, ca_file: Path, name: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "veritee.cli.verifier", "serve", "--db", url, "--port", "0", "--ca", str(ca_file),
        "--interval", str(INTERVAL), "--lease", str(LEASE), "--tick", str(TICK), "--replica-id", name, "--json",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _await_start(process: subprocess.Popen[str], name: str) -> None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    if not ready:
        process.kill()
        raise AssertionError(f"replica {name} did not start")
    line = process.stdout.readline()
    assert json.loads(line)["replica_id"] == name, line


def _owners(db: Database) -> dict[str, str | None]:
    with db.transaction() as session:
        return {n.node_id: n.lease_owner for n in session.scalars(sql_select(VerifierNode))}


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_killed_replicas_nodes_are_taken_over(pg_database: str, tmp_path: Path, ca: TestCa) -> None:
    db = Database(DatabaseConfig(url=pg_database))
    db.upgrade()
    ca_file = tmp_path / "ek-ca.pem"
    ca_file.write_bytes(ca.pem)
    registrar = VerifierService(db, make_config(ca))
    with AgentServer().running() as agent:
        for index in range(NODES):
            node = SoftNode(f"node-{index:02d}", ca)
            node.measure("/usr/bin/init")
            challenge = registrar.register(node.registration(agent.add(node)))
            registrar.activate(node.node_id, node.activate_credential(challenge))
        first = _replica(pg_database, ca_file, "replica-a")
        second = _replica(pg_database, ca_file, "replica-b")
        try:
            _await_start(first, "replica-a")
            _await_start(second, "replica-b")
            time.sleep(3.0)
            owners = _owners(db)
            shared = {owner: sum(1 for o in owners.values() if o == owner) for owner in ("replica-a", "replica-b")}
            assert shared["replica-a"] > 0 and shared["replica-b"] > 0, owners  # the fleet is split
            killed_at = time.monotonic()
            first.send_signal(signal.SIGKILL)
            first.wait()
            time.sleep(INTERVAL + LEASE + 2.0)
            assert set(_owners(db).values()) == {"replica-b"}  # every node was taken over
            elapsed = time.monotonic() - killed_at
        finally:
            for process in (first, second):
                _stop(process)
    assert elapsed > INTERVAL + LEASE
    with db.transaction() as session:
        rows = session.scalars(
            sql_select(VerifierHistory)
            .where(VerifierHistory.kind == HistoryKind.APPRAISAL)
            .order_by(VerifierHistory.node_id, VerifierHistory.seq)
        ).all()
        times: dict[str, list[float]] = {}
        for row in rows:
            times.setdefault(row.node_id, []).append(row.at.timestamp())
    db.dispose()
    assert len(times) == NODES
    worst = max(b - a for stamps in times.values() for a, b in itertools.pairwise(stamps))
    assert worst <= INTERVAL + LEASE + SLACK, f"a node went {worst:.2f} s without an appraisal"
    assert min(len(stamps) for stamps in times.values()) >= 3
    assert all(row.passed for row in rows)

"""The hash-chained history: every change is a record, the chain verifies, and editing the database is detected
(naming the first bad record), through the service, the API and ``veritee history verify``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from typer.testing import CliRunner
from verifier_support import SoftNode, TestCa, make_config

from veritee.cli import history as history_cli
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_history import HistoryChainError, verify_node_history
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database


@pytest.fixture
def fresh(database: Database, module_db_url: str, ca: TestCa) -> Iterator[tuple[str, VerifierService]]:
    """A verifier with a node and seven history records (SQLite and PostgreSQL)."""
    service = VerifierService(database, make_config(ca))
    node = SoftNode("node-1", ca)
    service.activate("node-1", node.activate_credential(service.register(node.registration())))
    for index in range(5):
        node.measure(f"/usr/bin/tool{index}")
        if index == 2:
            node.answer_hook = _forge
        service.push_evidence("node-1", node.answer(service.challenge("node-1")))
        node.answer_hook = None
    service.admin.quarantine("node-1", "audit")
    yield module_db_url, service


def _forge(_node: SoftNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
    return NodeEvidence(evidence.nonce, evidence.quote, evidence.signature[:-2] + b"\x00\x00", evidence.pcrs, None,
                        evidence.ima_offset, evidence.ima_entries)  # fmt: skip


def _sql(service: VerifierService, statement: str) -> None:
    with service.db.transaction() as session:
        session.execute(text(statement))


def test_the_chain_verifies(fresh: tuple[str, VerifierService]) -> None:
    url, service = fresh
    report = verify_node_history(service.db, "node-1")
    assert report.records == 7
    records = service.admin.history("node-1", limit=100)
    assert [r["kind"] for r in reversed(records)] == ["registration"] + ["appraisal"] * 5 + ["admin"]
    assert [r["passed"] for r in reversed(records)][1:6] == [True, True, False, True, True]
    assert records[0]["record_hash"] == report.head
    assert all(a["prev_hash"] == b["record_hash"] for a, b in itertools.pairwise(records))
    assert records[3]["ear"].count(".") == 2  # the signed EAR is kept with each appraisal
    result = CliRunner().invoke(history_cli.app, ["verify", "node-1", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"node_id": "node-1", "intact": True, "records": 7, "head": report.head}


@pytest.mark.parametrize(
    ("statement", "seq"),
    [
        ("UPDATE verifier_history SET passed = TRUE WHERE node_id = 'node-1' AND seq = 4", 4),  # hide a failure
        ("UPDATE verifier_history SET findings = '[]' WHERE node_id = 'node-1' AND seq = 4", 4),
        ("UPDATE verifier_history SET at = at - INTERVAL '1 hour' WHERE seq = 2", 2),
        ("UPDATE verifier_history SET state = 'bogus' WHERE seq = 3", 3),
        ("DELETE FROM verifier_history WHERE node_id = 'node-1' AND seq = 5", 5),
        ("DELETE FROM verifier_history WHERE node_id = 'node-1' AND seq = 7", None),  # the newest record
        ("UPDATE verifier_nodes SET history_head = repeat('0', 64)", None),
    ],
)
def test_editing_the_database_is_detected(fresh: tuple[str, VerifierService], statement: str, seq: int | None) -> None:
    url, service = fresh
    if service.db.dialect == "sqlite":
        statement = statement.replace("TRUE", "1").replace("at - INTERVAL '1 hour'", "'2020-01-01 00:00:00.000000'")
        statement = statement.replace("repeat('0', 64)", "'" + "0" * 64 + "'")
    _sql(service, statement)
    with pytest.raises(HistoryChainError) as caught:
        verify_node_history(service.db, "node-1")
    assert caught.value.seq == seq
    result = CliRunner().invoke(history_cli.app, ["verify", "node-1", "--db", url])
    assert result.exit_code == 1
    where = f"record {seq}" if seq is not None else "the node's head"
    assert f"history BROKEN at {where}" in result.output
    shown = CliRunner().invoke(history_cli.app, ["verify", "node-1", "--db", url, "--json"])
    assert json.loads(shown.output)["first_bad_record"] == seq


def test_history_cli_show_and_errors(fresh: tuple[str, VerifierService]) -> None:
    url, _ = fresh
    shown = CliRunner().invoke(history_cli.app, ["show", "node-1", "--db", url, "--limit", "3"])
    assert shown.exit_code == 0
    lines = shown.output.strip().splitlines()
    assert len(lines) == 3 and "admin" in lines[0] and "passed" in lines[1]
    data = json.loads(CliRunner().invoke(history_cli.app, ["show", "node-1", "--db", url, "--json"]).output)
    assert [r["seq"] for r in data["records"]] == [7, 6, 5, 4, 3, 2, 1]
    missing = CliRunner().invoke(history_cli.app, ["verify", "ghost", "--db", url, "--json"])
    assert missing.exit_code == 2 and json.loads(missing.output)["error"]["type"] == "NotFoundError"

"""Events through the outbox: webhooks with retries, survival across a restart, giving up; remediation actions
including the TAM block call."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select
from verifier_support import Receiver, ServiceFactory, SoftNode, TestCa, enroll

from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_config import EvidenceRefusedError, RemediationAction
from veritee.service.verifier_service import VerifierService
from veritee.service.verifier_webhooks import DeliveryReport
from veritee.store.verifier_models import VerifierOutbox


def deliver_all(service: VerifierService, *, rounds: int = 40) -> DeliveryReport:
    """Run the dispatcher until nothing is pending (back-off delays are real, and short in these tests)."""
    total = DeliveryReport()
    for _ in range(rounds):
        report = asyncio.run(service.dispatcher.run_once())
        total.delivered += report.delivered
        total.failed += report.failed
        total.retrying += report.retrying
        with service.db.transaction() as session:
            rows = session.scalars(select(VerifierOutbox)).all()
            if all(row.delivered_at is not None or row.failed_at is not None for row in rows):
                return total
        time.sleep(0.03)
    raise AssertionError("deliveries still pending")


def push(service: VerifierService, node: SoftNode) -> dict[str, object]:
    return service.push_evidence(node.node_id, node.answer(service.challenge(node.node_id)))


def _break(_node: SoftNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
    return NodeEvidence(evidence.nonce, evidence.quote, evidence.signature[:-1] + b"\x00", evidence.pcrs, None,
                        evidence.ima_offset, evidence.ima_entries)  # fmt: skip


def test_webhooks_are_delivered_in_order_with_retries(make_service: ServiceFactory, ca: TestCa) -> None:
    receiver = Receiver(fail_first=2)
    with receiver.running() as url:
        service = make_service(webhooks=(url + "/hook",))
        node = SoftNode("node-1", ca)
        enroll(service, node)
        push(service, node)
        node.answer_hook = _break
        push(service, node)
        report = deliver_all(service)
    assert receiver.attempts == len(receiver.received) + 2
    assert [r.body["kind"] for r in receiver.received] == ["node.registered", "node.trusted", "node.untrusted"]
    assert len(report.delivered) == 3 and report.failed == []
    first = receiver.received[0]
    assert first.path == "/hook" and first.headers["x-veritee-event"] == "node.registered"
    assert first.headers["idempotency-key"] == f"veritee-event-{first.body['id']}"
    untrusted = receiver.received[2].body
    assert untrusted["previous_state"] == "trusted" and untrusted["state"] == "untrusted"
    assert "quote.signature_invalid" in untrusted["detail"]["findings"]


def test_undelivered_events_survive_a_restart(make_service: ServiceFactory, ca: TestCa) -> None:
    receiver = Receiver()
    with receiver.running() as url:
        crashed = make_service(webhooks=(url,))
        node = SoftNode("node-1", ca)
        enroll(crashed, node)
        push(crashed, node)
        del crashed  # gone before its dispatcher ran: the events are in the outbox, not in memory
        restarted = make_service(webhooks=(url,), replica_id="replica-2")
        deliver_all(restarted)
    assert [r.body["kind"] for r in receiver.received] == ["node.registered", "node.trusted"]


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (503, 3)])
def test_deliveries_give_up(make_service: ServiceFactory, ca: TestCa, status: int, attempts: int) -> None:
    receiver = Receiver(status=status, fail_first=0 if status == 400 else 99)
    with receiver.running() as url:
        service = make_service(webhooks=(url,), delivery_max_attempts=3)
        enroll(service, SoftNode("node-1", ca))
        report = deliver_all(service)
    assert len(report.failed) == 1 and report.delivered == []
    with service.db.transaction() as session:
        row = session.scalars(select(VerifierOutbox)).one()
        assert row.attempts == attempts and row.failed_at is not None and str(status) in (row.last_error or "")


def test_remediation_quarantines_revokes_blocks_and_notifies(make_service: ServiceFactory, ca: TestCa) -> None:
    receiver = Receiver()
    actions = frozenset(RemediationAction)
    with receiver.running() as url:
        service = make_service(remediation=actions, tam_url=url + "/tam", tam_token="tam-secret", webhooks=(url,))
        node = SoftNode("node-1", ca)
        enroll(service, node, tam_device_id="device-42")
        assert push(service, node)["state"] == "trusted"
        node.answer_hook = _break
        verdict = push(service, node)
        assert verdict["state"] == "quarantined" and verdict["passed"] is False
        deliver_all(service)
    blocks = [r for r in receiver.received if r.path.startswith("/tam")]
    assert len(blocks) == 1 and blocks[0].path == "/tam/admin/devices/device-42/block"
    assert blocks[0].headers["authorization"] == "Bearer tam-secret"
    assert "quote.signature_invalid" in blocks[0].body["reason"]
    hooks = [r.body["kind"] for r in receiver.received if not r.path.startswith("/tam")]
    assert hooks[-4:] == ["node.untrusted", "node.quarantined", "node.revoked", "node.appraisal_failed"]
    shown = service.admin.node("node-1")
    assert shown["state"] == "quarantined" and shown["ak_revoked"] and shown["tam_blocked_at"]
    assert service.admin.admission("node-1", "web").allow is False
    with pytest.raises(EvidenceRefusedError, match="revoked"):
        service.challenge("node-1")
    last = service.admin.history("node-1", limit=1)[0]
    assert last["detail"]["remediation"] == ["quarantine", "revoke", "tam-block", "notify"]
    # the operator releases it; the node must still register again before its evidence counts
    assert service.admin.release("node-1").value == "registered"
    with pytest.raises(EvidenceRefusedError):
        service.challenge("node-1")
    node.answer_hook = None
    enroll(service, node, tam_device_id="device-42")
    assert push(service, node)["state"] == "trusted"
    assert service.admin.admission("node-1", "web").allow is True

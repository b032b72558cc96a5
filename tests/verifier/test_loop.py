"""The attestation loop: pull rounds over HTTP, incremental IMA, unreachable and late nodes, reboots, the
background pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from verifier_support import AgentServer, FakeClock, ServiceFactory, SoftNode, TestCa, enroll

from veritee.appraisal.node_state import NodeState
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_events import events_since
from veritee.service.verifier_loop import TickReport
from veritee.service.verifier_service import VerifierService


@pytest.fixture
def agent() -> Iterator[AgentServer]:
    with AgentServer().running() as running:
        yield running


def tick(service: VerifierService) -> TickReport:
    return asyncio.run(service.loop.run_once())


def kinds(service: VerifierService, node_id: str | None = None) -> list[str]:
    return [e.kind.value for e in events_since(service.db, 0) if node_id is None or e.node_id == node_id]


def test_pull_rounds_are_incremental(make_service: ServiceFactory, ca: TestCa, agent: AgentServer) -> None:
    clock = FakeClock()
    service = make_service(now=clock, interval_s=30.0)
    nodes = [SoftNode(f"pull-{i}", ca) for i in range(3)]
    for node in nodes:
        for path in ("/usr/bin/bash", "/usr/lib/libc.so.6"):
            node.measure(path)
        enroll(service, node, agent.add(node))
    report = tick(service)
    assert sorted(report.attested) == ["pull-0", "pull-1", "pull-2"]
    assert tick(service).attested == []  # nobody is due before the interval
    nodes[0].measure("/usr/bin/python3")
    clock.advance(31)
    assert len(tick(service).attested) == 3
    first, second = nodes[0].challenges
    assert (first.ima_offset, first.want_event_log) == (0, True)
    assert (second.ima_offset, second.want_event_log) == (2, True)  # these nodes have no event log to keep
    assert first.nonce != second.nonce and len(second.nonce) == 32
    assert service.admin.node("pull-0")["ima_next_line"] == 3
    assert service.admin.node("pull-0")["state"] == "trusted"
    assert kinds(service, "pull-0") == ["node.registered", "node.trusted"]


def test_unreachable_and_recovered(make_service: ServiceFactory, ca: TestCa, agent: AgentServer) -> None:
    clock = FakeClock()
    service = make_service(now=clock)
    node = SoftNode("pull-0", ca)
    enroll(service, node, agent.add(node))
    tick(service)
    node.offline = True
    clock.advance(31)
    report = tick(service)
    assert report.unreachable == ["pull-0"]
    assert service.admin.node("pull-0")["state"] == "unreachable"
    clock.advance(31)
    assert tick(service).unreachable == ["pull-0"]  # still unreachable: recorded once, no new event
    node.offline = False
    clock.advance(31)
    assert tick(service).attested == ["pull-0"]
    assert kinds(service) == ["node.registered", "node.trusted", "node.unreachable", "node.recovered"]
    history = [r["kind"] for r in service.admin.history("pull-0")]
    assert history == ["appraisal", "unreachable", "appraisal", "registration"]


def test_bad_answers_fail_the_round(make_service: ServiceFactory, ca: TestCa, agent: AgentServer) -> None:
    clock = FakeClock()
    service = make_service(now=clock)
    node = SoftNode("pull-0", ca)
    enroll(service, node, agent.add(node))

    def forged(_node: SoftNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
        quote = bytearray(evidence.quote)
        quote[-1] ^= 1  # a PCR digest byte: the signature no longer covers it
        return NodeEvidence(evidence.nonce, bytes(quote), evidence.signature, evidence.pcrs, None, 0, "")

    node.answer_hook = forged
    tick(service)
    last = service.admin.history("pull-0", limit=1)[0]
    assert last["passed"] is False and "quote.signature_invalid" in [f["id"] for f in last["findings"]]
    assert service.admin.node("pull-0")["state"] == "untrusted"


def test_a_node_without_a_usable_policy_is_postponed(
    make_service: ServiceFactory, ca: TestCa, agent: AgentServer
) -> None:
    clock = FakeClock()
    service = make_service(now=clock)
    node = SoftNode("pull-0", ca)
    enroll(service, node, agent.add(node))
    service.admin.assign("pull-0", group=None, policy="missing", interval_s=None, fields=["policy"])
    service.policies.invalidate()
    assert tick(service).errors == ["pull-0"]
    assert tick(service).errors == []  # not retried at every tick
    clock.advance(31)
    assert tick(service).errors == ["pull-0"]
    assert service.admin.node("pull-0")["state"] == "registered" and node.challenges == []
    assert 'veritee_attestations_total{result="error"} 2.0' in service.metrics.render().decode()


def test_a_rebooted_pull_node_is_asked_again_from_line_zero(
    make_service: ServiceFactory, ca: TestCa, agent: AgentServer
) -> None:
    clock = FakeClock()
    service = make_service(now=clock)
    node = SoftNode("pull-0", ca)
    for path in ("/a", "/b", "/c"):
        node.measure(path)
    enroll(service, node, agent.add(node))
    tick(service)
    node.reboot()
    node.measure("/a")
    clock.advance(31)
    assert tick(service).attested == ["pull-0"]
    assert [c.ima_offset for c in node.challenges] == [0, 3, 0]
    last = service.admin.history("pull-0", limit=1)[0]
    assert last["passed"] is True and "quote.reset" in [f["id"] for f in last["findings"]]
    assert service.admin.node("pull-0")["ima_next_line"] == 1


def test_a_silent_push_node_becomes_unreachable(make_service: ServiceFactory, ca: TestCa) -> None:
    clock = FakeClock()
    service = make_service(now=clock, interval_s=30.0, late_grace_s=10.0)
    node = SoftNode("push-0", ca)
    enroll(service, node)
    challenge = service.challenge("push-0")
    assert service.push_evidence("push-0", node.answer(challenge))["state"] == "trusted"
    clock.advance(35)
    assert tick(service).unreachable == []  # within interval + grace
    clock.advance(10)
    assert tick(service).unreachable == ["push-0"]
    assert service.admin.node("push-0")["state"] == "unreachable"
    challenge = service.challenge("push-0")
    assert service.push_evidence("push-0", node.answer(challenge))["state"] == "trusted"
    assert kinds(service)[-2:] == ["node.unreachable", "node.recovered"]
    service.admin.quarantine("push-0")
    clock.advance(5)
    service.admin.release("push-0")
    assert tick(service).unreachable == []  # a released push node gets a whole interval to report


def test_the_background_pipeline_attests(make_service: ServiceFactory, ca: TestCa, agent: AgentServer) -> None:
    service = make_service(interval_s=0.3, lease_s=2.0, tick_s=0.05)
    nodes = [SoftNode(f"bg-{i}", ca) for i in range(4)]
    for node in nodes:
        enroll(service, node, agent.add(node))
    service.start_background()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(len(n.challenges) for n in nodes) < 3:
            time.sleep(0.05)
    finally:
        service.stop_background()
    assert min(len(n.challenges) for n in nodes) >= 3
    assert all(service.admin.node(n.node_id)["state"] == NodeState.TRUSTED.value for n in nodes)
    assert all(service.admin.node(n.node_id)["lease_owner"] is None for n in nodes)  # given back at stop

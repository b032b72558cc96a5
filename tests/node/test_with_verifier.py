"""The node agent on a simulated node against the real verifier service (SQLite, attestation loop running)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from node_support import AgentFactory
from node_verifier import free_port, serve

from helpers import shared_path
from veritee.appraisal.policy import PolicySet
from veritee.service.node_config import AgentMode
from veritee.service.simnode import SimulatedNode
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_policies import parse_boot_policy, parse_runtime_policy, put_policy
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig
from veritee.web.node_app import NodeServer
from veritee.web.verifier_app import create_verifier_app

pytestmark = pytest.mark.swtpm


@pytest.fixture
def interval() -> float:
    """The verifier's attestation interval: long for push nodes (a push round must not race the loop marking the node
    late), short where the verifier polls (pull mode overrides this fixture)."""
    return 30.0


@pytest.fixture
def service(tmp_path: Path, sim_node: SimulatedNode, interval: float) -> Iterator[VerifierService]:
    root = shared_path("tpm", "e2e-swtpm")
    db = Database(DatabaseConfig(url=f"sqlite:///{tmp_path / 'verifier.db'}"))
    db.upgrade()
    boot = parse_boot_policy((root / "mb_refstate.json").read_bytes())
    runtime = parse_runtime_policy((root / "runtime_policy.json").read_bytes())
    put_policy(db, PolicySet("default", boot, runtime))
    config = VerifierConfig(ek_ca_certs=(sim_node.process.ca_cert_pem,), interval_s=interval, lease_s=5.0, tick_s=0.05)
    verifier = VerifierService(db, config)
    verifier.start_background()
    try:
        yield verifier
    finally:
        verifier.stop_background()


@pytest.fixture
def url(service: VerifierService) -> Iterator[str]:
    with serve(create_verifier_app(service, background=False)) as base:
        yield base


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_push_rounds(make_agent: AgentFactory, service: VerifierService, url: str, sim_node: SimulatedNode) -> None:
    agent = make_agent(url, attributes={"rack": "r7"})
    identity = agent.ensure_registered()
    node = service.admin.node("node-1")
    assert node["activated"] and node["ak_name"] == identity.ak.name.hex() and node["ek_certified"]
    assert node["attributes"] == {"rack": "r7"} and node["mode"] == "push"
    first = agent.push_round()
    assert first.passed, first.findings
    second = agent.push_round()  # incremental: no new IMA line, no event log asked for
    assert second.passed, second.findings
    sim_node.run_unapproved_binary()
    third = agent.push_round()
    assert not third.passed
    assert "ima.not_in_policy" in third.finding_ids()
    assert service.admin.node("node-1")["last_passed"] is False


def test_tampered_pcr_asks_for_a_full_round(
    make_agent: AgentFactory, service: VerifierService, url: str, sim_node: SimulatedNode
) -> None:
    agent = make_agent(url)
    assert agent.push_round().passed
    sim_node.tamper_pcr(4)
    # the boot PCRs changed while no event log was sent: the verifier answers 409, the agent starts the round over
    # with a new challenge (which asks for the event log), and the log no longer replays to PCR 4
    verdict = agent.push_round()
    assert not verdict.passed
    assert "boot.pcr_mismatch" in verdict.finding_ids()


def test_restart_keeps_the_registration(
    make_agent: AgentFactory, service: VerifierService, url: str, sim_node: SimulatedNode
) -> None:
    first = make_agent(url)
    assert first.push_round().passed
    first.close()
    again = make_agent(url)
    assert again.identity.ak.name == first.identity.ak.name
    assert again.push_round().passed  # same AK, no new registration needed
    kinds = [item["kind"] for item in service.admin.history("node-1")]
    assert kinds.count("registration") == 1 and kinds.count("appraisal") >= 2


@pytest.mark.parametrize("interval", [0.3])
def test_pull_mode(make_agent: AgentFactory, service: VerifierService, url: str, sim_node: SimulatedNode) -> None:
    port = free_port()
    agent = make_agent(url, mode=AgentMode.PULL, agent_url=f"http://127.0.0.1:{port}")
    with NodeServer(agent, "127.0.0.1", port):
        agent.ensure_registered()
        assert service.admin.node("node-1")["mode"] == "pull"
        _wait(lambda: agent.answered >= 2 and service.admin.node("node-1")["last_passed"] is True)
        sim_node.run_unapproved_binary()
        answered = agent.answered
        _wait(lambda: agent.answered > answered and service.admin.node("node-1")["last_passed"] is False)

"""The node agent against a verifier that follows the API contract (real EK checks, MakeCredential, appraisal)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from node_support import AgentFactory
from node_verifier import TestVerifier, free_port, serve

from veritee.errors import AuthError, ConfigError, DeviceError, TransportError
from veritee.service.node_config import AgentMode, RetryPolicy
from veritee.service.node_state import IDENTITY_FILE, IdentityStore
from veritee.service.node_wire import Verdict
from veritee.service.simnode import SimulatedNode
from veritee.tpm.public import TpmtPublic
from veritee.web.node_app import NodeServer

pytestmark = pytest.mark.swtpm


def _failing(verifier: TestVerifier, node_id: str = "node-1") -> list[str]:
    return [item.id for item in verifier.nodes[node_id].appraisals[-1].findings if item.fails]


def test_registration_activates_the_credential(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str, sim_node: SimulatedNode
) -> None:
    agent = make_agent(verifier_url, attributes={"rack": "r1"})
    identity = agent.ensure_registered()
    node = verifier.nodes["node-1"]
    assert node.active and verifier.registrations == 1
    assert node.attributes == {"rack": "r1"} and node.agent_url is None
    assert TpmtPublic.from_tpm2b(node.ak_public).name() == identity.ak.name
    assert identity.registered_with == verifier_url
    saved = IdentityStore(agent.config.state_dir).load()
    assert saved == identity
    mode = (agent.config.state_dir / IDENTITY_FILE).stat().st_mode & 0o777
    assert mode == 0o600
    # registered once: asking again does not register again
    agent.ensure_registered()
    assert verifier.registrations == 1


def test_credential_for_another_key_is_never_activated(
    make_agent: AgentFactory, sim_node: SimulatedNode, keylime_policy: object
) -> None:
    verifier = TestVerifier(sim_node.process.ca_cert_pem, keylime_policy, wrong_name=True)  # type: ignore[arg-type]
    with serve(verifier.app) as url:
        agent = make_agent(url)
        with pytest.raises(DeviceError):  # TPM2_ActivateCredential refuses a blob bound to another name
            agent.ensure_registered()
    assert not verifier.nodes["node-1"].active
    saved = IdentityStore(agent.config.state_dir).load()
    assert saved is not None and saved.registered_with is None


def test_wrong_secret_is_refused_with_403(make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str) -> None:
    verifier.wrong_secret = True
    agent = make_agent(verifier_url)
    with pytest.raises(AuthError, match="403"):
        agent.ensure_registered()
    assert not verifier.nodes["node-1"].active and verifier.refused_activations == 1
    saved = IdentityStore(agent.config.state_dir).load()
    assert saved is not None and saved.registered_with is None


def test_push_rounds_send_only_new_ima_entries(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str, sim_node: SimulatedNode
) -> None:
    agent = make_agent(verifier_url)
    first = agent.push_round()
    assert first.passed, first.findings
    node = verifier.nodes["node-1"]
    assert node.evidence[0]["ima"]["offset"] == 0
    assert node.evidence[0]["ima"]["entries"].count("\n") == 826
    assert node.evidence[0]["event_log"] is not None
    # nothing new: the second round sends no IMA line
    second = agent.push_round()
    assert second.passed
    assert node.challenges[1]["ima_offset"] == 826
    assert node.evidence[1]["ima"] == {"offset": 826, "entries": ""}
    # an unapproved binary runs: the next round sends that one line, and fails
    line = sim_node.run_unapproved_binary()
    third = agent.push_round()
    assert node.evidence[2]["ima"] == {"offset": 826, "entries": line + "\n"}
    assert not third.passed and third.state == "failed"
    assert "ima.not_in_policy" in third.finding_ids()
    assert agent.rounds == 3 and agent.last_verdict == third


def test_tampered_pcr_fails_the_boot_check(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str, sim_node: SimulatedNode
) -> None:
    agent = make_agent(verifier_url)
    sim_node.tamper_pcr(4)
    verdict = agent.push_round()
    assert not verdict.passed
    assert "boot.pcr_mismatch" in verdict.finding_ids()
    assert "boot.pcr_mismatch" in _failing(verifier)


def test_run_push_keeps_its_interval_until_told_to_stop(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str
) -> None:
    agent = make_agent(verifier_url, interval=0.05)
    verdicts: list[Verdict] = []
    agent.run_push(rounds=3, on_verdict=verdicts.append)
    assert [v.passed for v in verdicts] == [True, True, True]
    stopper = threading.Timer(0.3, agent.stop)
    stopper.start()
    agent.run_push()  # returns once stopped
    stopper.join()
    assert agent.rounds >= 4


def test_pull_rounds(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str, sim_node: SimulatedNode
) -> None:
    port = free_port()
    agent = make_agent(verifier_url, mode=AgentMode.PULL, agent_url=f"http://127.0.0.1:{port}")
    with NodeServer(agent, "127.0.0.1", port) as server:
        assert server.port == port
        agent.ensure_registered()
        assert verifier.nodes["node-1"].agent_url == f"http://127.0.0.1:{port}"
        assert verifier.pull("node-1").passed
        assert verifier.pull("node-1").passed
        node = verifier.nodes["node-1"]
        assert node.evidence[1]["ima"] == {"offset": 826, "entries": ""}
        sim_node.measure("/usr/bin/new-tool", b"new")
        result = verifier.pull("node-1")
        assert not result.passed and [f.id for f in result.findings if f.fails] == ["ima.not_in_policy"]
        assert node.evidence[2]["ima"]["entries"].count("\n") == 1
        # a malformed challenge is refused with a problem document, nothing is quoted
        answered = agent.answered
        response = httpx.post(f"http://127.0.0.1:{port}/v1/quote", json={"nonce": "%%%", "pcr_selection": {}})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert agent.answered == answered
        health = httpx.get(f"http://127.0.0.1:{port}/v1/health").json()
        assert health["registered_with"] == verifier_url and health["mode"] == "pull"


def test_restart_keeps_the_ak(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str, sim_node: SimulatedNode
) -> None:
    first = make_agent(verifier_url)
    assert first.push_round().passed
    name = first.identity.ak.name
    first.close()
    restarted = make_agent(verifier_url)
    assert restarted.identity.ak.name == name
    verdict = restarted.push_round()  # the verifier keeps its state: this round continues where the last one stopped
    assert verdict.passed
    assert verifier.registrations == 1
    assert verifier.nodes["node-1"].evidence[-1]["ima"] == {"offset": 826, "entries": ""}


def test_state_of_another_node_is_refused(make_agent: AgentFactory, verifier_url: str) -> None:
    make_agent(verifier_url).ensure_registered()
    with pytest.raises(ConfigError, match="belongs to node"):
        _ = make_agent(verifier_url, node_id="node-2").identity


def test_verifier_down_then_up(make_agent: AgentFactory, verifier: TestVerifier) -> None:
    port = free_port()
    retries: list[tuple[int, float, str]] = []
    agent = make_agent(f"http://127.0.0.1:{port}", on_retry=lambda n, d, why: retries.append((n, d, why)))
    started = threading.Event()
    done = threading.Event()

    def bring_up() -> None:
        with serve(verifier.app, port):
            started.set()
            done.wait(30)

    _ = agent.identity  # the AK exists: the agent's next step is the registration request
    # the verifier comes up only after the agent has failed a few times
    timer = threading.Timer(0.4, bring_up)
    timer.start()
    try:
        verdict = agent.push_round()
    finally:
        done.set()
        timer.join()
    assert started.is_set() and verdict.passed
    assert len(retries) >= 3
    assert all("ConnectError" in why for _, _, why in retries)
    assert [d for _, d, _ in retries[:3]] == [0.02, 0.04, 0.08]  # exponential backoff, capped at 0.1 afterwards
    assert max(d for _, d, _ in retries) <= 0.1


def test_gives_up_after_the_configured_attempts(make_agent: AgentFactory) -> None:
    agent = make_agent(
        f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(initial_delay=0.01, max_delay=0.01, attempts=3)
    )
    with pytest.raises(TransportError, match="failed 3 time"):
        agent.ensure_registered()


def test_verifier_that_forgot_the_node_gets_a_new_registration(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str
) -> None:
    agent = make_agent(verifier_url)
    assert agent.push_round().passed
    verifier.nodes.clear()  # the verifier's database was reset
    assert agent.push_round().passed
    assert verifier.registrations == 2
    assert json.loads((agent.config.state_dir / IDENTITY_FILE).read_text())["registered_with"] == verifier_url


def test_refused_evidence_is_logged_and_the_loop_goes_on(
    make_agent: AgentFactory, verifier: TestVerifier, verifier_url: str
) -> None:
    agent = make_agent(verifier_url)
    assert agent.push_round().passed
    verifier.nodes["node-1"].active = False  # revoked: the verifier answers 403 to this node
    with pytest.raises(AuthError, match="403"):
        agent.push_round()
    agent.run_push(rounds=2)  # logs the refusals, does not register again by itself (that would undo a revocation)
    assert agent.rounds == 1 and verifier.registrations == 1
    agent.register()  # on purpose (the CLI's --reregister)
    assert agent.push_round().passed and verifier.registrations == 2

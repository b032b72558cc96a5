from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_support import FAST_RETRY, AgentFactory, Logs
from node_verifier import TestVerifier, serve

from helpers import shared_path
from swtpm_harness import start_swtpm
from veritee.appraisal.policy import (
    CompiledPolicy,
    compile_policy,
    import_keylime_refstate,
    import_keylime_runtime_policy,
)
from veritee.service.node_agent import NodeAgent
from veritee.service.node_client import RetryNotice
from veritee.service.node_config import AgentConfig, AgentMode
from veritee.service.node_state import IdentityStore, NodeIdentity
from veritee.service.simnode import SimulatedNode
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmDevice
from veritee.tpm.swtpm import SwtpmProcess


@pytest.fixture(scope="session")
def e2e_logs() -> Logs:
    """The shared e2e-swtpm bundle's logs: the RHEL 9 firmware log and the 826-entry IMA list."""
    root = shared_path("tpm", "e2e-swtpm")
    return Logs((root / "binary_bios_measurements").read_bytes(), (root / "ascii_runtime_measurements").read_text())


@pytest.fixture(scope="session")
def keylime_policy() -> CompiledPolicy:
    """Keylime 7.14.3's own policies for those logs (made by `keylime-policy create`)."""
    root = shared_path("tpm", "e2e-swtpm")
    return compile_policy(
        import_keylime_refstate((root / "mb_refstate.json").read_bytes()),
        import_keylime_runtime_policy((root / "runtime_policy.json").read_bytes()),
        name="e2e-keylime",
    )


@pytest.fixture(scope="module")
def swtpm_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmProcess]:
    """One swtpm (a clone of the session's) per test module; each test reboots it (:func:`sim_node`)."""
    with start_swtpm(tmp_path_factory.mktemp("tpm")) as process:
        yield process


@pytest.fixture
def sim_node(swtpm_process: SwtpmProcess, tmp_path: Path, e2e_logs: Logs) -> SimulatedNode:
    """A simulated node booted with the e2e logs (the module's swtpm, rebooted: fresh PCRs, same EK)."""
    directory = tmp_path / "node"
    return SimulatedNode.create(swtpm_process, directory, event_log=e2e_logs.event_log, ima_log=e2e_logs.ima_log)


@pytest.fixture
def verifier(sim_node: SimulatedNode, keylime_policy: CompiledPolicy) -> TestVerifier:
    return TestVerifier(sim_node.process.ca_cert_pem, keylime_policy)


@pytest.fixture
def verifier_url(verifier: TestVerifier) -> Iterator[str]:
    with serve(verifier.app) as url:
        yield url


@pytest.fixture(scope="module")
def module_ak(swtpm_process: SwtpmProcess) -> AttestationKey:
    """An AK in the module's TPM (creating one takes about half a second; the TPM keeps its EK across reboots)."""
    with TpmDevice(swtpm_process.tcti) as tpm:
        return tpm.create_ak(AkAlg.RSA2048_RSASSA_SHA256, parent=EkKind.RSA)


@pytest.fixture
def make_agent(sim_node: SimulatedNode, tmp_path: Path, module_ak: AttestationKey) -> Iterator[AgentFactory]:
    """Build agents for ``sim_node`` (closed at the end of the test); keyword arguments override the config.

    The default state directory starts with the module's AK saved as node-1's (not registered anywhere yet)."""
    agents: list[NodeAgent] = []
    IdentityStore(tmp_path / "agent-state").save(NodeIdentity("node-1", module_ak))

    def make(verifier_url: str, *, on_retry: RetryNotice | None = None, **overrides: object) -> NodeAgent:
        settings: dict[str, object] = {
            "verifier_url": verifier_url,
            "tcti": sim_node.tcti,
            "node_id": "node-1",
            "state_dir": tmp_path / "agent-state",
            "mode": AgentMode.PUSH,
            "event_log": sim_node.event_log_path,
            "ima_log": sim_node.ima_log_path,
            "interval": 0.05,
            "retry": FAST_RETRY,
            "timeout": 10.0,
        }
        settings.update(overrides)
        agent = NodeAgent(AgentConfig(**settings), on_retry=on_retry)  # type: ignore[arg-type]
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()

"""The platform-integrity part of the demonstration: a verifier and three swtpm-backed simulated nodes on loopback.

Each node's TPM holds exactly what its firmware event log and IMA list say (real hashes of files on this machine);
the verifier learns its policy from node-1 (known good), the nodes push evidence through the node agent, then node-2
runs a binary no policy knows and is detected, quarantined and reported. Every line printed is read back from the
verifier's database or returned by it after the step ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from veritee.appraisal.policy import PolicySet, create_policy_from_evidence
from veritee.eventlog.builder import typical_boot_log
from veritee.service.loopback import ServerThread
from veritee.service.node_agent import NodeAgent
from veritee.service.node_config import AgentConfig, AgentMode
from veritee.service.simnode import SimulatedNode
from veritee.service.verifier_config import RemediationAction, VerifierConfig
from veritee.service.verifier_history import verify_node_history
from veritee.service.verifier_policies import put_policy
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig
from veritee.tpm.device import AkAlg, EkKind
from veritee.tpm.swtpm import SwtpmCa, SwtpmTools
from veritee.web.verifier_app import create_verifier_app

Say = Callable[[str], None]
NODES = ("node-1", "node-2", "node-3")
CMDLINE = "BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/mapper/vg-root ro ima_policy=tcb ima_template=ima-ng"
MEASURED_FILES = ("/bin/sh", "/usr/bin/env", "/usr/bin/ls", "/usr/bin/cat", "/usr/bin/python3")


def _real_files() -> list[tuple[str, bytes]]:
    files = []
    for name in MEASURED_FILES:
        path = Path(name)
        if path.is_file():
            files.append((str(path.resolve()), path.read_bytes()))
    return files


def _agent(url: str, workdir: Path, name: str, sim: SimulatedNode) -> NodeAgent:
    config = AgentConfig(
        verifier_url=url,
        tcti=sim.tcti,
        node_id=name,
        state_dir=workdir / name / "agent",
        mode=AgentMode.PUSH,
        event_log=sim.event_log_path,
        ima_log=sim.ima_log_path,
        ek_kind=EkKind.ECC,
        ak_alg=AkAlg.ECC_P256_ECDSA_SHA256,
    )
    return NodeAgent(config)


def run(workdir: Path, say: Say) -> bool:
    workdir.mkdir(parents=True, exist_ok=True)
    ca = SwtpmCa(workdir / "ca", SwtpmTools.find())
    files = _real_files()
    sims: list[SimulatedNode] = []
    db = Database(DatabaseConfig(url=f"sqlite:///{workdir / 'verifier.db'}"))
    ok = True
    try:
        for name in NODES:
            sim = SimulatedNode.start(workdir / name, ca, event_log=typical_boot_log(kernel_cmdline=CMDLINE),
                                      ima_log=None)  # fmt: skip
            for path, content in files:
                sim.measure(path, content)
            sims.append(sim)
        say(f"{len(sims)} simulated nodes: swtpm on {', '.join(s.tcti for s in sims)}; "
            f"{len(files)} real binaries measured by IMA on each")  # fmt: skip
        db.upgrade()
        boot, runtime = create_policy_from_evidence(
            sims[0].event_log_path.read_bytes(), sims[0].ima_log_path.read_text()
        )
        put_policy(db, PolicySet("default", boot, runtime))
        say("policy 'default' learned from node-1's event log and IMA list")
        remediation = frozenset({RemediationAction.QUARANTINE, RemediationAction.NOTIFY})
        config = VerifierConfig(ek_ca_certs=(ca.ca_cert_pem,), interval_s=3600.0, remediation=remediation)
        service = VerifierService(db, config)
        admin = service.admin
        with ServerThread(create_verifier_app(service)) as server:
            say(f"verifier on {server.url} (SQLite {workdir / 'verifier.db'})")
            agents = [_agent(server.url, workdir, name, sim) for name, sim in zip(NODES, sims, strict=True)]
            for agent in agents:
                agent.ensure_registered()
            say("registered: EK certificates checked against the swtpm CA, AKs activated by credential")
            for round_no in (1, 2):
                for name, agent in zip(NODES, agents, strict=True):
                    verdict = agent.push_round()
                    ok &= verdict.passed
                    say(f"  round {round_no}: {name} passed={verdict.passed} state={verdict.state}")
                if round_no == 1:
                    sims[2].measure(files[0][0], files[0][1])  # an approved binary runs again: still trusted
            line = sims[1].run_unapproved_binary()
            say(f"node-2 runs an unapproved binary: IMA logged {line.split()[-1]!r}")
            verdict = agents[1].push_round()
            ids = sorted({f.get("id", "?") for f in verdict.findings})
            say(f"  node-2 passed={verdict.passed} state={verdict.state} findings={ids}")
            ok &= not verdict.passed
            for agent in agents:
                agent.close()
            for name in NODES:
                node = admin.node(name)
                report = verify_node_history(db, name)
                say(f"  verifier DB: {name} state={node['state']} attestations={report.records} "
                    f"history chain verified, head {report.head[:16]}")  # fmt: skip
            quarantined = admin.node("node-2")["state"] == "quarantined"
            say(f"  node-2 quarantined: {quarantined}; admission for workload 'vnf-fw' on node-2: "
                f"{admin.admission('node-2', 'vnf-fw').to_json()}")  # fmt: skip
            ok &= quarantined and all(admin.node(n)["state"] == "trusted" for n in ("node-1", "node-3"))
    finally:
        for sim in sims:
            sim.stop()
        db.dispose()
    return ok

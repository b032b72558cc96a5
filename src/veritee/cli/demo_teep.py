"""The TEEP part of the demonstration: a TAM and three Agents (software TEEs) over HTTP on loopback.

Every figure printed is read back from the TAM's database or from an Agent's TEE after the step ran.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from veritee.cose import Algorithm, CoseKey
from veritee.errors import VeriteeError
from veritee.service.broker import Broker
from veritee.service.loopback import ServerThread
from veritee.service.tam import TamService, TamServiceConfig
from veritee.service.tam_attest import AttestationConfig
from veritee.service.tam_ids import component_id_to_text
from veritee.service.tee_agent import (
    AgentIdentity,
    StateLayout,
    TrustKind,
    add_trust_anchor,
    build_agent,
    load_identity,
    open_tee,
    public_pem,
)
from veritee.store.db import Database, DatabaseConfig
from veritee.suit.builder import TrustedComponentSpec, build_envelope
from veritee.web.tam_app import create_tam_app

Say = Callable[[str], None]

TA_UUID = uuid.UUID("8d82573a-926d-4754-9353-32dc29997f74").bytes
COMPONENT = (b"TEEP-Device", b"SecureFS", TA_UUID, b"ta")
MANIFEST_ID = (b"TEEP-Device", b"manifests", TA_UUID)
COMPONENT_TEXT = component_id_to_text(COMPONENT)
SITES = {"node-1": "paris", "node-2": "paris", "node-3": "lyon"}


@dataclass
class DemoAgent:
    name: str
    layout: StateLayout
    identity: AgentIdentity

    def session(self, url: str) -> str:
        tee = open_tee(self.layout)
        with Broker(url, build_agent(self.identity, tee), timeout=30.0) as broker:
            outcome = broker.run_session()
        installed = [component_id_to_text(c) for c in outcome.installed]
        removed = [component_id_to_text(c) for c in outcome.unlinked]
        return f"ok={outcome.ok} exchanges={outcome.exchanges} installed={installed} removed={removed}"

    def payload(self) -> bytes | None:
        return open_tee(self.layout).read(COMPONENT)


def run(workdir: Path, say: Say) -> bool:
    """TAM + 3 Agents: deploy to site=paris, update, undeploy. True when every step had the expected effect."""
    tam_key, signer = CoseKey.generate(Algorithm.ESP256), CoseKey.generate(Algorithm.ESP256)
    agents: list[DemoAgent] = []
    for name in SITES:
        layout = StateLayout(workdir / "agents" / name)
        layout.create()
        add_trust_anchor(layout, TrustKind.TAM, public_pem(tam_key))
        add_trust_anchor(layout, TrustKind.TC_SIGNER, public_pem(signer))
        agents.append(DemoAgent(name, layout, load_identity(layout)))
    db = Database(DatabaseConfig(url=f"sqlite:///{workdir / 'tam.db'}"))
    db.upgrade()
    attesters = tuple(agent.identity.attestation_key.public() for agent in agents)
    service = TamService(db, TamServiceConfig(tam_keys=(tam_key,), attestation=AttestationConfig(attesters)))
    service.add_signer("demo-vendor", public_pem(signer).decode())
    for agent in agents:
        service.register_device(agent.identity.teep_key, name=agent.name, attributes={"site": SITES[agent.name]})

    def envelope(sequence: int, text: bytes) -> bytes:
        spec = TrustedComponentSpec(component_id=COMPONENT, sequence_number=sequence, payload=text, integrated=True,
                                    manifest_component_id=MANIFEST_ID)  # fmt: skip
        return build_envelope(spec, signer)

    ok = True
    try:
        with ServerThread(create_tam_app(service)) as server:
            say(f"TAM listening on {server.url}/tam (SQLite {workdir / 'tam.db'}); 3 agents with software TEEs")
            service.upload_tc(envelope(1, b"trusted app v1"))
            service.add_deployment(COMPONENT_TEXT, "attr:site=paris")
            say(f"uploaded {COMPONENT_TEXT} v1, deployed to attr:site=paris")
            for agent in agents:
                say(f"  {agent.name} session: {agent.session(server.url + '/tam')}")
            ok &= _check(say, agents, service, {"node-1": 1, "node-2": 1}, b"trusted app v1")
            service.upload_tc(envelope(2, b"trusted app v2"))
            say("uploaded v2")
            for agent in agents:
                say(f"  {agent.name} session: {agent.session(server.url + '/tam')}")
            ok &= _check(say, agents, service, {"node-1": 2, "node-2": 2}, b"trusted app v2")
            try:
                service.upload_tc(envelope(1, b"rollback"))
                say("  a second v1 upload was ACCEPTED (unexpected)")
                ok = False
            except VeriteeError as exc:
                say(f"  re-uploading v1 refused: {type(exc).__name__}")
            service.undeploy(COMPONENT_TEXT)
            say("undeployed")
            for agent in agents:
                say(f"  {agent.name} session: {agent.session(server.url + '/tam')}")
            ok &= _check(say, agents, service, {}, None)
    finally:
        db.dispose()
    return ok


def _check(say: Say, agents: list[DemoAgent], service: TamService, want: dict[str, int], payload: bytes | None) -> bool:
    ok = True
    for agent in agents:
        view = service.device(agent.name)
        installed = {c.component_id: c.sequence_number for c in view.components if c.installed}
        tee = agent.payload()
        expected_version = want.get(agent.name)
        good = installed == ({COMPONENT_TEXT: expected_version} if expected_version else {}) and tee == (
            payload if expected_version else None
        )
        ok &= good
        say(f"  TAM DB: {agent.name} attestation={view.attestation_status} installed={installed} "
            f"TEE holds={tee!r} {'ok' if good else 'UNEXPECTED'}")  # fmt: skip
    return ok

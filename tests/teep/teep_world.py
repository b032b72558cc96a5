"""A TAM and a TEEP Agent wired together in memory (bytes passed by hand) for the session tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from veritee.cose import Algorithm, CoseKey
from veritee.suit.builder import TrustedComponentSpec, build_envelope
from veritee.suit.store import InMemoryComponentStore
from veritee.teep.agent import AgentConfig, DeviceClaims, TeepAgent
from veritee.teep.eat import verify_eat
from veritee.teep.events import Event, EvidenceReceived
from veritee.teep.tam import TamConfig, TamSession

DEVICE = DeviceClaims(
    ueid=b"\x01" + bytes(range(16)),
    oemid=bytes.fromhex("894823"),
    hwmodel=bytes.fromhex("549dcecc8b987c737b44e40f7c635ce8"),
    hwversion=("1.3.4", 1),
    manifests=((60, {1: "https://tam.example/teep-agent.suit", 0: [-16, bytes(32)]}),),
)
APP = (b"TEEP-Device", b"SecureFS", b"8d82573a926d4754935332dc29997f74", b"ta")
APP_MANIFEST = (b"TEEP-Device", b"manifests", b"8d82573a926d4754935332dc29997f74")
OTHER = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
OTHER_MANIFEST = (b"TEEP-Device", b"manifests", b"other")


def counter_random() -> Callable[[int], bytes]:
    """Deterministic 'randomness' so that failures are reproducible."""
    counter: Iterator[int] = itertools.count(1)

    def rnd(n: int) -> bytes:
        return next(counter).to_bytes(4, "big") * (n // 4) + b"\x00" * (n % 4)

    return rnd


def new_key(alg: Algorithm = Algorithm.ESP256) -> CoseKey:
    """A fresh key not restricted to one algorithm (a P-256 key may sign ESP256 and ES256)."""
    return CoseKey(CoseKey.generate(alg).key)


@dataclass
class World:
    tam_key: CoseKey = field(default_factory=new_key)
    tam_ed25519: CoseKey = field(default_factory=lambda: new_key(Algorithm.Ed25519))
    agent_key: CoseKey = field(default_factory=new_key)
    attester: CoseKey = field(default_factory=new_key)
    tc_signer: CoseKey = field(default_factory=new_key)
    store: InMemoryComponentStore = field(default_factory=InMemoryComponentStore)
    now: float = 1_000.0

    def tam_config(self, **changes: Any) -> TamConfig:
        base = TamConfig(
            tam_keys=(self.tam_key, self.tam_ed25519),
            agent_keys=(self.agent_key.public(),),
            random=counter_random(),
        )
        return replace(base, **changes)

    def agent_config(self, **changes: Any) -> AgentConfig:
        base = AgentConfig(
            agent_key=self.agent_key,
            tam_keys=(self.tam_key.public(), self.tam_ed25519.public()),
            tc_signer_keys=(self.tc_signer.public(),),
            attestation_key=self.attester,
            device=DEVICE,
            random=counter_random(),
        )
        return replace(base, **changes)

    def tam(self, **changes: Any) -> TamSession:
        return TamSession(self.tam_config(**changes))

    def agent(self, **changes: Any) -> TeepAgent:
        return TeepAgent(self.agent_config(**changes), self.store)

    def tick(self) -> float:
        self.now += 1
        return self.now

    def envelope(
        self,
        sequence: int,
        payload: bytes,
        *,
        component: tuple[bytes, ...] = APP,
        manifest_id: tuple[bytes, ...] = APP_MANIFEST,
        signer: CoseKey | None = None,
    ) -> bytes:
        spec = TrustedComponentSpec(
            component_id=component,
            sequence_number=sequence,
            payload=payload,
            integrated=True,
            manifest_component_id=manifest_id,
        )
        key = signer or self.tc_signer
        return build_envelope(spec, key, kid=key.thumbprint())

    def query(self, tam: TamSession, agent: TeepAgent, *, appraise: bool = True) -> list[Event]:
        """QueryRequest -> QueryResponse, then (when evidence came) verify it as a Verifier would."""
        _agent_events, reply = agent.receive(tam.start(self.tick()), self.tick())
        assert reply is not None
        events = tam.receive(reply, self.tick())
        evidence = [e for e in events if isinstance(e, EvidenceReceived)]
        if evidence and appraise:
            assert tam.agent_key is not None and evidence[0].challenge is not None
            claims = verify_eat(
                evidence[0].evidence,
                [self.attester.public()],
                expected_nonce=evidence[0].challenge,
                agent_key=tam.agent_key,
                now=self.now,
                max_age=60,
            )
            tam.attestation_result(True, claims)
        return events

    def update(
        self,
        tam: TamSession,
        agent: TeepAgent,
        manifests: Sequence[bytes],
        unneeded: Sequence[tuple[bytes, ...]] = (),
    ) -> tuple[list[Event], list[Event]]:
        agent_events, reply = agent.receive(tam.send_update(manifests, unneeded, self.tick()), self.tick())
        assert reply is not None
        return agent_events, tam.receive(reply, self.tick())

"""Keys, device claims and SUIT envelopes shared by the TEEP Agent / Broker / software TEE tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from veritee.cose import Algorithm, CoseKey
from veritee.suit.builder import DependencySpec, TrustedComponentSpec, build_envelope
from veritee.suit.processor import Procedure, ProcessorConfig, ProcessResult, process
from veritee.suit.store import ComponentStore
from veritee.teep.agent import AgentConfig, DeviceClaims
from veritee.teep.tam import TamConfig

UUID = bytes.fromhex("8d82573a926d4754935332dc29997f74")
APP = (b"TEEP-Device", b"SecureFS", UUID, b"ta")
APP_MANIFEST = (b"TEEP-Device", b"manifests", UUID)
OTHER = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
OTHER_MANIFEST = (b"TEEP-Device", b"manifests", b"other")
PAYLOAD = b"KNOWN-PLAINTEXT-TRUSTED-APPLICATION-0123456789"

DEVICE = DeviceClaims(
    ueid=b"\x01" + bytes(range(16)),
    oemid=bytes.fromhex("894823"),
    hwmodel=b"veritee-test-tee",
    hwversion=("1.0.0", 1),
    manifests=((60, b"\xa1\x01\x02"),),
)


def new_key(alg: Algorithm = Algorithm.ESP256) -> CoseKey:
    """A fresh key not restricted to one algorithm."""
    return CoseKey(CoseKey.generate(alg).key)


@dataclass
class Keys:
    tam: CoseKey = field(default_factory=new_key)
    tam_ed25519: CoseKey = field(default_factory=lambda: new_key(Algorithm.Ed25519))
    agent: CoseKey = field(default_factory=new_key)
    attester: CoseKey = field(default_factory=new_key)
    tc_signer: CoseKey = field(default_factory=new_key)

    def agent_config(self, **changes: Any) -> AgentConfig:
        base = AgentConfig(
            agent_key=self.agent,
            tam_keys=(self.tam.public(), self.tam_ed25519.public()),
            tc_signer_keys=(self.tc_signer.public(),),
            attestation_key=self.attester,
            device=DEVICE,
        )
        return replace(base, **changes)

    def tam_config(self, **changes: Any) -> TamConfig:
        return replace(TamConfig(tam_keys=(self.tam, self.tam_ed25519), agent_keys=(self.agent.public(),)), **changes)

    def envelope(
        self,
        sequence: int,
        payload: bytes = PAYLOAD,
        *,
        component: tuple[bytes, ...] = APP,
        manifest_id: tuple[bytes, ...] | None = APP_MANIFEST,
        dependencies: tuple[DependencySpec, ...] = (),
        **spec: Any,
    ) -> bytes:
        built = TrustedComponentSpec(
            component_id=component,
            sequence_number=sequence,
            payload=payload,
            integrated=True,
            manifest_component_id=manifest_id,
            dependencies=dependencies,
            **spec,
        )
        return build_envelope(built, self.tc_signer, kid=self.tc_signer.thumbprint())

    def install(self, store: ComponentStore, envelope: bytes) -> ProcessResult:
        """Run a SUIT update straight on a store (what the Agent does for one manifest)."""
        config = ProcessorConfig(trust_anchors=(self.tc_signer.public(),))
        return process(envelope, Procedure.UPDATE, config=config, store=store)

    def uninstall(self, store: ComponentStore, envelope: bytes) -> ProcessResult:
        config = ProcessorConfig(trust_anchors=(self.tc_signer.public(),))
        return process(envelope, Procedure.UNINSTALL, config=config, store=store)

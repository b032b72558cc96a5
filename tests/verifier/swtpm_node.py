"""A node whose TPM is a real swtpm: the e2e-swtpm event log and IMA list replayed into its PCRs, quotes and
credential activation done by the TPM (tpm2-pytss), answers in the node API's shapes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from helpers import shared_path
from veritee.eventlog import EventType
from veritee.eventlog import parse as parse_event_log
from veritee.ima import parse as parse_ima
from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
)
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmDevice
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob

_BANKS = (HashAlg.SHA1, HashAlg.SHA256)


@dataclass(frozen=True)
class E2eLogs:
    event_log: bytes
    ima_lines: tuple[str, ...]
    runtime_policy: bytes
    refstate: bytes


def e2e_logs() -> E2eLogs:
    root: Path = shared_path("tpm", "e2e-swtpm")
    text = (root / "ascii_runtime_measurements").read_text()
    return E2eLogs(
        event_log=(root / "binary_bios_measurements").read_bytes(),
        ima_lines=tuple(line for line in text.splitlines() if line.strip()),
        runtime_policy=(root / "runtime_policy.json").read_bytes(),
        refstate=(root / "mb_refstate.json").read_bytes(),
    )


def replay_boot(device: TpmDevice, event_log: bytes) -> None:
    """Extend every digest of the firmware log into the TPM (as the e2e bundle was made)."""
    for event in parse_event_log(event_log).events:
        if event.type == EventType.EV_NO_ACTION:
            continue
        digests = {alg.label: value for alg, value in event.digests.items() if alg in _BANKS}
        device.pcr_extend(event.pcr, digests)


def extend_ima(device: TpmDevice, lines: list[str] | tuple[str, ...]) -> None:
    """Extend IMA entries into PCR 10: SHA-1 bank the logged template hash, SHA-256 bank H(template data)."""
    for entry in parse_ima("".join(line + "\n" for line in lines)):
        if entry.is_violation:
            device.pcr_extend(10, {"sha1": b"\xff" * 20, "sha256": b"\xff" * 32})
        else:
            device.pcr_extend(10, {"sha1": entry.template_hash, "sha256": hashlib.sha256(entry.template_data).digest()})


@dataclass
class SwtpmNode:
    """A node on a running swtpm. ``ima_lines`` is what its IMA list holds; ``measured`` how many of them the TPM
    has seen (extend more with :meth:`measure`)."""

    node_id: str
    device: TpmDevice
    event_log: bytes | None
    ima_lines: list[str] = field(default_factory=list)
    ak: AttestationKey | None = None
    answer_hook: Callable[[SwtpmNode, Challenge, NodeEvidence], NodeEvidence] | None = None

    def __post_init__(self) -> None:
        if self.ak is None:
            self.ak = self.device.create_ak(AkAlg.ECC_P256_ECDSA_SHA256, parent=EkKind.RSA)

    @property
    def attestation_key(self) -> AttestationKey:
        if self.ak is None:
            raise AssertionError("no AK")
        return self.ak

    @property
    def ek_cert(self) -> bytes:
        return self.device.read_ek_certificate(EkKind.RSA)

    def registration(self, agent_url: str | None = None) -> RegistrationRequest:
        x509.load_der_x509_certificate(self.ek_cert)  # the TPM's certificate is a real one
        return RegistrationRequest(
            node_id=self.node_id,
            ek_cert=self.ek_cert,
            ek_public=self.device.create_ek(EkKind.RSA),
            ak_public=self.attestation_key.public,
            attributes={"site": "lab"},
            agent_url=agent_url,
        )

    def activate(self, challenge: CredentialChallenge) -> ActivationRequest:
        secret = self.device.activate_credential(
            self.attestation_key, EkKind.RSA, challenge.credential_blob, challenge.encrypted_secret
        )
        return ActivationRequest(challenge.challenge_id, secret)

    def measure(self, lines: list[str] | tuple[str, ...]) -> None:
        extend_ima(self.device, lines)
        self.ima_lines.extend(lines)

    def answer(self, challenge: Challenge) -> NodeEvidence:
        quote = self.device.quote(self.attestation_key, challenge.pcr_selection, challenge.nonce)
        selections = [PcrSelection.of(HashAlg.from_label(bank), sorted(pcrs)) for bank, pcrs in quote.pcrs.items()]
        banks = {HashAlg.from_label(bank): values for bank, values in quote.pcrs.items()}
        evidence = NodeEvidence(
            nonce=challenge.nonce,
            quote=quote.attest,
            signature=quote.signature,
            pcrs=build_tpm2tools_pcr_blob(selections, banks),
            event_log=self.event_log if challenge.want_event_log else None,
            ima_offset=challenge.ima_offset,
            ima_entries="".join(line + "\n" for line in self.ima_lines[challenge.ima_offset :]),
        )
        if self.answer_hook is not None:
            evidence = self.answer_hook(self, challenge, evidence)
        return evidence

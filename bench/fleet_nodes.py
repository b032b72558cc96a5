"""Software nodes for the fleet benchmark: no swtpm, quotes signed in software in the real TPMS_ATTEST format.

Every node has its own ECC P-256 EK (with an EK certificate from the benchmark's own CA) and its own ECC P-256 AK.
It registers through the verifier's real API — the registration request, then the credential activation, done here in
software (:func:`activate_credential`: ECDH with the EK, KDFe, the HMAC check, AES-CFB, as TPM2_ActivateCredential
does). That is the benchmark's only shortcut: a software EK instead of a TPM. The verifier cannot tell; nothing in the
product was changed or bypassed for the benchmark.

Every node booted like the shared e2e bundle: the quote's PCRs 0-9 and 14 are the bundle's, its firmware log is the
bundle's, and its IMA list is the bundle's, growing by a few lines per round (after its 826 lines, the approved lines
again, as files that are measured again): PCR 10 is the replay of the lines so far. All nodes follow the same list,
so its PCR 10 values are computed once (:class:`ImaTimeline`).

``Tamper`` nodes check that the verifier still reaches the right verdicts under load: an edited IMA line, or an event
log with one digest changed (the caller gives such a node the bundle's ``boot_event_changed`` log), must fail.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.x509.oid import NameOID

from veritee.service.node_wire import Challenge, CredentialChallenge, NodeEvidence, RegistrationRequest
from veritee.tpm.alg import HashAlg, extend
from veritee.tpm.attest import PcrSelection, TpmsClockInfo
from veritee.tpm.constants import ObjectAttributes, TpmAlgId, TpmEccCurve
from veritee.tpm.credential import kdfa, kdfe
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob
from veritee.tpm.public import EccParms, EccPoint, Scheme, SymDefObject, TpmtPublic
from veritee.tpm.signer import build_quote_attest, sign_attest

__all__ = ["FleetCa", "ImaTimeline", "SoftwareNode", "Tamper", "activate_credential"]

_SHA256 = HashAlg.SHA256
_EK_ATTRIBUTES = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.ADMIN_WITH_POLICY
    | ObjectAttributes.RESTRICTED
    | ObjectAttributes.DECRYPT
)


class Tamper(StrEnum):
    NONE = "none"
    IMA_ENTRY_CHANGED = "ima_entry_changed"
    BOOT_EVENT_CHANGED = "boot_event_changed"


def _tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _take_tpm2b(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 2 > len(data):
        raise ValueError("truncated TPM2B")
    size = int.from_bytes(data[at : at + 2], "big")
    if at + 2 + size > len(data):
        raise ValueError("truncated TPM2B")
    return data[at + 2 : at + 2 + size], at + 2 + size


def activate_credential(
    ek_key: ec.EllipticCurvePrivateKey, ek_x: bytes, ak_name: bytes, credential_blob: bytes, encrypted_secret: bytes
) -> bytes:
    """TPM2_ActivateCredential in software for an ECC P-256 EK with nameAlg SHA-256 and AES-128-CFB."""
    point, _ = _take_tpm2b(encrypted_secret, 0)
    eph_x, at = _take_tpm2b(point, 0)
    eph_y, _ = _take_tpm2b(point, at)
    ephemeral = ec.EllipticCurvePublicNumbers(
        int.from_bytes(eph_x, "big"), int.from_bytes(eph_y, "big"), ec.SECP256R1()
    ).public_key()
    z = ek_key.exchange(ec.ECDH(), ephemeral).rjust(32, b"\x00")
    seed = kdfe(_SHA256, z, b"IDENTITY", eph_x, ek_x, 256)
    identity, _ = _take_tpm2b(credential_blob, 0)
    outer_hmac, at = _take_tpm2b(identity, 0)
    enc_identity = identity[at:]
    hmac_key = kdfa(_SHA256, seed, b"INTEGRITY", b"", b"", 256)
    if not hmac.compare_digest(hmac.digest(hmac_key, enc_identity + ak_name, "sha256"), outer_hmac):
        raise ValueError("credential integrity check failed (TPM_RC_INTEGRITY)")
    sym_key = kdfa(_SHA256, seed, b"STORAGE", ak_name, b"", 128)
    decryptor = Cipher(algorithms.AES(sym_key), CFB(b"\x00" * 16)).decryptor()
    plain = decryptor.update(enc_identity) + decryptor.finalize()
    secret, _ = _take_tpm2b(plain, 0)
    return secret


class FleetCa:
    """The benchmark's EK certificate authority (the verifier is configured to trust it)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veritee fleet benchmark EK CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def ek_certificate(self, ek: ec.EllipticCurvePublicKey, node_id: str) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(self.name)
            .public_key(ek)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)


class ImaTimeline:
    """The IMA list every node follows: the bundle's lines, then its approved lines again (boot_aggregate once),
    with the SHA-256 PCR 10 value after each line (computed once, extended on demand)."""

    def __init__(self, text: str) -> None:
        self.lines = [line + "\n" for line in text.splitlines() if line]
        self._cycle = [line for line in self.lines if "boot_aggregate" not in line]
        self.template_digests: list[bytes] = []
        self.pcr10: list[bytes] = [bytes(32)]

    def line(self, index: int) -> str:
        if index < len(self.lines):
            return self.lines[index]
        return self._cycle[(index - len(self.lines)) % len(self._cycle)]

    def value(self, count: int) -> bytes:
        """SHA-256 PCR 10 after ``count`` lines."""
        while len(self.pcr10) <= count:
            index = len(self.pcr10) - 1
            fields = self.line(index).rstrip("\n").split(" ", 4)
            alg, digest = fields[3].split(":", 1)
            path = fields[4].encode()
            data = _field(alg.encode() + b":\x00" + bytes.fromhex(digest)) + _field(path + b"\x00")
            self.pcr10.append(extend(_SHA256, self.pcr10[-1], hashlib.sha256(data).digest()))
        return self.pcr10[count]

    def text(self, start: int, stop: int) -> str:
        return "".join(self.line(i) for i in range(start, stop))


def _field(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def change_first_ima_digest(line: str) -> str:
    """The line with its file digest's first hex digit changed (the line was edited after it was measured)."""
    fields = line.split(" ")
    alg, digest = fields[3].split(":", 1)
    fields[3] = f"{alg}:{'1' if digest[0] == '0' else '0'}{digest[1:]}"
    return " ".join(fields)


@dataclass
class SoftwareNode:
    """One simulated node; ``lines`` is how many IMA lines it has measured so far."""

    node_id: str
    boot_pcrs: Mapping[int, bytes]
    event_log: bytes
    timeline: ImaTimeline
    lines: int
    growth: int = 2
    tamper: Tamper = Tamper.NONE
    ak_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ek_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    clock: int = 0

    def __post_init__(self) -> None:
        self.ak = TpmtPublic.from_public_key(self.ak_key.public_key())
        self.ak_public = self.ak.to_tpm2b()
        self.ak_name = self.ak.name()
        numbers = self.ek_key.public_key().public_numbers()
        self.ek_x = numbers.x.to_bytes(32, "big")
        ek = TpmtPublic(
            TpmAlgId.ECC,
            TpmAlgId.SHA256,
            _EK_ATTRIBUTES,
            b"",
            EccParms(SymDefObject(TpmAlgId.AES, 128, TpmAlgId.CFB), Scheme(), TpmEccCurve.NIST_P256),
            EccPoint(self.ek_x, numbers.y.to_bytes(32, "big")),
        )
        self.ek_public = ek.to_tpm2b()
        self._started = int.from_bytes(os.urandom(2), "big") * 1000  # ms of TPM clock before the benchmark

    def registration(self, ca: FleetCa) -> RegistrationRequest:
        certificate = ca.ek_certificate(self.ek_key.public_key(), self.node_id)
        return RegistrationRequest(self.node_id, certificate, self.ek_public, self.ak_public, {"bench": "fleet"})

    def activate(self, challenge: CredentialChallenge) -> bytes:
        return activate_credential(
            self.ek_key, self.ek_x, self.ak_name, challenge.credential_blob, challenge.encrypted_secret
        )

    def answer(self, challenge: Challenge) -> NodeEvidence:
        """Quote the challenge's PCRs with its nonce; send the IMA lines from its offset; measure a few more lines."""
        self.clock += 1
        start = min(challenge.ima_offset, self.lines)
        ima_text = self.timeline.text(start, self.lines)
        pcr10 = self.timeline.value(self.lines)
        if self.tamper is Tamper.IMA_ENTRY_CHANGED and ima_text:
            first, _, rest = ima_text.partition("\n")
            ima_text = change_first_ima_digest(first) + "\n" + rest
        banks: dict[HashAlg, dict[int, bytes]] = {}
        selections = []
        for label, pcrs in challenge.pcr_selection.items():
            alg = HashAlg.from_label(label)
            zero = bytes(alg.digest_size)
            if alg is _SHA256:
                bank = {i: pcr10 if i == 10 else self.boot_pcrs.get(i, zero) for i in pcrs}
            else:
                bank = dict.fromkeys(pcrs, zero)
            banks[alg] = bank
            selections.append(PcrSelection.of(alg, sorted(bank)))
        clock = TpmsClockInfo(clock=self._started + self.clock * 1000, reset_count=0, restart_count=0, safe=True)
        attest = build_quote_attest(
            qualified_signer=self.ak_name,
            selections=selections,
            banks=banks,
            nonce=challenge.nonce,
            clock_info=clock,
        )
        signature = sign_attest(self.ak_key, attest).pack()
        evidence = NodeEvidence(
            challenge.nonce,
            attest,
            signature,
            build_tpm2tools_pcr_blob(selections, banks),
            self.event_log if challenge.want_event_log else None,
            challenge.ima_offset,
            ima_text if challenge.ima_offset <= self.lines else "",
        )
        self.lines += self.growth
        return evidence

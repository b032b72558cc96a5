"""Helpers for the verifier tests: software TPM nodes, an agent serving them (pull mode), an HTTP receiver.

* :class:`TestCa` — a manufacturer CA that issues EK certificates.
* :class:`SoftNode` — a node with a software "TPM": an RSA EK (certified by a TestCa) that really decrypts
  MakeCredential blobs (a software TPM2_ActivateCredential), a P-256 AK, a SHA-256 PCR bank, a TPM clock, an IMA
  list whose lines are extended into PCR 10, and answers to challenges exactly as the node API carries them.
* :class:`AgentServer` — serves ``POST /nodes/{id}/v1/quote`` for many SoftNodes on one loopback port.
* :class:`Receiver` — records POSTs (webhooks, TAM block calls); can fail the first N with 503.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.x509.oid import NameOID

from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
)
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_service import VerifierService
from veritee.tpm.alg import HashAlg, extend
from veritee.tpm.attest import PcrSelection, TpmsClockInfo
from veritee.tpm.constants import ObjectAttributes, TpmAlgId
from veritee.tpm.credential import kdfa
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob
from veritee.tpm.public import RsaParms, Scheme, SymDefObject, TpmtPublic
from veritee.tpm.quote import build_quote_attest, sign_attest

EK_ATTRIBUTES = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.ADMIN_WITH_POLICY
    | ObjectAttributes.RESTRICTED
    | ObjectAttributes.DECRYPT
)


# --- IMA lines (built independently of veritee.ima) ----------------------------------------------------------------
def _field(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def ima_ng(path: str, digest: bytes) -> tuple[str, bytes]:
    """An ``ima-ng`` line (SHA-256 file digest, SHA-1 template hash) and its template data."""
    data = _field(b"sha256:\x00" + digest) + _field(path.encode() + b"\x00")
    return f"10 {hashlib.sha1(data).hexdigest()} ima-ng sha256:{digest.hex()} {path}", data


def file_digest(path: str, version: int = 0) -> bytes:
    return hashlib.sha256(f"{path}#{version}".encode()).digest()


_EK_POOL: list[rsa.RSAPrivateKey] = []
_EK_POOL_SIZE = 24
_pool_lock = threading.Lock()
_pool_next = 0


def pooled_ek_key() -> rsa.RSAPrivateKey:
    """An RSA-2048 EK key from a small process-wide pool (generating one costs up to half a second); consecutive
    calls return distinct keys until the pool wraps around."""
    global _pool_next
    with _pool_lock:
        if len(_EK_POOL) < _EK_POOL_SIZE:
            _EK_POOL.append(rsa.generate_private_key(65537, 2048))
            return _EK_POOL[-1]
        key = _EK_POOL[_pool_next % _EK_POOL_SIZE]
        _pool_next += 1
        return key


# --- a manufacturer CA -----------------------------------------------------------------------------------------
class TestCa:
    """A self-signed CA that issues EK certificates (not a pytest class)."""

    __test__ = False

    def __init__(self, name: str = "veritee test EK CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, public_key: rsa.RSAPublicKey, *, days: int = 30, expired: bool = False) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        start = now - datetime.timedelta(days=days + 2) if expired else now - datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(x509.Name([]))]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)


# --- a node with a software TPM --------------------------------------------------------------------------------
@dataclass
class SoftNode:
    """A node whose TPM is software. Mutate ``offline``, or ``answer_hook`` to change what it answers."""

    node_id: str
    ca: TestCa
    ek_key: rsa.RSAPrivateKey = field(default_factory=pooled_ek_key)
    ak_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    pcrs: dict[int, bytes] = field(default_factory=lambda: {i: bytes(32) for i in range(24)})
    clock: int = 1000
    reset_count: int = 0
    ima_lines: list[str] = field(default_factory=list)
    event_log: bytes | None = None
    offline: bool = False
    answer_hook: Callable[[SoftNode, Challenge, NodeEvidence], NodeEvidence] | None = None
    challenges: list[Challenge] = field(default_factory=list)
    ek_cert: bytes = b""

    def __post_init__(self) -> None:
        if not self.ek_cert:
            self.ek_cert = self.ca.issue(self.ek_key.public_key())

    @property
    def ek_public(self) -> bytes:
        modulus = self.ek_key.public_key().public_numbers().n.to_bytes(256, "big")
        parms = RsaParms(SymDefObject(TpmAlgId.AES, 128, TpmAlgId.CFB), Scheme(), 2048, 0)
        return TpmtPublic(TpmAlgId.RSA, TpmAlgId.SHA256, EK_ATTRIBUTES, b"", parms, modulus).to_tpm2b()

    @property
    def ak(self) -> TpmtPublic:
        return TpmtPublic.from_public_key(self.ak_key.public_key())

    def registration(
        self, agent_url: str | None = None, attributes: dict[str, str] | None = None
    ) -> RegistrationRequest:
        return RegistrationRequest(
            node_id=self.node_id,
            ek_cert=self.ek_cert,
            ek_public=self.ek_public,
            ak_public=self.ak.to_tpm2b(),
            attributes=dict(attributes or {}),
            agent_url=agent_url,
        )

    def activate_credential(self, challenge: CredentialChallenge) -> ActivationRequest:
        """TPM2_ActivateCredential in software: unwrap the seed with the EK, check the HMAC over the AK name."""
        blob, secret_blob = challenge.credential_blob, challenge.encrypted_secret
        encrypted_seed = secret_blob[2 : 2 + int.from_bytes(secret_blob[:2], "big")]
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\x00")
        seed = self.ek_key.decrypt(encrypted_seed, oaep)
        inner = blob[2:]
        hmac_size = int.from_bytes(inner[:2], "big")
        outer_hmac, enc_identity = inner[2 : 2 + hmac_size], inner[2 + hmac_size :]
        name = self.ak.name()
        hmac_key = kdfa(HashAlg.SHA256, seed, b"INTEGRITY", b"", b"", 256)
        if not hmac.compare_digest(hmac.digest(hmac_key, enc_identity + name, "sha256"), outer_hmac):
            raise ValueError("credential is not bound to this AK")
        sym = kdfa(HashAlg.SHA256, seed, b"STORAGE", name, b"", 128)
        plain = Cipher(algorithms.AES(sym), CFB(b"\x00" * 16)).decryptor().update(enc_identity)
        secret = plain[2 : 2 + int.from_bytes(plain[:2], "big")]
        return ActivationRequest(challenge.challenge_id, secret)

    # --- measurements ----------------------------------------------------------------------------------------
    def extend(self, pcr: int, digest: bytes) -> None:
        self.pcrs[pcr] = extend(HashAlg.SHA256, self.pcrs[pcr], digest)

    def measure(self, path: str, version: int = 0) -> str:
        """Run a file: an IMA line, extended into PCR 10."""
        line, data = ima_ng(path, file_digest(path, version))
        self.ima_lines.append(line)
        self.extend(10, hashlib.sha256(data).digest())
        return line

    def boot(self, event_log: bytes) -> None:
        """Boot with this firmware event log: its SHA-256 digests extended into the PCRs."""
        from veritee.eventlog import EventType
        from veritee.eventlog import parse as parse_event_log

        for event in parse_event_log(event_log).events:
            if event.type != EventType.EV_NO_ACTION and HashAlg.SHA256 in event.digests:
                self.extend(event.pcr, event.digests[HashAlg.SHA256])
        self.event_log = event_log

    def reboot(self) -> None:
        self.pcrs = {i: bytes(32) for i in range(24)}
        self.ima_lines = []
        self.reset_count += 1

    # --- evidence --------------------------------------------------------------------------------------------
    def quote(self, challenge: Challenge, *, clock: int | None = None) -> tuple[bytes, bytes, bytes]:
        """(TPMS_ATTEST, TPMT_SIGNATURE, tpm2-tools PCR blob) for the challenge's SHA-256 selection."""
        self.clock += 1000
        indices = sorted(challenge.pcr_selection["sha256"])
        selection = PcrSelection.of(HashAlg.SHA256, indices)
        banks = {HashAlg.SHA256: {i: self.pcrs[i] for i in indices}}
        info = TpmsClockInfo(self.clock if clock is None else clock, self.reset_count, 0, True)
        attest = build_quote_attest(
            qualified_signer=b"\x00\x0b" + bytes(32), selections=[selection], banks=banks, nonce=challenge.nonce,
            clock_info=info,
        )  # fmt: skip
        return attest, sign_attest(self.ak_key, attest).pack(), build_tpm2tools_pcr_blob([selection], banks)

    def answer(self, challenge: Challenge) -> NodeEvidence:
        self.challenges.append(challenge)
        attest, signature, blob = self.quote(challenge)
        entries = "".join(line + "\n" for line in self.ima_lines[challenge.ima_offset :])
        evidence = NodeEvidence(
            nonce=challenge.nonce,
            quote=attest,
            signature=signature,
            pcrs=blob,
            event_log=self.event_log if challenge.want_event_log else None,
            ima_offset=challenge.ima_offset,
            ima_entries=entries,
        )
        if self.answer_hook is not None:
            evidence = self.answer_hook(self, challenge, evidence)
        return evidence


# --- HTTP servers on loopback ----------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], owner: Any) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), handler)
    server.owner = owner  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _AgentHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        agent: AgentServer = self.server.owner  # type: ignore[attr-defined]
        parts = self.path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        routed = len(parts) == 4 and parts[0] == "nodes" and parts[2:] == ["v1", "quote"]
        node = agent.nodes.get(parts[1]) if routed else None
        if node is None or node.offline:
            self.send_response(503 if node is not None else 404)
            self.end_headers()
            return
        with agent.lock:
            answer = node.answer(Challenge.from_json(json.loads(body))).to_json()
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class AgentServer:
    """Node agents for pull mode: ``url_of(node)`` is the node's agent_url."""

    def __init__(self) -> None:
        self.nodes: dict[str, SoftNode] = {}
        self.lock = threading.Lock()
        self.base = ""

    def add(self, node: SoftNode) -> str:
        self.nodes[node.node_id] = node
        return self.url_of(node)

    def url_of(self, node: SoftNode) -> str:
        return f"{self.base}/nodes/{node.node_id}"

    @contextmanager
    def running(self) -> Iterator[AgentServer]:
        with serve(_AgentHandler, self) as base:
            self.base = base
            yield self


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class _ReceiverHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        receiver: Receiver = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with receiver.lock:
            receiver.attempts += 1
            failing = receiver.attempts <= receiver.fail_first
            if not failing:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body))
                )
        self.send_response(503 if failing else receiver.status)
        self.send_header("content-length", "0")
        self.end_headers()


class Receiver:
    """Records JSON POSTs; the first ``fail_first`` get 503, the others ``status``."""

    def __init__(self, *, fail_first: int = 0, status: int = 200) -> None:
        self.fail_first = fail_first
        self.status = status
        self.attempts = 0
        self.received: list[Received] = []
        self.lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[str]:
        with serve(_ReceiverHandler, self) as base:
            yield base


# --- verifier set-up -----------------------------------------------------------------------------------------
class FakeClock:
    """A settable UTC clock for the service (lateness, leases, expiry)."""

    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def make_config(ca: TestCa, **overrides: Any) -> VerifierConfig:
    settings: dict[str, Any] = {
        "ek_ca_certs": (ca.pem,),
        "interval_s": 30.0,
        "lease_s": 10.0,
        "remediation": frozenset(),
        "replica_id": "test-replica",
        "admin_token": "admin-secret",
        "delivery_backoff_s": 0.05,
        "delivery_poll_s": 0.05,
        "stream_poll_s": 0.05,
    }
    settings.update(overrides)
    return VerifierConfig(**settings)


ServiceFactory = Callable[..., VerifierService]


def enroll(service: VerifierService, node: SoftNode, agent_url: str | None = None, **attributes: str) -> None:
    """Register and activate a software node."""
    challenge = service.register(node.registration(agent_url, attributes))
    service.activate(node.node_id, node.activate_credential(challenge))
